"""Remediation: policies, the engine's chain, guardrails, approval, failures, webhooks, CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opsloop.aiops.actions import ActionContext, ActionResult
from opsloop.aiops.alerts import AlertIn
from opsloop.aiops.executors import WebhookExecutor
from opsloop.aiops.incidents import (
    get_incident,
    ingest_alerts,
    list_actions,
    resolve,
    timeline,
)
from opsloop.aiops.lineage import LineageGraph
from opsloop.aiops.remediation import (
    RemediationEngine,
    approve,
    load_remediation_section,
    reject,
)
from opsloop.cli.incidents import app
from opsloop.context import Project
from opsloop.errors import AIOpsError, SpecError
from opsloop.spec.remediation import (
    CanarySettings,
    RemediationPolicy,
    RemediationSection,
    RetrainSettings,
    RollbackSettings,
)
from opsloop.store import Store, open_store
from tests.aiops.conftest import Hook

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
GRAPH = LineageGraph(
    [
        ("dataset:sha256:" + "d" * 64, "feature:tenure@sha256:" + "d" * 64),
        ("feature:tenure@sha256:" + "d" * 64, "model:churn/3"),
        ("model:churn/3", "deployment:churn-prod"),
        ("model:churn/3", "deployment:churn-eu"),
        ("host:node-1", "deployment:churn-prod"),
        ("host:node-2", "deployment:churn-eu"),
    ]
)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


RETRAINED = ActionResult(did="retrained", model="churn", version=4)


@dataclass
class RecordingExecutor:
    """Records every call; ``outcomes`` replaces an action's result or raises it."""

    outcomes: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, int, ActionContext]] = field(default_factory=list)

    def _do(self, action: str, context: ActionContext) -> Any:
        self.calls.append((action, context.incident.id, context))
        outcome = self.outcomes.get(action)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome is not None:
            return outcome
        return {
            "retrain": RETRAINED,
            "canary": ActionResult(
                did="canary held", version=4, commits=("c0ffee1",), details={"held": True}
            ),
            "promote": ActionResult(did="promoted", version=4, commits=("beef002",)),
            "rollback": ActionResult(did="rolled back", version=3, commits=("dead003",)),
            "notify": ActionResult(did="told", details={"sent": True}),
        }[action]

    def retrain(self, context: ActionContext) -> ActionResult:
        return self._do("retrain", context)  # type: ignore[no-any-return]

    def canary(self, context: ActionContext) -> ActionResult:
        return self._do("canary", context)  # type: ignore[no-any-return]

    def promote(self, context: ActionContext) -> ActionResult:
        return self._do("promote", context)  # type: ignore[no-any-return]

    def rollback(self, context: ActionContext) -> ActionResult:
        return self._do("rollback", context)  # type: ignore[no-any-return]

    def notify(self, context: ActionContext) -> ActionResult:
        return self._do("notify", context)  # type: ignore[no-any-return]

    @property
    def actions(self) -> list[str]:
        return [c[0] for c in self.calls]


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="tester")
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'r.db'}", actor="tester")
    yield s
    s.close()


_minute = [0]


def open_incident(store: Store, kind: str, deployment: str = "churn-prod") -> int:
    """Open a fresh incident of a kind on a deployment (each one an hour after the last)."""
    _minute[0] += 60
    start = T0 + timedelta(minutes=_minute[0])
    name, labels = {
        "data_drift": ("feature_drift", {"feature": "tenure", "deployment": deployment}),
        "error_rate": ("error_rate_high", {"deployment": deployment}),
        "quality_drop": (
            "model_accuracy_drop",
            {"deployment": deployment, "model": "churn", "version": "3"},
        ),
    }[kind]
    alert = AlertIn(name=name, labels=labels, starts_at=start, severity="critical")
    (inc_id,) = ingest_alerts(store, [alert], GRAPH).opened
    assert get_incident(store, inc_id).kind == kind
    return inc_id


