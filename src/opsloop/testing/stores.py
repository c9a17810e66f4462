"""The metadata store contract: every operation, on any backend.

Each check takes the URL of a new, empty store, opens it (migrating it) and closes it::

    from opsloop.testing import check_store
    check_store(lambda: make_empty_database())   # a new, empty store's URL per check

    @pytest.mark.parametrize("check", yield_store_checks(), ids=lambda c: c.name)
    def test_my_backend(check, empty_url): check(empty_url)
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from opsloop.errors import AlreadyExistsError, NotFoundError, StoreError, TrackingError
from opsloop.store import Store, open_store
from opsloop.testing._core import Check, check, raises, run_checks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["check_store", "yield_store_checks"]

DIGEST = "sha256:" + "ab" * 32


def _open(url: str) -> Store:
    return open_store(url, actor="tester")


def _close(store: Store) -> None:
    store.close()


def _approx(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-6)


@check
def check_run_lifecycle(url: str) -> None:
    """A run starts running, with its params and tags, and ends with a status and error."""
    store = _open(url)
    try:
        run = store.runs.create("train", params={"lr": 0.1, "layers": [1, 2]}, tags={"team": "a"})
        assert run.status == "running" and run.ended_at is None and run.user == "tester"
        assert run.params == {"lr": "0.1", "layers": "[1, 2]"}, run.params
        assert run.tags == {"team": "a"}, run.tags
        store.runs.finish(run.id, "failed", error="boom")
        done = store.runs.get(run.id)
        assert done.status == "failed" and done.error == "boom"
        assert done.ended_at is not None and done.duration_s is not None and done.duration_s >= 0
    finally:
        _close(store)


@check
def check_run_prefix_and_missing(url: str) -> None:
    """A run is found by an id prefix; a missing run or a bad end status is an error."""
    store = _open(url)
    try:
        run = store.runs.create("a")
        assert store.runs.get(run.id[:10]).id == run.id
        with raises(NotFoundError, match="does not exist"):
            store.runs.get("0" * 32)
        with raises(NotFoundError):
            store.runs.finish("0" * 32)
        with raises(TrackingError, match="invalid end status"):
            store.runs.finish(run.id, "weird")
    finally:
        _close(store)


@check
def check_child_runs_and_filters(url: str) -> None:
    """Runs list by parent, kind, status and limit; an unknown parent is refused."""
    store = _open(url)
    try:
        parent = store.runs.create("parent", kind="pipeline")
        kids = [store.runs.create(f"t{i}", kind="trial", parent_id=parent.id) for i in range(3)]
        store.runs.finish(kids[0].id)
        assert {r.id for r in store.runs.list(parent_id=parent.id)} == {k.id for k in kids}
        assert [r.id for r in store.runs.list(kind="pipeline")] == [parent.id]
        assert [r.id for r in store.runs.list(status="finished")] == [kids[0].id]
        assert len(store.runs.list(limit=2)) == 2
        with raises(NotFoundError, match="parent run"):
            store.runs.create("orphan", parent_id="f" * 32)
    finally:
        _close(store)


@check
def check_params_are_fixed_once_logged(url: str) -> None:
    """A param may be logged again with the same value, never changed."""
    store = _open(url)
    try:
        run = store.runs.create("p")
        store.runs.log_params(run.id, {"a": 1})
        store.runs.log_params(run.id, {"a": 1, "b": "x"})
        with raises(TrackingError, match="cannot change"):
            store.runs.log_params(run.id, {"a": 2})
        assert store.runs.get(run.id).params == {"a": "1", "b": "x"}
        with raises(TrackingError, match="invalid param key"):
            store.runs.log_params(run.id, {"": 1})
    finally:
        _close(store)


@check
def check_tags_overwrite(url: str) -> None:
    """A tag set again takes the new value."""
    store = _open(url)
    try:
        run = store.runs.create("t")
        store.runs.set_tags(run.id, {"k": "1"})
        store.runs.set_tags(run.id, {"k": "2", "other": True})
        assert store.runs.get(run.id).tags == {"k": "2", "other": "true"}
    finally:
        _close(store)


@check
def check_metrics_history_and_latest(url: str) -> None:
    """Metric points keep their steps in order; a run shows each metric's latest value."""
    store = _open(url)
    try:
        run = store.runs.create("m")
        points = [("loss", 1.0 / (i + 1), i, 1000 + i) for i in range(50)]
        points += [("acc", 0.5, 0, 1000), ("acc", 0.9, 1, 1001)]
        store.runs.log_metric_points(run.id, points)
        store.runs.log_metric_points(run.id, [])
        hist = store.runs.metric_history(run.id, "loss")
        assert [p.step for p in hist] == list(range(50))
        assert _approx(hist[-1].value, 1 / 50), hist[-1].value
        metrics = store.runs.get(run.id).metrics
        assert set(metrics) == {"loss", "acc"}, metrics
        assert _approx(metrics["loss"], 1 / 50) and metrics["acc"] == 0.9, metrics
        assert store.runs.count_metric_points(run.id) == 52
        assert store.runs.metric_history(run.id, "nope") == []
    finally:
        _close(store)


