"""scikit-learn estimators and pipelines, stored with skops (no pickle on the load path).

Estimators from other libraries that follow the scikit-learn API (LightGBM, XGBoost …) are
accepted too. What a file may name is decided by :mod:`opsloop.registry.trust`, never by the
file: this flavor only reports every type and function a skops file names, and how the
loader would use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.errors import ModelLoadError, RegistryError, UntrustedTypeError
from opsloop.secops.skopsrefs import UnreadableSkopsFileError, skops_references

if TYPE_CHECKING:
    from opsloop.registry.trust import TypeRef

__all__ = ["SklearnFlavor"]


class SklearnFlavor:
    """Fitted scikit-learn-compatible estimators in the skops format (``model.skops``)."""

    name = "sklearn"
    model_file = "model.skops"

    def accepts(self, model: Any) -> bool:
        """Whether ``model`` is a scikit-learn estimator (or follows its base class)."""
        # Lazy imports here and below (noqa: PLC0415) of sklearn, skops: each loads only where it is
        # used, so importing this module stays light.
        from sklearn.base import BaseEstimator  # noqa: PLC0415

        return isinstance(model, BaseEstimator)

    def dump(self, model: Any) -> bytes:
        """Serialize a fitted estimator with skops.

        Raises:
            RegistryError: The estimator is not fitted, or skops cannot serialize it.
        """
        import skops.io as sio  # noqa: PLC0415
        from sklearn.exceptions import NotFittedError  # noqa: PLC0415
        from sklearn.utils.validation import check_is_fitted  # noqa: PLC0415

        try:
            check_is_fitted(model)
        except NotFittedError:
            raise RegistryError(
                f"{type(model).__name__} is not fitted; fit it before saving it"
            ) from None
        except TypeError as exc:
            raise RegistryError(f"cannot package {type(model).__name__}: {exc}") from exc
        try:
            data: bytes = sio.dumps(model)
        except Exception as exc:
            # skops raises many types (TypeError, UnsupportedTypeException, …) for objects
            # it cannot represent; the user needs the cause, not the type.
            raise RegistryError(
                f"skops cannot serialize {type(model).__name__}: {type(exc).__name__}: {exc}"
            ) from exc
        return data

    def references(self, data: bytes) -> list[TypeRef]:
        """Every type and function a skops file names; ``vouched`` where skops trusts it.

        Raises:
            ModelLoadError: The bytes are not a skops file.
        """
        try:
            return skops_references(data)
        except UnreadableSkopsFileError as exc:
            raise ModelLoadError(
                f"{self.model_file} is not a readable skops file: {exc.cause}"
            ) from exc

    def load(self, data: bytes, trusted: list[str]) -> Any:
        """Load a skops file trusting exactly ``trusted`` beyond skops' defaults.

        Raises:
            UntrustedTypeError: The file holds a type outside ``trusted``.
            ModelLoadError: The file cannot be loaded (a module or class is missing).
        """
        import skops.io as sio  # noqa: PLC0415
        from skops.io.exceptions import UntrustedTypesFoundException  # noqa: PLC0415

        try:
            return sio.loads(data, trusted=list(trusted))
        except UntrustedTypesFoundException as exc:
            raise UntrustedTypeError(f"{self.model_file}: {exc}") from exc
        except Exception as exc:
            # Missing modules or attributes (a class defined in a script, a library not
            # installed) surface as ImportError/AttributeError from skops' object loader.
            raise ModelLoadError(
                f"cannot load {self.model_file}: {type(exc).__name__}: {exc}",
                hint="install the packages the model was trained with, and define custom "
                "classes in an importable module rather than a script or notebook",
            ) from exc