def policy(**kw: Any) -> RemediationPolicy:
    return RemediationPolicy.model_validate(kw)


# -- policies ----------------------------------------------------------------------------------


def test_policies_load_from_opsloop_yaml(tmp_path: Path) -> None:
    spec = tmp_path / "opsloop.yaml"
    spec.write_text(
        "project: demo\n"
        "remediation:\n"
        "  policies:\n"
        "    - name: churn-remediation\n"
        "      on: {kinds: [data_drift, quality_drop]}\n"
        "      actions: [retrain, canary, promote, notify]\n"
        "      dry_run: false\n"
        "      require_approval: false\n"
        "      cooldown_s: 3600\n"
        "      max_actions_per_day: 3\n"
        "      canary: {weight: 10, hold_s: 60, min_requests: 50, max_metric_drop: 0.02}\n"
        "      notify: {webhook: '${OPS_WEBHOOK}'}\n"
        "    - name: rollback-on-errors\n"
        "      on: {kinds: [error_rate, latency], severities: [page]}\n"
        "      actions: [rollback]\n"
    )
    section = load_remediation_section(tmp_path)
    first, second = section.policies
    assert first.trigger.kinds == ["data_drift", "quality_drop"]
    assert first.canary.max_metric_drop == 0.02 and first.notify is not None
    assert second.trigger.severities == ["critical"] and second.cooldown_s == 3600
    spec.write_text("project: demo\n")
    assert load_remediation_section(spec) == RemediationSection()


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        (
            "      on: {kinds: [drift]}\n      actions: [rollback]\n",
            5,
            "remediation.policies.0.on.kinds.0",
            "Input should be",
        ),
        (
            "      on: {kinds: [latency]}\n      actions: [promote]\n",
            4,
            "remediation.policies.0",
            "needs a 'canary' before it",
        ),
        (
            "      on: {kinds: [latency]}\n      actions: [notify]\n",
            4,
            "remediation.policies.0",
            "needs a 'notify",
        ),
        (
            "      on: {kinds: [latency]}\n      actions: [rollback, rollback]\n",
            4,
            "remediation.policies.0",
            "listed twice",
        ),
        (
            "      on: {kinds: [latency]}\n      actions: [rollback]\n"
            "      notify: {webhook: 'ftp://x'}\n",
            7,
            "remediation.policies.0.notify.webhook",
            "not an http",
        ),
        (
            "      on: {kinds: [latency]}\n      actions: [rollback]\n      cooldown: 5\n",
            7,
            "remediation.policies.0.cooldown",
            "unknown key",
        ),
        (
            "      on: {kinds: [latency]}\n      actions: [rollback, scale down]\n",
            6,
            "remediation.policies.0.actions",
            "invalid remediation action name 'scale down'",
        ),
        (
            "      on: {kinds: [latency]}\n      actions: [rollback]\n"
            "      retrain: {window_s: 0}\n",
            7,
            "remediation.policies.0.retrain.window_s",
            "greater than 0",
        ),
    ],
)
def test_policy_errors_name_line_and_field(
    tmp_path: Path, body: str, line: int, field: str, message: str
) -> None:
    spec = tmp_path / "opsloop.yaml"
    spec.write_text("project: demo\nremediation:\n  policies:\n    - name: p\n" + body)
    with pytest.raises(SpecError, match=message) as info:
        load_remediation_section(spec)
    assert info.value.field == field and info.value.line == line


def test_policy_names_are_unique() -> None:
    p = {"name": "a", "on": {"kinds": ["latency"]}, "actions": ["rollback"]}
    with pytest.raises(ValueError, match="used more than once: a"):
        RemediationSection.model_validate({"policies": [p, p]})


# -- the engine --------------------------------------------------------------------------------