@check
def check_metric_points_for_missing_run_are_refused(url: str) -> None:
    """Metric points of a run that does not exist are refused."""
    store = _open(url)
    try:
        with raises(NotFoundError):
            store.runs.log_metric_points("0" * 32, [("x", 1.0, 0, 0)])
    finally:
        _close(store)


@check
def check_artifacts(url: str) -> None:
    """Artifacts list by path; the same path logged again is replaced."""
    store = _open(url)
    try:
        run = store.runs.create("a")
        store.runs.log_artifact(run.id, "model/report.html", DIGEST, 10)
        store.runs.log_artifact(run.id, "data", DIGEST.replace("ab", "cd"), 99, kind="dir")
        store.runs.log_artifact(run.id, "data", DIGEST, 5, kind="dir")  # same path: replaced
        arts = store.runs.list_artifacts(run.id)
        assert [(a.path, a.size, a.kind) for a in arts] == [
            ("data", 5, "dir"),
            ("model/report.html", 10, "file"),
        ]
    finally:
        _close(store)


@check
def check_step_runs_and_cache_lookup(url: str) -> None:
    """Step runs update field by field; only a succeeded step is a cache hit."""
    store = _open(url)
    try:
        run = store.runs.create("pipe", kind="pipeline")
        step = store.steps.create(run.id, "load", cache_key="k1", params={"n": 1})
        assert step.status == "pending" and step.params == {"n": 1}
        assert store.steps.find_cached("k1") is None
        store.steps.update(
            step.id,
            status="succeeded",
            outputs={"output": DIGEST},
            cpu_seconds=0.5,
            peak_memory_bytes=1024,
            logs="hello",
            attempts=1,
        )
        hit = store.steps.find_cached("k1")
        assert hit is not None and hit.outputs == {"output": DIGEST} and hit.logs == "hello"
        failed = store.steps.create(run.id, "train", cache_key="k2")
        store.steps.update(failed.id, status="failed", error="ValueError: x", traceback="tb")
        assert store.steps.find_cached("k2") is None
        assert [s.name for s in store.steps.list(run.id)] == ["load", "train"]
        with raises(StoreError, match="unknown step run field"):
            store.steps.update(step.id, colour="red")
        with raises(StoreError, match="invalid step status"):
            store.steps.update(step.id, status="great")
        with raises(NotFoundError):
            store.steps.update(10**9, status="failed")
    finally:
        _close(store)


@check
def check_dataset_versions(url: str) -> None:
    """A dataset version is recorded once per digest; the first record stays."""
    store = _open(url)
    try:
        first = store.datasets.record(
            DIGEST, source="data.csv", row_count=10, schema={"a": "int64"}, name="d"
        )
        again = store.datasets.record(DIGEST, source="other.csv", row_count=11, schema={})
        assert again.source == "data.csv" == first.source
        assert store.datasets.get(DIGEST).schema_ == {"a": "int64"}
        with raises(NotFoundError):
            store.datasets.get("sha256:" + "00" * 32)
    finally:
        _close(store)


@check
def check_model_versions_numbered_per_model(url: str) -> None:
    """Versions count from 1 per model; missing models and versions are named."""
    store = _open(url)
    try:
        run = store.runs.create("r")
        v1 = store.models.create_version(
            "churn", artifact_digest=DIGEST, run_id=run.id, details={"metrics": {"auc": 0.9}}
        )
        v2 = store.models.create_version("churn", artifact_digest=DIGEST, tags={"stage": "x"})
        other = store.models.create_version("fraud", artifact_digest=DIGEST)
        assert (v1.version, v2.version, other.version) == (1, 2, 1)
        assert v1.uri == "models:/churn/1" and v1.run_id == run.id
        assert v2.tags == {"stage": "x"}
        assert [v.version for v in store.models.list_versions("churn")] == [2, 1]
        assert [m.name for m in store.models.list()] == ["churn", "fraud"]
        assert store.models.get("churn").latest_version == 2
        with raises(NotFoundError, match="no version 7"):
            store.models.get_version("churn", 7)
        with raises(NotFoundError, match="not registered"):
            store.models.get_version("nope", 1)
        with raises(TrackingError, match="invalid model name"):
            store.models.create_version("bad name!", artifact_digest=DIGEST)
    finally:
        _close(store)


