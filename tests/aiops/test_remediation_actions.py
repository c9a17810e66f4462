"""Remediation actions: typed context and result, the registry of actions, actions that an
installed distribution adds, and action records written before results were typed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from opsloop.aiops.actions import (
    REMEDIATION_ACTIONS,
    ActionContext,
    ActionResult,
    BuiltinAction,
)
from opsloop.aiops.executors import WebhookExecutor
from opsloop.aiops.incidents import get_incident, list_actions, timeline
from opsloop.aiops.remediation import RemediationEngine, approve
from opsloop.errors import AIOpsError
from opsloop.spec.remediation import (
    CanarySettings,
    NotifySettings,
    RemediationPolicy,
    RetrainSettings,
    RollbackSettings,
)
from opsloop.store import Store, open_store
from opsloop.store.types import IncidentInfo
from tests.aiops.conftest import Hook, install_distribution
from tests.aiops.test_remediation import Clock, RecordingExecutor, open_incident, policy

MODULE = "opsloop_test_actions"

PLUGIN = """
from opsloop.aiops.actions import ActionContext, ActionResult

CALLS = []
RESULTS = []


def scale_down(context: ActionContext) -> ActionResult:
    CALLS.append(context)
    replicas = int(context.settings_as(dict).get("replicas", 1))
    result = ActionResult(
        did=f"scaled {context.deployment} down to {replicas}",
        version=context.version,
        details={"replicas": replicas, "after": sorted(context.previous)},
    )
    RESULTS.append(result)
    return result


def broken(context):
    CALLS.append(context)
    raise RuntimeError("the cluster said no")