def test_chain_runs_in_order_and_records_everything(store: Store, hook: tuple[str, Hook]) -> None:
    url, received = hook
    inc_id = open_incident(store, "data_drift")
    work = RecordingExecutor()
    engine = RemediationEngine(
        store,
        WebhookExecutor(work),
        [
            policy(name="errors", on={"kinds": ["error_rate"]}, actions=["rollback"]),
            policy(
                name="churn-remediation",
                on={"kinds": ["data_drift", "quality_drop"]},
                actions=["retrain", "canary", "promote", "notify"],
                canary={"weight": 20},
                retrain={"window_s": 600},
                notify={"webhook": url, "headers": {"X-Team": "growth"}},
            ),
        ],
        clock=Clock(),
    )
    actions = engine.remediate(inc_id)
    assert [(a.action, a.status) for a in actions] == [
        ("retrain", "succeeded"),
        ("canary", "succeeded"),
        ("promote", "succeeded"),
        ("notify", "succeeded"),
    ]
    assert work.actions == ["retrain", "canary", "promote"]
    retrain = work.calls[0][2]
    assert (retrain.action, retrain.deployment, retrain.incident.kind) == (
        "retrain",
        "churn-prod",
        "data_drift",
    )
    assert retrain.policy == "churn-remediation" and retrain.target == "churn-prod"
    assert retrain.settings == RetrainSettings(window_s=600)
    assert (retrain.incident.root_cause or "").startswith("feature:tenure@")
    assert retrain.previous == {} and retrain.outcomes == () and retrain.dry_run is False
    canary = work.calls[1][2]
    assert canary.previous == {"retrain": RETRAINED}
    assert canary.settings_as(CanarySettings).weight == 20
    assert [(o.action, o.status) for o in canary.outcomes] == [("retrain", "succeeded")]
    promote = work.calls[2][2]
    assert promote.previous["canary"].commits == ("c0ffee1",)
    assert promote.settings == canary.settings  # promote runs under the canary's settings
    assert all(a.policy == "churn-remediation" for a in actions)
    assert actions[0].approved_by == "policy:churn-remediation"
    assert actions[0].params["settings"] == {
        "window_s": 600.0,
        "since_incident": False,
        "include_original": False,
        "overrides": {},
    }
    # The result is stored flat, as results were before they were typed.
    assert actions[0].result == {"did": "retrained", "model": "churn", "version": 4}
    assert actions[1].result == {
        "did": "canary held",
        "version": 4,
        "commits": ["c0ffee1"],
        "held": True,
    }
    shown = url.split("/hooks")[0] + "/…"
    assert actions[3].result == {
        "did": f"sent 'remediation' to {shown}",
        "status_code": 200,
        "webhook": shown,
    }

    (body,) = received.bodies
    assert body["event"] == "remediation" and body["policy"] == "churn-remediation"
    assert body["incident"]["id"] == inc_id and body["incident"]["kind"] == "data_drift"
    assert [o["action"] for o in body["outcomes"]] == ["retrain", "canary", "promote"]
    assert received.headers[0]["X-Team"] == "growth"

    kinds = [e.kind for e in store.events.list(object_type="incident", object_id=str(inc_id))]
    assert kinds.count("remediation.planned") == 4
    assert kinds.count("remediation.started") == 4 and kinds.count("remediation.succeeded") == 4
    lines = [e.what for e in timeline(store, inc_id) if e.type == "action"]
    assert lines == [
        "retrain: succeeded",
        "canary: succeeded",
        "promote: succeeded",
        "notify: succeeded",
    ]
    events = [e.what for e in timeline(store, inc_id) if e.type == "event"]
    assert "remediation.started (retrain)" in events and "remediation.succeeded (promote)" in events
    # The chain healed it: the policy resolved the incident, last on its timeline.
    assert get_incident(store, inc_id).status == "resolved"
    assert events[-1] == "incident.resolved"
    (resolved,) = store.events.list(kind="incident.resolved", object_id=str(inc_id))
    assert resolved.details["by"] == "policy:churn-remediation"
    assert resolved.details["reason"].startswith("remediated: policy 'churn-remediation' ran")

    # A policy acts on an incident once.
    assert engine.remediate(inc_id) == [] and len(work.calls) == 3
    assert engine.remediate_open() == {}


