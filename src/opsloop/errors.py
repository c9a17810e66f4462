"""Errors raised by opsloop.

Every error opsloop raises on purpose derives from :class:`OpsloopError`, so callers can catch
one type; the subclasses say which concern failed. The CLI prints an ``OpsloopError`` as one
line plus its ``hint`` and exits with status 1.

The tree (every subclass of :class:`OpsloopError` in the package is defined here)::

    OpsloopError
    ├── ConfigError                 settings or environment are unusable
    │   ├── SpecError               opsloop.yaml is invalid (file, line, field)
    │   └── PluginError             an installed or registered plugin cannot be loaded
    ├── MissingDependencyError      an optional extra is not installed
    ├── NotFoundError               a run, model, version, alias, artifact … does not exist
    ├── AlreadyExistsError          a name that must be unique is taken
    ├── StoreError                  the metadata store failed or is unreachable
    │   └── MigrationError          the store schema could not be brought up to date
    ├── ArtifactError               the artifact store failed
    │   └── DigestMismatchError     a blob's content does not match its address
    ├── TrackingError               a tracking call was misused (no active run, bad value)
    ├── PipelineError               a pipeline could not be built or run
    │   ├── StepFailedError         a step raised (carries the step name and traceback)
    │   └── MaterializerError       a step output cannot be stored or loaded
    ├── RegistryError               a model registry operation was refused
    │   ├── ModelLoadError          a model version cannot be loaded
    │   │   └── UntrustedTypeError  a model holds a type that was not trusted when saved
    │   └── RollbackError           an alias would move back to an older version unasked
    ├── DataError                   input data is missing, unreadable or unusable
    │   └── ContractError           data broke its contract (every failure listed)
    ├── MLError                     training, tuning, evaluation or gating failed
    ├── ServingError                a model server could not start or serve
    │   └── InvalidRequestError     a request does not match the model's signature
    ├── SecurityError               a scan, signature, ML-BOM, policy or IaC check failed
    │   ├── SignatureError          a model's signature is missing, untrusted or does not match
    │   ├── UnreadableSkopsFileError  bytes a model names as a skops file cannot be read as one
    │   ├── AuthenticationError     no valid token: missing, unknown, expired or revoked
    │   ├── PermissionDeniedError   the caller's roles do not allow the action on the object
    │   └── AuditChainError         the audit trail's hash chain is broken (an entry was edited,
    │                               deleted, inserted or reordered)
    ├── GitOpsError                 desired state could not be read, written or applied
    ├── MonitorError                a monitor could not compute its metrics
    └── AIOpsError                  detection, correlation or remediation failed
        └── WebhookPayloadError     an Alertmanager webhook body is not a version 4 payload
"""

from __future__ import annotations

__all__ = [
    "AIOpsError",
    "AlreadyExistsError",
    "ArtifactError",
    "AuditChainError",
    "AuthenticationError",
    "ConfigError",
    "ContractError",
    "DataError",
    "DigestMismatchError",
    "GitOpsError",
    "InvalidRequestError",
    "MLError",
    "MaterializerError",
    "MigrationError",
    "MissingDependencyError",
    "ModelLoadError",
    "MonitorError",
    "NotFoundError",
    "OpsloopError",
    "PermissionDeniedError",
    "PipelineError",
    "PluginError",
    "RegistryError",
    "RollbackError",
    "SecurityError",
    "ServingError",
    "SignatureError",
    "SpecError",
    "StepFailedError",
    "StoreError",
    "TrackingError",
    "UnreadableSkopsFileError",
    "UntrustedTypeError",
    "WebhookPayloadError",
    "is_data_error",
]


class OpsloopError(Exception):
    """Root of every error opsloop raises on purpose.

    Args:
        message: One line that says what is wrong, naming the file, line, field or object.
        hint: Optional next step for the user, printed under the message by the CLI.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(OpsloopError):
    """Settings or environment are unusable."""


class SpecError(ConfigError):
    """``opsloop.yaml`` (or another spec document) is invalid.

    Args:
        message: What is wrong.
        file: The document's path.
        line: 1-based line of the offending node, when known.
        field: Dotted path of the offending field, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = file or "<spec>"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"{where}: " if file or line is not None else ""
        at = f"field '{field}': " if field else ""
        super().__init__(f"{prefix}{at}{message}", hint=hint)
        self.file = file
        self.line = line
        self.field = field
        self.detail = message


