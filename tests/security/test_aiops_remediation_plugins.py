"""Remediation actions from installed distributions, hostile or broken, and action records
that were tampered with: a built-in cannot be taken over, a broken plugin is named when the
engine is built, and a bad record fails its action in one line instead of the engine."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

from opsloop.aiops.actions import REMEDIATION_ACTIONS, ActionResult
from opsloop.aiops.incidents import get_incident
from opsloop.aiops.remediation import RemediationEngine, approve
from opsloop.errors import PluginError
from opsloop.spec.remediation import RemediationPolicy
from opsloop.store import Store, open_store
from tests.aiops.conftest import install_distribution
from tests.aiops.test_remediation import Clock, RecordingExecutor, open_incident, policy

HOSTILE = "opsloop_hostile_actions"


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 's.db'}", actor="tester")
    yield s
    s.close()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="tester")
    yield s
    s.close()


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution whose entry points claim every built-in action and add broken ones;
    importing its module leaves a marker file."""
    marker = tmp_path / "imported"
    builtins = "".join(
        f"{name} = {HOSTILE}:take_over\n"
        for name in ("retrain", "canary", "promote", "rollback", "notify")
    )
    install_distribution(
        tmp_path / "site",
        "opsloop-hostile-actions",
        "[opsloop.remediation_actions]\n"
        + builtins
        + f"a_class = {HOSTILE}:AClass\n"
        + f"not_callable = {HOSTILE}:NOT_CALLABLE\n"
        + f"no_argument = {HOSTILE}:no_argument\n"
        + "missing = opsloop_no_such_module:action\n",
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n"
        "def take_over(context):\n    raise SystemExit('taken over')\n"
        "class AClass:\n    def __call__(self, context):\n        pass\n"
        "NOT_CALLABLE = 42\n"
        "def no_argument():\n    pass\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    REMEDIATION_ACTIONS.refresh()
    try:
        yield marker
    finally:
        REMEDIATION_ACTIONS.refresh()
        sys.modules.pop(HOSTILE, None)


def test_an_entry_point_cannot_take_over_a_builtin_action(
    sqlite_store: Store, hostile: Path
) -> None:
    work = RecordingExecutor()
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
    assert [a.status for a in actions] == ["succeeded"] * 3
    assert work.actions == ["retrain", "canary", "promote"]
    assert not hostile.exists()  # its module was never imported


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a_class", r"opsloop_hostile_actions\.AClass is a class: name an instance"),
        ("not_callable", "42 is not callable"),
        ("no_argument", "cannot be called with one argument"),
        ("missing", "cannot be imported: ModuleNotFoundError"),
    ],
)
def test_a_broken_action_is_named_when_the_engine_is_built(
    sqlite_store: Store, hostile: Path, name: str, message: str
) -> None:
    with pytest.raises(PluginError, match=message) as info:
        RemediationEngine(
            sqlite_store,
            RecordingExecutor(),
            [policy(name="p", on={"kinds": ["error_rate"]}, actions=["rollback", name])],
        )
    text = str(info.value)
    assert text.startswith(f"policy 'p': remediation action '{name}' from entry point ")
    assert "distribution 'opsloop-hostile-actions 1.0'" in text
    assert info.value.hint == "reinstall that distribution, or uninstall it"
    # Every other action still works.
    engine = RemediationEngine(
        sqlite_store,
        RecordingExecutor(),
        [policy(name="q", on={"kinds": ["error_rate"]}, actions=["rollback"])],
    )
    (action,) = engine.remediate(open_incident(sqlite_store, "error_rate"))
    assert action.status == "succeeded"


@pytest.mark.parametrize(
    "name", ["rollback\n", "../../etc/passwd", "os:system", "a b", "", "-x", "a" * 129, "ro\x00ll"]
)
def test_action_names_follow_the_name_rule(name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="invalid remediation action name"):
        RemediationPolicy.model_validate(
            {"name": "p", "on": {"kinds": ["latency"]}, "actions": [name]}
        )


def test_nan_and_huge_numbers_in_a_result_are_stored(store: Store) -> None:
    work = RecordingExecutor(
        outcomes={
            "rollback": ActionResult(
                did="rolled back",
                details={"drop": math.nan, "up": math.inf, "big": 10**30, "deep": [[[1]]]},
            )
        }
    )
    engine = RemediationEngine(
        store, work, [policy(name="p", on={"kinds": ["error_rate"]}, actions=["rollback"])]
    )
    (action,) = engine.remediate(open_incident(store, "error_rate"))
    assert action.status == "succeeded"
    assert action.result["drop"] is None and action.result["up"] is None
    # SQLite keeps an integer beyond 64 bits as a float; PostgreSQL keeps it whole.
    assert float(action.result["big"]) == 1e30 and action.result["deep"] == [[[1]]]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"settings": ["not", "a", "mapping"]}, "the recorded settings of 'canary' are a list"),
        ({"settings": {"weight": 1000}}, "do not fit CanarySettings: weight: Input should be"),
        ({"settings": {"weight": "${HOME}"}}, "do not fit CanarySettings: weight"),
    ],
)
def test_a_tampered_action_record_fails_that_action_only(
    sqlite_store: Store, params: dict[str, object], error: str
) -> None:
    inc_id = open_incident(sqlite_store, "quality_drop")
    for action in ("canary", "notify"):
        sqlite_store.incidents.create_action(
            inc_id,
            action=action,
            status="awaiting_approval",
            policy="tampered",
            created_at=Clock()(),
            params={
                "deployment": "churn-prod",
                "version": "3; DROP TABLE incidents",
                "deployments": "churn-prod",
                **(
                    params
                    if action == "canary"
                    else {"settings": {"webhook": "http://127.0.0.1:9/x"}}
                ),
            },
            event="remediation.awaiting_approval",
        )
    work = RecordingExecutor()
    canary, notify = approve(sqlite_store, inc_id, work, by="alice")
    assert canary.status == "failed" and error in (canary.error or "")
    assert work.actions == ["notify"]  # people are still told
    (_, _, told) = work.calls[0]
    assert told.version is None and told.outcomes[0].status == "failed"
    assert notify.status == "succeeded"
    assert get_incident(sqlite_store, inc_id).status == "open"
