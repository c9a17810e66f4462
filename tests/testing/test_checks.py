"""The check suites themselves (opsloop.testing): a broken implementation fails the check that
is about its fault, by name; the suites need neither pytest nor a running pytest."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path

import pytest

from opsloop.aiops.detectors import MADDetector
from opsloop.artifacts.fsspec_store import FsspecArtifactStore
from opsloop.gitops.runtime.kubernetes import KubernetesRuntime
from opsloop.gitops.types import HealthStatus
from opsloop.pipeline.executors.base import StepResult, StepTask
from opsloop.pipeline.executors.inline import InlineExecutor
from opsloop.testing import (
    Check,
    check_artifact_store,
    check_detector,
    check_executor,
    check_runtime,
    raises,
    yield_artifact_store_checks,
    yield_detector_checks,
    yield_executor_checks,
    yield_runtime_checks,
    yield_store_checks,
)


def only(checks: Iterator[Check], name: str) -> Check:
    [found] = [c for c in checks if c.name == name]
    return found


# -- broken implementations, one fault each -------------------------------------------------


class Loud(MADDetector):
    """Scores beyond 1."""

    def score_one(self, x: float, t: datetime | None = None) -> float:
        return 3.0 * super().score_one(x, t)


class Peeking(MADDetector):
    """Learns while it scores."""

    def score_one(self, x: float, t: datetime | None = None) -> float:
        score = super().score_one(x, t)
        super().learn_one(x, t)
        return score


class Trusting(FsspecArtifactStore):
    """Reads a blob without checking it against its digest."""

    def get_bytes(self, digest: str) -> bytes:
        if not self.exists(digest):
            return super().get_bytes(digest)
        return bytes(self.fs.cat_file(self._path(digest)))


class Raising(InlineExecutor):
    """Fails the future when the step fails, instead of returning a result."""

    def submit(self, task: StepTask) -> Future[StepResult]:
        result = super().submit(task).result()
        if result.ok:
            return super().submit(task)
        failed: Future[StepResult] = Future()
        failed.set_exception(RuntimeError(result.error))
        return failed


class Forgetful(KubernetesRuntime):
    """Never stops anything."""

    def stop(self, name: str) -> None:
        pass


# -- each suite catches its fault -----------------------------------------------------------


def test_detector_checks_catch_scores_beyond_one() -> None:
    with pytest.raises(
        AssertionError, match=r"^check_scores_lie_in_unit_interval: a score is above 1"
    ):
        only(yield_detector_checks(), "check_scores_lie_in_unit_interval")(Loud)
    with pytest.raises(AssertionError, match=r"failed:\n- check_scores_lie_in_unit_interval: "):
        check_detector(Loud, slow=False)


def test_detector_checks_catch_a_score_that_learns() -> None:
    check = only(yield_detector_checks(), "check_score_one_does_not_change_the_detector")
    check(MADDetector)
    with pytest.raises(AssertionError, match=r"^check_score_one_does_not_change_the_detector: "):
        check(Peeking)


def test_detector_checks_name_a_factory_that_builds_no_detector() -> None:
    with pytest.raises(AssertionError, match="the factory returned 'mad', not a Detector"):
        only(yield_detector_checks(), "check_no_look_ahead")(lambda: "mad")  # type: ignore[arg-type,return-value]


def test_artifact_store_checks_catch_an_unchecked_read(tmp_path: Path) -> None:
    good = FsspecArtifactStore((tmp_path / "good").as_uri())
    check_artifact_store(good)
    bad = Trusting((tmp_path / "bad").as_uri())
    with pytest.raises(AssertionError) as info:
        check_artifact_store(bad)
    message = str(info.value)
    assert message.startswith("1 of 5 artifact store checks failed:\n"), message
    assert "- check_corrupted_blob_is_an_error: did not raise DigestMismatchError" in message


def test_artifact_store_checks_need_a_way_to_corrupt_other_stores(tmp_path: Path) -> None:
    class Other(Trusting):
        pass

    seen: list[str] = []

    def corrupt(store, digest: str, data: bytes) -> None:
        seen.append(digest)
        store.fs.pipe_file(store._path(digest), data)

    check = only(yield_artifact_store_checks(corrupt=corrupt), "check_corrupted_blob_is_an_error")
    with pytest.raises(AssertionError, match="did not raise DigestMismatchError"):
        check(Other((tmp_path / "o").as_uri()))
    assert len(seen) == 1


def test_executor_checks_catch_a_failed_future() -> None:
    check_executor(InlineExecutor)
    with pytest.raises(AssertionError) as info:
        check_executor(Raising)
    message = str(info.value)
    assert (
        "- check_a_failing_step_is_a_result: raised RuntimeError: ValueError: cannot handle 1"
        in message
    )
    assert "check_runs_more_tasks_than_workers" not in message


def test_runtime_checks_catch_a_stop_that_does_nothing(tmp_path: Path) -> None:
    check_runtime(lambda: KubernetesRuntime(tmp_path / "good"), up={HealthStatus.UNKNOWN})
    with pytest.raises(AssertionError) as info:
        check_runtime(lambda: Forgetful(tmp_path / "bad"))
    message = str(info.value)
    assert "- check_apply_then_stop: a stopped deployment is still live" in message
    assert "- check_unknown_deployment_is_missing" not in message


def test_runtime_checks_hold_a_runtime_to_its_health(tmp_path: Path) -> None:
    check = only(yield_runtime_checks(up={HealthStatus.HEALTHY}), "check_apply_then_stop")
    with pytest.raises(
        AssertionError, match=r"^check_apply_then_stop: status=<HealthStatus\.UNKNOWN"
    ):
        check(lambda: KubernetesRuntime(tmp_path / "k8s"))


# -- the suites' shape ----------------------------------------------------------------------

SUITES: dict[str, Callable[[], Iterator[Check]]] = {
    "detector": yield_detector_checks,
    "store": yield_store_checks,
    "artifact store": yield_artifact_store_checks,
    "executor": yield_executor_checks,
    "runtime": yield_runtime_checks,
}


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_every_check_has_a_unique_name_and_says_what_it_checks(suite: str) -> None:
    checks = list(SUITES[suite]())
    names = [c.name for c in checks]
    assert len(names) == len(set(names)) and len(names) >= 5
    assert all(n.startswith("check_") for n in names), names
    assert all(c.description != c.name and c.description.endswith(".") for c in checks)


def test_a_check_names_itself_on_any_error() -> None:
    def check_boom(subject: int) -> None:
        raise KeyError(subject)

    def check_bare(subject: int) -> None:
        # pytest rewrites the asserts of test modules (not those of opsloop.testing); a bare
        # AssertionError stands for an assert statement without that help.
        if subject != 2:
            raise AssertionError

    with pytest.raises(AssertionError, match=r"^check_boom: raised KeyError: 1$"):
        Check("check_boom", check_boom)(1)
    with pytest.raises(
        AssertionError, match=r"^check_bare: raise AssertionError \(test_checks\.py:\d+\)$"
    ):
        Check("check_bare", check_bare)(1)


def test_raises_without_pytest() -> None:
    with raises(ValueError, match="bad"):
        raise ValueError("a bad value")
    with (
        pytest.raises(AssertionError, match="did not raise ValueError or KeyError"),
        raises((ValueError, KeyError)),
    ):
        pass
    with (
        pytest.raises(AssertionError, match=r"ValueError\('other'\) does not match 'bad'"),
        raises(ValueError, match="bad"),
    ):
        raise ValueError("other")
    with pytest.raises(TypeError), raises(ValueError):
        raise TypeError("not caught")


def test_the_suites_run_without_pytest() -> None:
    code = (
        "import sys\n"
        "from opsloop.aiops.detectors import MADDetector\n"
        "from opsloop.testing import check_detector\n"
        "check_detector(MADDetector, slow=False)\n"
        "print(sorted(m for m in ('pytest', '_pytest') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_suites_refuse_to_run_without_asserts() -> None:
    out = subprocess.run(
        [sys.executable, "-O", "-c", "import opsloop.testing"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0
    assert "opsloop.testing needs assert statements: run Python without -O" in out.stderr