class PluginError(ConfigError):
    """A plugin (an entry point of an installed distribution, or an import reference
    registered in code) cannot be imported, or is not the kind of object its registry needs."""


class MissingDependencyError(OpsloopError):
    """An optional dependency is not installed.

    Args:
        package: The importable module that is missing.
        extra: The opsloop extra that provides it.
    """

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"'{package}' is not installed; it is needed for this feature",
            hint=f"pip install 'opsloop[{extra}]'",
        )
        self.package = package
        self.extra = extra


class NotFoundError(OpsloopError):
    """A run, model, version, alias, artifact or other object does not exist."""


class AlreadyExistsError(OpsloopError):
    """A name that must be unique is already taken."""


class StoreError(OpsloopError):
    """The metadata store failed or cannot be reached."""


class MigrationError(StoreError):
    """The metadata store's schema could not be brought up to date."""


class ArtifactError(OpsloopError):
    """The artifact store failed."""


class DigestMismatchError(ArtifactError):
    """A blob's content does not hash to the digest it is stored under."""


class TrackingError(OpsloopError):
    """A tracking call was misused: no active run, a bad key or value."""


class PipelineError(OpsloopError):
    """A pipeline could not be built or run."""


class StepFailedError(PipelineError):
    """A pipeline step raised.

    Args:
        step: Name of the step.
        message: The step's exception, as one line.
        traceback: The formatted traceback, as captured in the worker.
    """

    def __init__(self, step: str, message: str, traceback: str = "") -> None:
        super().__init__(f"step '{step}' failed: {message}")
        self.step = step
        self.traceback = traceback


class MaterializerError(PipelineError):
    """A step output cannot be turned into an artifact, or read back."""


class RegistryError(OpsloopError):
    """A model registry operation was refused."""


class ModelLoadError(RegistryError):
    """A model version cannot be loaded."""


class UntrustedTypeError(ModelLoadError):
    """A model artifact holds a type that was not trusted when it was saved."""


class RollbackError(RegistryError):
    """An alias would move back to an older version without the rollback being asked for."""


class DataError(OpsloopError):
    """Input data is missing, unreadable or unusable."""


class ContractError(DataError):
    """Data broke its contract; ``failures`` lists every failed rule."""

    def __init__(self, message: str, failures: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class MLError(OpsloopError):
    """Training, tuning, evaluation or gating failed."""


class ServingError(OpsloopError):
    """A model server could not start or serve."""


class InvalidRequestError(ServingError):
    """A prediction request does not match the model's input signature."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SecurityError(OpsloopError):
    """A security check failed or could not run (scan, signature, bill of materials,
    admission policy, IaC check)."""


class SignatureError(SecurityError):
    """A model's signature is missing, by a key not trusted, or does not match its files."""


class AuthenticationError(SecurityError):
    """No valid credentials: the token is missing, unknown, expired or revoked."""


class PermissionDeniedError(SecurityError):
    """The caller is known, but its roles do not allow the action on the object."""


class AuditChainError(SecurityError):
    """The audit trail's hash chain is broken: an entry was edited, deleted, inserted or
    reordered after it was written."""


class UnreadableSkopsFileError(SecurityError):
    """The bytes are not a readable skops file; ``cause`` says why."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"not a readable skops file: {cause}")
        self.cause = cause


class GitOpsError(OpsloopError):
    """Desired state could not be read, written or applied."""


class MonitorError(OpsloopError):
    """A monitor could not compute its metrics."""


class AIOpsError(OpsloopError):
    """Detection, correlation or remediation failed."""


class WebhookPayloadError(AIOpsError):
    """A webhook payload is not what Alertmanager sends; ``field`` names the bad part."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


# Errors that say the data cannot be written, however often it is tried (PEP 249 names for the
# database drivers' own classes, which opsloop does not import).
_DATA_ERRORS: tuple[type[Exception], ...] = (TypeError, ValueError, UnicodeError, OverflowError)
_DATA_ERROR_NAMES = frozenset({"DataError", "IntegrityError"})


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc``, or the error it wraps (``orig`` of database drivers, ``__cause__``),
    says the records themselves cannot be written, so that retrying them is useless.

    Any other failure (``OSError``, a database that is down) is the writer's, and worth a
    retry. Shared by the batched writers: the prediction log and the metric buffer.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _DATA_ERRORS):
            return True
        if any(cls.__name__ in _DATA_ERROR_NAMES for cls in type(current).__mro__):
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False