def test_incident_stays_open_when_asked_or_when_nothing_changed_serving(store: Store) -> None:
    work = RecordingExecutor()
    kept = open_incident(store, "error_rate")
    engine = RemediationEngine(
        store,
        work,
        [
            policy(
                name="keep",
                on={"kinds": ["error_rate"]},
                actions=["rollback"],
                resolve_on_success=False,
            ),
            policy(name="retrain-only", on={"kinds": ["data_drift"]}, actions=["retrain"]),
        ],
        clock=Clock(),
    )
    assert [a.status for a in engine.remediate(kept)] == ["succeeded"]
    assert get_incident(store, kept).status == "open"
    retrained = open_incident(store, "data_drift", deployment="churn-eu")
    assert [a.status for a in engine.remediate(retrained)] == ["succeeded"]
    assert get_incident(store, retrained).status == "open"


def test_first_matching_policy_and_filters(sqlite_store: Store) -> None:
    store = sqlite_store
    inc_id = open_incident(store, "error_rate", deployment="churn-eu")
    inc = get_incident(store, inc_id)
    engine = RemediationEngine(
        store,
        RecordingExecutor(),
        [
            policy(
                name="only-prod",
                on={"kinds": ["error_rate"], "deployments": ["churn-prod"]},
                actions=["rollback"],
            ),
            policy(
                name="only-info",
                on={"kinds": ["error_rate"], "severities": ["info"]},
                actions=["rollback"],
            ),
            policy(
                name="other-model",
                on={"kinds": ["error_rate"], "models": ["fraud"]},
                actions=["rollback"],
            ),
            policy(name="catch-all", on={"kinds": ["error_rate", "latency"]}, actions=["rollback"]),
        ],
    )
    matched = engine.policy_for(inc)
    assert matched is not None and matched.name == "catch-all"
    assert RemediationEngine(store, RecordingExecutor(), []).remediate(inc_id) == []
    resolve(store, inc_id)
    assert engine.remediate(inc_id) == []


def test_cooldown_and_daily_limit(store: Store) -> None:
    clock = Clock()
    work = RecordingExecutor()
    engine = RemediationEngine(
        store,
        work,
        [
            policy(
                name="rollback-on-errors",
                on={"kinds": ["error_rate"]},
                actions=["rollback"],
                cooldown_s=600,
                max_actions_per_day=2,
            )
        ],
        clock=clock,
    )

    def run(deployment: str) -> Any:
        inc_id = open_incident(store, "error_rate", deployment)
        (action,) = engine.remediate(inc_id)
        # A rollback that succeeded resolved the incident; a skipped one left it open.
        status = get_incident(store, inc_id).status
        assert status == ("resolved" if action.status == "succeeded" else "open")
        if status == "open":
            resolve(store, inc_id)
        return action

    assert run("churn-prod").status == "succeeded"
    clock.advance(minutes=5)
    held = run("churn-prod")
    assert held.status == "skipped"
    assert held.error is not None and held.error.startswith(
        "cooldown: policy 'rollback-on-errors' ran 'rollback' on churn-prod 300s ago"
    )
    clock.advance(minutes=6)
    assert run("churn-prod").status == "succeeded"
    clock.advance(minutes=1)
    capped = run("churn-eu")  # no cooldown on this target, but the day's budget is spent
    assert capped.status == "skipped"
    assert capped.error is not None and "daily limit" in capped.error
    assert "max_actions_per_day=2" in capped.error
    clock.advance(hours=24)
    assert run("churn-eu").status == "succeeded"
    assert work.actions == ["rollback"] * 3
    skipped = store.events.list(kind="remediation.skipped")
    assert len(skipped) == 2 and "cooldown" in skipped[0].details["error"]