@check
def check_registered_model_create_update(url: str) -> None:
    """Models and versions take descriptions, tags and details; details merge."""
    store = _open(url)
    try:
        store.models.create("m", description="first", tags={"team": "a"})
        with raises(AlreadyExistsError):
            store.models.create("m")
        store.models.update("m", description="second", tags={"team": "b"})
        info = store.models.get("m")
        assert info.description == "second" and info.tags == {"team": "b"}
        v = store.models.create_version("m", artifact_digest=DIGEST)
        upd = store.models.update_version(
            "m", v.version, description="d", tags={"t": "1"}, details={"gates": []}, status="ready"
        )
        assert upd.description == "d" and upd.tags == {"t": "1"} and upd.details == {"gates": []}
        upd = store.models.update_version("m", v.version, details={"more": 1})
        assert upd.details == {"gates": [], "more": 1}, upd.details
    finally:
        _close(store)


@check
def check_aliases(url: str) -> None:
    """Aliases move between versions, are deleted, and cannot be numbers."""
    store = _open(url)
    try:
        store.models.create_version("m", artifact_digest=DIGEST)
        store.models.create_version("m", artifact_digest=DIGEST, alias="champion")
        assert store.models.get_version_by_alias("m", "champion").version == 2
        assert store.models.set_alias("m", "champion", 1) == 2
        assert store.models.set_alias("m", "challenger", 2) is None
        assert store.models.get_version_by_alias("m", "champion").version == 1
        assert store.models.get_version("m", 2).aliases == ["challenger"]
        assert store.models.get("m").aliases == {"champion": 1, "challenger": 2}
        store.models.delete_alias("m", "challenger")
        with raises(NotFoundError, match="no alias 'challenger'"):
            store.models.get_version_by_alias("m", "challenger")
        with raises(NotFoundError):
            store.models.delete_alias("m", "challenger")
        with raises(NotFoundError, match="no version 9"):
            store.models.set_alias("m", "champion", 9)
        with raises(TrackingError, match="cannot be a number"):
            store.models.set_alias("m", "3", 1)
    finally:
        _close(store)


@check
def check_every_state_change_is_an_event(url: str) -> None:
    """Runs, models, versions and aliases each leave an event, filterable by kind and object."""
    store = _open(url)
    try:
        run = store.runs.create("r")
        store.runs.finish(run.id)
        store.models.create_version("m", artifact_digest=DIGEST, run_id=run.id, alias="champion")
        store.models.delete_alias("m", "champion")
        store.events.emit("custom.thing", "deployment", "web", {"x": 1})
        kinds = [e.kind for e in store.events.list()]
        assert kinds == [
            "run.started",
            "run.finished",
            "model.created",
            "model_version.created",
            "alias.set",
            "alias.deleted",
            "custom.thing",
        ], kinds
        ev = store.events.list(kind="alias.*")
        assert [e.details["alias"] for e in ev] == ["champion", "champion"]
        assert all(e.actor == "tester" for e in ev)
        assert store.events.list(object_type="model_version")[0].object_id == "m/1"
        assert store.events.list(object_type="run", object_id=run.id)[0].kind == "run.started"
    finally:
        _close(store)


@check
def check_events_are_append_only_in_the_database(url: str) -> None:
    """The database itself refuses to update or delete events."""
    store = _open(url)
    try:
        store.events.emit("x", "t", "1")
        with raises(DatabaseError), store.engine.begin() as conn:
            conn.execute(text("UPDATE events SET actor = 'mallory'"))
        with raises(DatabaseError), store.engine.begin() as conn:
            conn.execute(text("DELETE FROM events"))
        assert [e.actor for e in store.events.list()] == ["tester"]
    finally:
        _close(store)


