"""The web dashboard that ``opsloop server`` serves at ``/``: server-rendered pages over the
control plane's REST API (every page reads ``/api/v1``, in process, as the visitor)."""

from opsloop.ui.app import create_server_app

__all__ = ["create_server_app"]