def test_dry_run_records_without_acting(sqlite_store: Store, hook: tuple[str, Hook]) -> None:
    url, received = hook
    inc_id = open_incident(sqlite_store, "quality_drop")
    work = RecordingExecutor()
    engine = RemediationEngine(
        sqlite_store,
        WebhookExecutor(work),
        [
            policy(
                name="try",
                on={"kinds": ["quality_drop"]},
                dry_run=True,
                actions=["retrain", "canary", "promote", "notify"],
                notify={"webhook": url},
            )
        ],
    )
    touched = engine.remediate_open()
    assert list(touched) == [inc_id]
    actions = touched[inc_id]
    assert [(a.action, a.status) for a in actions] == [
        ("retrain", "dry_run"),
        ("canary", "dry_run"),
        ("promote", "dry_run"),
        ("notify", "succeeded"),
    ]
    assert work.calls == []
    assert actions[0].result == {"would_run": True} and actions[0].params["model"] == "churn"
    assert actions[0].params["version"] == 3
    assert received.bodies[0]["dry_run"] is True
    kinds = [e.kind for e in sqlite_store.events.list(kind="remediation.*")]
    assert kinds.count("remediation.dry_run") == 3 and kinds.count("remediation.planned") == 1


def test_approval_parks_then_runs(store: Store, hook: tuple[str, Hook]) -> None:
    url, received = hook
    clock = Clock()
    work = RecordingExecutor()
    engine = RemediationEngine(
        store,
        WebhookExecutor(work),
        [
            policy(
                name="careful",
                on={"kinds": ["error_rate"]},
                require_approval=True,
                actions=["rollback", "notify"],
                notify={"webhook": url},
            )
        ],
        clock=clock,
    )
    inc_id = open_incident(store, "error_rate")
    parked = engine.remediate(inc_id)
    assert [(a.action, a.status) for a in parked] == [
        ("rollback", "awaiting_approval"),
        ("notify", "awaiting_approval"),
        ("notify", "succeeded"),  # people are told there is something to approve
    ]
    assert work.calls == [] and received.bodies[0]["event"] == "awaiting_approval"

    clock.advance(minutes=3)
    done = approve(store, inc_id, WebhookExecutor(work), by="alice", clock=clock)
    assert [(a.action, a.status, a.approved_by) for a in done[:2]] == [
        ("rollback", "succeeded", "alice"),
        ("notify", "succeeded", "alice"),
    ]
    assert work.actions == ["rollback"] and done[0].started_at == clock.now
    assert received.bodies[1]["outcomes"][0]["status"] == "succeeded"
    approved = store.events.list(kind="remediation.approved")
    assert {e.details["by"] for e in approved} == {"alice"} and len(approved) == 2
    with pytest.raises(AIOpsError, match="no action awaiting approval"):
        engine.approve(inc_id, by="alice")

    # Rejected: nothing runs. Resolved while parked: cancelled.
    second = open_incident(store, "error_rate", "churn-eu")
    engine.remediate(second)
    rejected = reject(store, second, by="bob", reason="not now")
    assert [a.status for a in rejected[:2]] == ["rejected", "rejected"]
    assert rejected[0].error == "rejected by bob: not now"
    resolve(store, second)
    third = open_incident(store, "error_rate", "churn-eu")
    engine.remediate(third)
    resolve(store, third, note="fixed by hand")
    assert [a.status for a in list_actions(store, third)][:2] == ["cancelled", "cancelled"]
    assert work.actions == ["rollback"]