@check
def check_delete_run(url: str) -> None:
    """Deleting a run deletes its metric points and step runs."""
    store = _open(url)
    try:
        run = store.runs.create("r", params={"a": 1})
        store.runs.log_metric_points(run.id, [("x", 1.0, 0, 0)])
        store.steps.create(run.id, "s")
        store.runs.delete(run.id)
        with raises(NotFoundError):
            store.runs.get(run.id)
        assert store.runs.count_metric_points(run.id) == 0
    finally:
        _close(store)


@check
def check_reopen_keeps_data(url: str) -> None:
    """What one store object wrote, another opened later reads."""
    s1 = open_store(url)
    run = s1.runs.create("r")
    s1.close()
    s2 = open_store(url)
    try:
        assert s2.runs.get(run.id).name == "r"
    finally:
        s2.close()


@check
def check_predictions_and_feedback(url: str) -> None:
    """Predictions read back by deployment and time, shadow ones on request; labels by id."""
    store = _open(url)
    try:
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        store.predictions.log(
            [
                {
                    "request_id": f"r{i}",
                    "deployment": "web",
                    "model_name": "churn",
                    "model_version": "1",
                    "time": t0 + timedelta(minutes=i),
                    "latency_ms": 1.5,
                    "shadow": i == 3,
                    "inputs": {"a": i},
                    "outputs": {"p": 0.1 * i},
                }
                for i in range(5)
            ]
        )
        store.predictions.log([])
        got = store.predictions.read(deployment="web", since=t0 + timedelta(minutes=1))
        assert [p.request_id for p in got] == ["r1", "r2", "r4"]
        assert got[0].inputs == {"a": 1} and got[0].time == t0 + timedelta(minutes=1)
        until = t0 + timedelta(minutes=4)
        assert len(store.predictions.read(include_shadow=True, until=until)) == 4
        store.predictions.log_feedback(
            [{"request_id": "r1", "deployment": "web", "label": {"y": 1}}]
        )
        assert [f.label for f in store.predictions.read_feedback(request_ids=["r1", "r9"])] == [
            {"y": 1}
        ]
    finally:
        _close(store)


@check
def check_metric_series(url: str) -> None:
    """Series points read back by name and labels, since a time, and the latest few."""
    store = _open(url)
    try:
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        store.series.append(
            [
                (
                    "drift.psi",
                    {"feature": "a", "deployment": "web"},
                    t0 + timedelta(hours=i),
                    i / 10,
                )
                for i in range(3)
            ]
            + [("drift.psi", {"deployment": "web", "feature": "b"}, t0, 0.5)]
        )
        one = store.series.read("drift.psi", {"deployment": "web", "feature": "a"})
        assert [p.value for p in one] == [0.0, 0.1, 0.2]
        assert len(store.series.read("drift.psi")) == 4
        assert len(store.series.read("drift.psi", since=t0 + timedelta(hours=1))) == 2
        latest = store.series.read("drift.psi", {"deployment": "web", "feature": "a"}, last=2)
        assert [p.value for p in latest] == [0.1, 0.2]
        assert store.series.list("drift.") == [
            ("drift.psi", {"deployment": "web", "feature": "a"}),
            ("drift.psi", {"deployment": "web", "feature": "b"}),
        ]
    finally:
        _close(store)


_CHECKS: tuple[Check[str], ...] = (
    check_run_lifecycle,
    check_run_prefix_and_missing,
    check_child_runs_and_filters,
    check_params_are_fixed_once_logged,
    check_tags_overwrite,
    check_metrics_history_and_latest,
    check_metric_points_for_missing_run_are_refused,
    check_artifacts,
    check_step_runs_and_cache_lookup,
    check_dataset_versions,
    check_model_versions_numbered_per_model,
    check_registered_model_create_update,
    check_aliases,
    check_every_state_change_is_an_event,
    check_events_are_append_only_in_the_database,
    check_delete_run,
    check_reopen_keeps_data,
    check_predictions_and_feedback,
    check_metric_series,
)


def yield_store_checks() -> Iterator[Check[str]]:
    """Every check of the metadata store contract; each takes a new, empty store's URL."""
    yield from _CHECKS


def check_store(new_url: Callable[[], str]) -> None:
    """Run the whole metadata store contract.

    Args:
        new_url: Returns the URL of a new, empty store; called once per check, since the
            checks count what they find (``sqlite:///`` a new file, a new database …).

    Raises:
        AssertionError: A check failed; the message names every failing check.
    """
    run_checks(yield_store_checks(), new_url, "store")
