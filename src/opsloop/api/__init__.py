"""The control plane: the REST API a team's server answers (``opsloop server``).

``/api/v1`` is opsloop's own API (its OpenAPI document at ``/api/v1/openapi.json`` is the
contract); ``/api/2.0/mlflow`` answers MLflow's tracking and registry REST API over the same
store, so MLflow's client works against an opsloop server unchanged.
"""

from opsloop.api.app import create_app

__all__ = ["create_app"]