def test_failed_promote_withdraws_the_canary(store: Store) -> None:
    work = RecordingExecutor(outcomes={"promote": RuntimeError("git push refused")})
    engine = RemediationEngine(
        store,
        work,
        [
            policy(
                name="p",
                on={"kinds": ["quality_drop"]},
                actions=["retrain", "canary", "promote", "notify"],
                notify={"webhook": "http://127.0.0.1:9/unused"},
            )
        ],
    )
    inc_id = open_incident(store, "quality_drop")
    actions = engine.remediate(inc_id)
    by_action = [(a.action, a.status) for a in actions]
    assert by_action == [
        ("retrain", "succeeded"),
        ("canary", "succeeded"),
        ("promote", "failed"),
        ("notify", "succeeded"),
        ("rollback", "succeeded"),
    ]
    promote, rollback = actions[2], actions[4]
    assert promote.error is not None
    assert promote.error.startswith("RuntimeError: git push refused; serving unchanged")
    assert f"withdrawn by action {rollback.id}" in promote.error
    assert promote.result == {"serving_unchanged": True, "compensated_by": rollback.id}
    assert work.actions == ["retrain", "canary", "promote", "rollback", "notify"]
    undo = work.calls[3][2]
    assert undo.compensates is not None and undo.compensates.action_id == actions[1].id
    assert undo.compensates.result.commits == ("c0ffee1",)
    assert "'promote' failed" in undo.compensates.reason
    assert undo.action_id == rollback.id and undo.settings == RollbackSettings()
    assert rollback.params["compensates"]["result"]["commits"] == ["c0ffee1"]
    told = work.calls[4][2].outcomes
    assert [(o.action, o.status) for o in told] == [
        ("retrain", "succeeded"),
        ("canary", "succeeded"),
        ("rollback", "succeeded"),
        ("promote", "failed"),
    ]


def test_canary_that_does_not_hold_stops_the_chain(sqlite_store: Store) -> None:
    work = RecordingExecutor(
        outcomes={
            "canary": ActionResult(
                did="canary withdrawn", details={"held": False, "reason": "auc fell by 0.05"}
            )
        }
    )
    engine = RemediationEngine(
        sqlite_store,
        work,
        [
            policy(
                name="p", on={"kinds": ["quality_drop"]}, actions=["retrain", "canary", "promote"]
            )
        ],
    )
    actions = engine.remediate(open_incident(sqlite_store, "quality_drop"))
    assert [(a.action, a.status) for a in actions] == [
        ("retrain", "succeeded"),
        ("canary", "failed"),
        ("promote", "cancelled"),
    ]
    assert actions[1].error == "canary did not hold: auc fell by 0.05; serving unchanged"
    assert actions[2].error == "not run: 'canary' failed"
    assert work.actions == ["retrain", "canary"]


def test_failed_compensation_says_serving_changed(sqlite_store: Store) -> None:
    work = RecordingExecutor(
        outcomes={"promote": AIOpsError("conflict"), "rollback": AIOpsError("revert failed")}
    )
    engine = RemediationEngine(
        sqlite_store,
        work,
        [
            policy(
                name="p", on={"kinds": ["quality_drop"]}, actions=["retrain", "canary", "promote"]
            )
        ],
    )
    actions = engine.remediate(open_incident(sqlite_store, "quality_drop"))
    promote = actions[2]
    assert promote.status == "failed" and promote.error is not None
    assert "serving CHANGED" in promote.error and promote.result["serving_unchanged"] is False
    assert actions[3].action == "rollback" and actions[3].status == "failed"
    assert "may still be live" in (actions[3].error or "")


@pytest.mark.parametrize(
    ("returned", "kind"), [(["not", "a", "result"], "list"), ({"did": "a plain dict"}, "dict")]
)
def test_executor_must_return_an_action_result(
    sqlite_store: Store, returned: object, kind: str
) -> None:
    work = RecordingExecutor(outcomes={"rollback": returned})
    engine = RemediationEngine(
        sqlite_store, work, [policy(name="p", on={"kinds": ["error_rate"]}, actions=["rollback"])]
    )
    (action,) = engine.remediate(open_incident(sqlite_store, "error_rate"))
    assert action.status == "failed"
    assert action.error == (
        f"executor RecordingExecutor.rollback returned {kind}, not an ActionResult; "
        "serving unchanged"
    )