"""

ENTRY_POINTS = f"""
[opsloop.remediation_actions]
scale_down = {MODULE}:scale_down
broken = {MODULE}:broken
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A distribution that adds the actions ``scale_down`` and ``broken``; its module."""
    site = tmp_path / "site"
    install_distribution(site, "opsloop-test-actions", ENTRY_POINTS, PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    REMEDIATION_ACTIONS.refresh()
    try:
        yield lambda: sys.modules[MODULE]
    finally:
        REMEDIATION_ACTIONS.refresh()
        sys.modules.pop(MODULE, None)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="tester")
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'a.db'}", actor="tester")
    yield s
    s.close()


# -- an installed distribution's action ------------------------------------------------------


def test_an_installed_action_runs_through_the_engine_like_a_builtin(
    store: Store, plugin: Any
) -> None:
    work = RecordingExecutor()
    engine = RemediationEngine(
        store,
        work,
        [
            policy(
                name="shrink",
                on={"kinds": ["error_rate"]},
                actions=["rollback", "scale_down"],
                settings={"scale_down": {"replicas": 2}},
                max_actions_per_day=2,
            )
        ],
        clock=Clock(),
    )
    inc_id = open_incident(store, "error_rate")
    _, scaled = engine.remediate(inc_id)
    assert (scaled.action, scaled.status, scaled.policy) == ("scale_down", "succeeded", "shrink")
    assert scaled.approved_by == "policy:shrink" and scaled.error is None
    (context,) = plugin().CALLS
    assert isinstance(context, ActionContext)
    assert (context.action, context.action_id, context.policy) == (
        "scale_down",
        scaled.id,
        "shrink",
    )
    assert context.deployment == "churn-prod" and context.incident.id == inc_id
    assert context.settings == {"replicas": 2}
    assert list(context.previous) == ["rollback"]
    assert context.previous["rollback"].commits == ("dead003",)
    assert [(o.action, o.status) for o in context.outcomes] == [("rollback", "succeeded")]
    # Recorded as a built-in's result is: flat JSON, on the timeline and in the audit log.
    (returned,) = plugin().RESULTS
    assert scaled.result == returned.to_json()
    assert scaled.result["did"] == "scaled churn-prod down to 2"
    assert scaled.result["replicas"] == 2 and scaled.result["after"] == ["rollback"]
    assert ActionResult.from_json(scaled.result) == returned
    assert scaled.params["settings"] == {"replicas": 2}
    assert "scale_down: succeeded" in [e.what for e in timeline(store, inc_id)]
    kinds = [
        e.kind
        for e in store.events.list(object_type="incident", object_id=str(inc_id))
        if e.details.get("action") == "scale_down"
    ]
    assert kinds == ["remediation.planned", "remediation.started", "remediation.succeeded"]
    assert get_incident(store, inc_id).status == "resolved"  # the rollback healed it
    # It counts for the policy's daily limit like a built-in.
    capped = engine.remediate(open_incident(store, "error_rate", "churn-eu"))
    assert [a.status for a in capped] == ["skipped", "skipped"]
    assert "max_actions_per_day=2" in (capped[0].error or "")


def test_a_failing_installed_action_stops_the_chain(sqlite_store: Store, plugin: Any) -> None:
    def engine(*actions: str) -> RemediationEngine:
        return RemediationEngine(
            sqlite_store,
            RecordingExecutor(),
            [policy(name="-".join(actions), on={"kinds": ["error_rate"]}, actions=list(actions))],
        )

    broken, cancelled = engine("broken", "rollback").remediate(
        open_incident(sqlite_store, "error_rate")
    )
    assert broken.status == "failed" and cancelled.status == "cancelled"
    assert broken.error == "RuntimeError: the cluster said no; serving unchanged"
    assert broken.result == {"serving_unchanged": True}
    assert cancelled.error == "not run: 'broken' failed"
    # An installed action that succeeded earlier in the chain may have changed serving.
    scaled, failed = engine("scale_down", "broken").remediate(
        open_incident(sqlite_store, "error_rate", "churn-eu")
    )
    assert scaled.status == "succeeded" and failed.status == "failed"
    assert failed.error == (
        "RuntimeError: the cluster said no; serving changed earlier in the chain by scale_down"
    )
    assert failed.result == {"serving_unchanged": False}


def test_a_dry_run_records_an_installed_action_without_running_it(
    sqlite_store: Store, plugin: Any
) -> None:
    engine = RemediationEngine(
        sqlite_store,
        RecordingExecutor(),
        [policy(name="try", on={"kinds": ["error_rate"]}, dry_run=True, actions=["scale_down"])],
    )
    (action,) = engine.remediate(open_incident(sqlite_store, "error_rate"))
    assert (action.status, action.result) == ("dry_run", {"would_run": True})
    assert plugin().CALLS == []


def test_a_policy_naming_an_unknown_action_is_refused_when_the_engine_is_built(
    sqlite_store: Store, plugin: Any
) -> None:
    typo = policy(name="shrink", on={"kinds": ["error_rate"]}, actions=["rollback", "scale_dwon"])
    with pytest.raises(AIOpsError) as info:
        RemediationEngine(sqlite_store, RecordingExecutor(), [typo])
    message = str(info.value)
    assert message.startswith(
        "policy 'shrink': unknown remediation action 'scale_dwon'; known remediation actions: "
    )
    known = message.split("known remediation actions: ")[1].split(" (", maxsplit=1)[0].split(", ")
    assert {"retrain", "canary", "promote", "rollback", "notify", "scale_down"} <= set(known)
    assert message.endswith("(did you mean 'scale_down'?)")
    assert info.value.hint is not None and "install the distribution" in info.value.hint
    # Nothing was planned: the refusal came before any incident.
    open_incident(sqlite_store, "error_rate")
    assert sqlite_store.incidents.list_actions() == []


def test_without_the_distribution_its_action_is_unknown(sqlite_store: Store) -> None:
    REMEDIATION_ACTIONS.refresh()
    with pytest.raises(AIOpsError, match="policy 'p': unknown remediation action 'scale_down'"):
        RemediationEngine(
            sqlite_store,
            RecordingExecutor(),
            [policy(name="p", on={"kinds": ["latency"]}, actions=["scale_down"])],
        )


def test_the_builtins_are_in_the_registry() -> None:
    for name in ("retrain", "canary", "promote", "rollback", "notify"):
        entry = REMEDIATION_ACTIONS.get(name)
        assert isinstance(entry, BuiltinAction) and entry.name == name
    context = ActionContext.for_incident(_incident(), "rollback")
    with pytest.raises(AIOpsError, match="runs through a remediation engine's executor"):
        REMEDIATION_ACTIONS.get("rollback")(context)


# -- the policy schema -----------------------------------------------------------------------


def test_a_policy_accepts_any_action_name_and_its_settings() -> None:
    p = policy(
        name="p",
        on={"kinds": ["cost_anomaly"]},
        actions=["scale_down", "notify"],
        settings={"scale_down": {"replicas": 1}},
        notify={"webhook": "https://hooks.example.com/x"},
    )
    assert p.settings_for("scale_down") == {"replicas": 1}
    assert p.settings_for("other") == {}
    assert isinstance(p.settings_for("notify"), NotifySettings)
    assert p.settings_for("promote") is p.canary and p.settings_for("retrain") is p.retrain


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"actions": ["scale down"]}, "invalid remediation action name 'scale down'"),
        ({"actions": ["rollback\n"]}, "invalid remediation action name"),
        ({"settings": {"scale_up": {}}}, "'settings' names 'scale_up', which is not among"),
        (
            {"actions": ["canary"], "settings": {"canary": {"weight": 5}}},
            "settings of the built-in action 'canary' go under 'canary:'",
        ),
        ({"actions": ["scale_down", "promote"]}, "'promote' needs a 'canary' before it"),
        ({"retrain": {"pipeline": "train"}}, "Extra inputs are not permitted"),
        ({"rollback": {"to": 3}}, "Extra inputs are not permitted"),
    ],
)
def test_policy_schema_errors(changes: dict[str, Any], message: str) -> None:
    data = {"name": "p", "on": {"kinds": ["latency"]}, "actions": ["scale_down"], **changes}
    with pytest.raises(pydantic.ValidationError, match=message):
        RemediationPolicy.model_validate(data)


# -- context and result ----------------------------------------------------------------------


def _incident() -> IncidentInfo:
    return IncidentInfo(
        id=7,
        title="quality drop on churn v3",
        kind="quality_drop",
        status="open",
        severity="critical",
        opened_at=Clock()(),
        updated_at=Clock()(),
        resolved_at=None,
        root_causes=[{"node": "model:churn/3"}],
        details={"deployments": ["churn-prod", "churn-eu"], "models": ["churn"]},
    )


def test_context_for_an_incident_and_its_settings() -> None:
    incident = _incident()
    context = ActionContext.for_incident(incident, "canary")
    assert (context.deployment, context.deployments) == ("churn-prod", ("churn-prod", "churn-eu"))
    assert (context.model, context.version, context.target) == ("churn", 3, "churn-prod,churn-eu")
    assert context.settings == CanarySettings() and context.policy == "manual"
    assert ActionContext.for_incident(incident, "retrain").settings == RetrainSettings()
    assert ActionContext.for_incident(incident, "rollback").settings == RollbackSettings()
    assert ActionContext.for_incident(incident, "scale_down").settings == {}
    with pytest.raises(AIOpsError, match="got CanarySettings settings, not RetrainSettings"):
        context.settings_as(RetrainSettings)
    with pytest.raises(AIOpsError, match="needs NotifySettings"):
        ActionContext.for_incident(incident, "notify")
    with pytest.raises(AttributeError):
        context.deployment = "other"  # type: ignore[misc]


def test_result_is_stored_flat_and_read_back() -> None:
    result = ActionResult(
        did="promoted", model="churn", version=4, commits=("abc",), details={"took_s": 1.5}
    )
    assert result.to_json() == {
        "did": "promoted",
        "model": "churn",
        "version": 4,
        "commits": ["abc"],
        "took_s": 1.5,
    }
    assert ActionResult.from_json(result.to_json()) == result
    assert ActionResult().to_json() == {}
    with pytest.raises(pydantic.ValidationError, match="details key 'version' is a field"):
        ActionResult(details={"version": 3})
    with pytest.raises(pydantic.ValidationError):
        result.did = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        # A canary's result as LoopExecutor stored it before results were typed.
        (
            {"did": "sent 20%", "model": "churn", "version": 2, "commit": "c1", "held": True},
            ActionResult(
                did="sent 20%", model="churn", version=2, details={"commit": "c1", "held": True}
            ),
        ),
        (
            {"status_code": 200, "webhook": "http://h/…"},
            ActionResult(details={"status_code": 200, "webhook": "http://h/…"}),
        ),
        # Values that do not fit a field stay in the details, whole.
        (
            {"did": 5, "version": "3", "commits": "abc", "model": None},
            ActionResult.model_construct(
                details={"did": 5, "version": "3", "commits": "abc", "model": None}
            ),
        ),
        ({"version": True}, ActionResult.model_construct(details={"version": True})),
        (None, ActionResult()),
    ],
)
def test_results_written_before_they_were_typed_are_read(
    stored: dict[str, Any] | None, read: ActionResult
) -> None:
    got = ActionResult.from_json(stored)
    assert (got.did, got.model, got.version, got.commits) == (
        read.did,
        read.model,
        read.version,
        read.commits,
    )
    assert got.details == read.details
    assert got.to_json() == (stored or {})  # nothing is lost


def test_a_result_that_is_not_json_is_stored_without_its_details(sqlite_store: Store) -> None:
    work = RecordingExecutor(
        outcomes={"rollback": ActionResult(did="rolled back", version=3, details={"x": object()})}
    )
    engine = RemediationEngine(
        sqlite_store, work, [policy(name="p", on={"kinds": ["error_rate"]}, actions=["rollback"])]
    )
    (action,) = engine.remediate(open_incident(sqlite_store, "error_rate"))
    assert action.status == "succeeded"  # it ran: its record must say so
    assert action.result["did"] == "rolled back" and action.result["version"] == 3
    assert action.result["details_not_stored"].startswith("not JSON: ")
    assert "x" not in action.result


# -- actions recorded before the context was typed -------------------------------------------


def _legacy_chain(store: Store, inc_id: int, steps: list[tuple[str, dict[str, Any]]]) -> None:
    """Park actions with the parameters the engine recorded before ``settings`` existed."""
    incident = get_incident(store, inc_id)
    base = {
        "incident_id": inc_id,
        "kind": incident.kind,
        "root_cause": incident.root_cause,
        "target": "churn-prod",
        "deployments": ["churn-prod"],
        "deployment": "churn-prod",
        "models": ["churn"],
        "model": "churn",
        "version": 3,
        "dry_run": False,
        "guardrails": {"cooldown_s": 0, "max_actions_per_day": 10},
    }
    for action, params in steps:
        store.incidents.create_action(
            inc_id,
            action=action,
            status="awaiting_approval",
            policy="old",
            created_at=Clock()(),
            params={**base, **params},
            event="remediation.awaiting_approval",
        )


def test_parked_actions_recorded_before_settings_were_typed_run(
    store: Store, hook: tuple[str, Hook]
) -> None:
    url, received = hook
    inc_id = open_incident(store, "quality_drop")
    canary = {"weight": 30, "hold_s": 5, "min_requests": 1, "max_metric_drop": 0.1, "metric": None}
    _legacy_chain(
        store,
        inc_id,
        [
            ("retrain", {"retrain": {"window_s": 120}}),
            ("canary", {"canary": canary}),
            ("promote", {"canary": canary}),
            ("notify", {"webhook": url, "headers": {"X-Old": "yes"}, "timeout_s": 3}),
        ],
    )
    work = RecordingExecutor()
    done = approve(store, inc_id, WebhookExecutor(work), by="alice")
    assert [(a.action, a.status) for a in done] == [
        ("retrain", "succeeded"),
        ("canary", "succeeded"),
        ("promote", "succeeded"),
        ("notify", "succeeded"),
    ]
    retrain, canary_ctx, promote = (c[2] for c in work.calls)
    assert retrain.settings == RetrainSettings(window_s=120)
    assert canary_ctx.settings == CanarySettings(
        weight=30, hold_s=5, min_requests=1, max_metric_drop=0.1
    )
    assert promote.settings == canary_ctx.settings
    assert (retrain.model, retrain.version, retrain.policy) == ("churn", 3, "old")
    assert received.headers[-1]["X-Old"] == "yes"
    assert [o["action"] for o in received.bodies[-1]["outcomes"]] == [
        "retrain",
        "canary",
        "promote",
    ]


def test_recorded_settings_that_no_longer_fit_fail_the_action_clearly(
    sqlite_store: Store,
) -> None:
    inc_id = open_incident(sqlite_store, "quality_drop")
    _legacy_chain(sqlite_store, inc_id, [("retrain", {"retrain": {"pipeline": "train"}})])
    work = RecordingExecutor()
    (action,) = approve(sqlite_store, inc_id, work, by="alice")
    assert action.status == "failed" and work.calls == []
    assert action.error == (
        "the recorded settings of 'retrain' do not fit RetrainSettings: pipeline: "
        "Extra inputs are not permitted; serving unchanged"
    )
    assert list_actions(sqlite_store, inc_id)[0].finished_at is not None
