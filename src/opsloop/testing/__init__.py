"""Contract check suites for the things opsloop picks by name, for any implementation.

A package that adds a detector, a store backend, an artifact store, an executor or a runtime
(see :mod:`opsloop.plugins`) runs the same checks as the built-in ones in its own tests. Each
``check_*`` runs a whole contract and raises AssertionError naming every failing check; each
``yield_*_checks`` lists the checks one by one (each a :class:`Check`, called with what it
checks), so a test suite can make one test per check::

    import pytest
    from opsloop.testing import check_detector, yield_detector_checks

    def test_contract():
        check_detector(MyDetector)

    @pytest.mark.parametrize("check", yield_detector_checks(), ids=lambda c: c.name)
    def test_each_check(check):
        check(MyDetector)

The checks are plain functions with ``assert`` statements: nothing here imports pytest.
:mod:`opsloop.testing.aiops_scenarios` holds seeded incident scenarios that measure
correlation (noise reduction, root-cause accuracy); :mod:`opsloop.testing.aiops_blind` holds a
second, independent generator of them, scored by :mod:`opsloop.testing.aiops_blind_score`.
"""

from opsloop.testing._core import Check, raises
from opsloop.testing.artifacts import check_artifact_store, yield_artifact_store_checks
from opsloop.testing.detectors import check_detector, yield_detector_checks
from opsloop.testing.executors import check_executor, yield_executor_checks
from opsloop.testing.runtimes import check_runtime, yield_runtime_checks
from opsloop.testing.stores import check_store, yield_store_checks

__all__ = [
    "Check",
    "check_artifact_store",
    "check_detector",
    "check_executor",
    "check_runtime",
    "check_store",
    "raises",
    "yield_artifact_store_checks",
    "yield_detector_checks",
    "yield_executor_checks",
    "yield_runtime_checks",
    "yield_store_checks",
]
