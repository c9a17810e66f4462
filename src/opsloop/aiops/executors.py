"""Who does the built-in remediation actions' work: the executor contract, and the executor
that sends notifications.

The remediation engine hands each built-in action (``retrain``, ``canary``, ``promote``,
``rollback``, ``notify``) to the method of that name of its :class:`ActionExecutor`. Retraining
and Git commits belong to the loop (:class:`opsloop.loop.actions.LoopExecutor`), which this
package does not import; :class:`WebhookExecutor` sends notifications itself and hands the
rest to such a delegate.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from opsloop.aiops.actions import ActionContext, ActionResult
from opsloop.errors import AIOpsError, MissingDependencyError
from opsloop.redact import remember_secret
from opsloop.secretrefs import is_reference, resolve_secret
from opsloop.spec.remediation import ENV_REFERENCE, NotifySettings

if TYPE_CHECKING:
    import re

    import httpx

__all__ = ["ActionExecutor", "WebhookExecutor"]


class ActionExecutor(Protocol):
    """Does the built-in actions' work. Each method gets the action's context and returns
    what it did; raising marks the action failed with the exception's message, and must leave
    serving as it was found."""

    def retrain(self, context: ActionContext) -> ActionResult:
        """Retrain through the lifecycle pipeline and its gates (``RetrainSettings``); return
        the new version (``model``, ``version``). Raise when the gates refuse it."""
        ...

    def canary(self, context: ActionContext) -> ActionResult:
        """Commit a canary split (``CanarySettings``) for the new version (the ``version`` of
        ``context.previous["retrain"]``, or the deployment's challenger), hold and judge it;
        return ``details["held"]``. A canary that does not hold must be withdrawn before
        returning."""
        ...

    def promote(self, context: ActionContext) -> ActionResult:
        """Commit the canary's version as the deployment's full traffic."""
        ...

    def rollback(self, context: ActionContext) -> ActionResult:
        """Revert the deployment's last change in Git (``context.compensates`` names a canary
        to withdraw, when the engine undoes one)."""
        ...

    def notify(self, context: ActionContext) -> ActionResult:
        """Tell people (``NotifySettings``); ``context.event`` says why."""
        ...


def _expand_env(value: str, setting: str = "notify") -> str:
    # A whole-value reference (env:NAME, file:PATH) is a secret in full; so is every ${VAR}.
    if is_reference(value):
        return resolve_secret(value, setting=setting)

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise AIOpsError(
                f"environment variable {name} is not set (it is named in a notify setting)",
                hint=f"export {name}=...",
            )
        remember_secret(os.environ[name])
        return os.environ[name]

    expanded = ENV_REFERENCE.sub(sub, value)
    if expanded != value:
        remember_secret(expanded)
    return expanded


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{'/…' if parts.path not in ('', '/') else ''}"


class WebhookExecutor:
    """Sends ``notify`` as an HTTP POST of JSON and hands every other action to a delegate.

    Args:
        delegate: The executor of ``retrain``, ``canary``, ``promote`` and ``rollback`` (the
            lifecycle and GitOps actions); without one those actions fail, saying so.
        transport: An httpx transport (tests, proxies); default: the network.
    """

    def __init__(
        self,
        delegate: ActionExecutor | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.delegate = delegate
        self.transport = transport

    def _delegate(self, action: str) -> ActionExecutor:
        if self.delegate is None:
            raise AIOpsError(
                f"no executor for '{action}' is configured: only 'notify' can run",
                hint="give the remediation engine an executor with the lifecycle and GitOps "
                "actions",
            )
        return self.delegate

    def retrain(self, context: ActionContext) -> ActionResult:
        """Delegate."""
        return self._delegate("retrain").retrain(context)

    def canary(self, context: ActionContext) -> ActionResult:
        """Delegate."""
        return self._delegate("canary").canary(context)

    def promote(self, context: ActionContext) -> ActionResult:
        """Delegate."""
        return self._delegate("promote").promote(context)

    def rollback(self, context: ActionContext) -> ActionResult:
        """Delegate."""
        return self._delegate("rollback").rollback(context)

    def notify(self, context: ActionContext) -> ActionResult:
        """POST the incident, the event and the chain's outcomes to the webhook.

        Raises:
            AIOpsError: The webhook is unreachable or answers with an error status.
        """
        try:
            # Lazy imports here and below (noqa: PLC0415) of httpx: each loads only where it is
            # used, so importing this module stays light.
            import httpx  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - httpx ships with the serve extra
            raise MissingDependencyError("httpx", "serve") from exc
        settings = context.settings_as(NotifySettings)
        url = _expand_env(settings.webhook, "notify.webhook")
        headers = {k: _expand_env(v, f"notify.headers.{k}") for k, v in settings.headers.items()}
        payload = {
            "event": context.event,
            "policy": context.policy,
            "dry_run": context.dry_run,
            "incident": context.incident.model_dump(mode="json"),
            "outcomes": [o.to_json() for o in context.outcomes],
        }
        shown = _redact(url)
        try:
            with httpx.Client(timeout=settings.timeout_s, transport=self.transport) as client:
                response = client.post(url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise AIOpsError(f"webhook {shown} is unreachable: {exc}") from exc
        if response.status_code >= 300:
            raise AIOpsError(
                f"webhook {shown} answered {response.status_code}: {response.text[:200]}"
            )
        return ActionResult(
            did=f"sent '{context.event}' to {shown}",
            details={"status_code": response.status_code, "webhook": shown},
        )