def test_webhook_failures_and_secrets(
    sqlite_store: Store, hook: tuple[str, Hook], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = hook
    base, _, path = url.partition("/hooks")

    def notify_with(webhook: str, headers: dict[str, str] | None = None) -> Any:
        engine = RemediationEngine(
            sqlite_store,
            WebhookExecutor(),
            [
                policy(
                    name=f"n{len(received.bodies)}-{abs(hash(webhook)) % 1000}",
                    on={"kinds": ["error_rate"]},
                    actions=["notify"],
                    notify={"webhook": webhook, "headers": headers or {}, "timeout_s": 2},
                )
            ],
        )
        inc_id = open_incident(sqlite_store, "error_rate")
        (action,) = engine.remediate(inc_id)
        resolve(sqlite_store, inc_id)
        return action

    monkeypatch.setenv("HOOK_BASE", base)
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    ok = notify_with("${HOOK_BASE}/hooks" + path, {"Authorization": "Bearer ${HOOK_TOKEN}"})
    assert ok.status == "succeeded" and received.headers[-1]["Authorization"] == "Bearer s3cret"
    assert "HOOK_BASE" in ok.params["settings"]["webhook"] and "s3cret" not in json.dumps(ok.params)

    received.status = 500
    failed = notify_with(url)
    assert failed.status == "failed"
    assert failed.error is not None and "answered 500: nothing" in failed.error
    assert "T0-secret" not in failed.error

    unreachable = notify_with("http://127.0.0.1:9/x")
    assert unreachable.status == "failed" and "unreachable" in (unreachable.error or "")

    missing = notify_with("${NOT_SET_ANYWHERE}/x")
    assert missing.status == "failed"
    assert "environment variable NOT_SET_ANYWHERE is not set" in (missing.error or "")


def test_webhook_executor_without_delegate(sqlite_store: Store) -> None:
    engine = RemediationEngine(
        sqlite_store,
        WebhookExecutor(),
        [policy(name="p", on={"kinds": ["quality_drop"]}, actions=["retrain"])],
    )
    (action,) = engine.remediate(open_incident(sqlite_store, "quality_drop"))
    assert action.status == "failed"
    assert action.error is not None and action.error.startswith(
        "no executor for 'retrain' is configured"
    )


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_approve_and_reject(project: Project, hook: tuple[str, Hook]) -> None:
    url, received = hook
    store = project.store
    engine = RemediationEngine(
        store,
        WebhookExecutor(RecordingExecutor()),
        [
            policy(
                name="ask-first",
                on={"kinds": ["error_rate"]},
                require_approval=True,
                actions=["notify"],
                notify={"webhook": url},
            )
        ],
    )
    inc_id = open_incident(store, "error_rate")
    engine.remediate(inc_id)
    assert len(received.bodies) == 1  # the request for approval
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    out = runner.invoke(app, ["approve", str(inc_id), "--by", "carol"], env=env)
    assert out.exit_code == 0, out.output
    assert "succeeded" in out.output and "carol" in out.output
    assert len(received.bodies) == 2 and received.bodies[1]["event"] == "remediation"
    again = runner.invoke(app, ["approve", str(inc_id)], env=env)
    assert again.exit_code == 1 and isinstance(again.exception, AIOpsError)
    shown = runner.invoke(app, ["show", str(inc_id)], env=env)
    assert "remediation.approved" in shown.output and "notify: succeeded" in shown.output

    other = open_incident(store, "error_rate", "churn-eu")
    engine.remediate(other)
    out = runner.invoke(app, ["reject", str(other), "--reason", "noisy"], env=env)
    assert out.exit_code == 0 and "rejected" in out.output
