"""AIOps: from metric series to healed deployments.

* :mod:`~opsloop.aiops.detectors` — streaming anomaly detectors (robust MAD, EWMA, seasonal,
  ensemble) by name; :mod:`~opsloop.aiops.rules` and :mod:`~opsloop.aiops.alerting` turn
  threshold rules and detector scores on metric series into alerts;
* :mod:`~opsloop.aiops.alerts` — alerts in the store, deduplicated by fingerprint, and
  Alertmanager webhooks;
* :mod:`~opsloop.aiops.lineage`, :mod:`~opsloop.aiops.correlation` and
  :mod:`~opsloop.aiops.incidents` — alerts correlated over the lineage graph into incidents
  with a ranked root cause, and their timelines; :mod:`~opsloop.aiops.evidence` charts them;
* :mod:`~opsloop.aiops.remediation` — the engine that runs remediation policies on incidents
  (guardrails, approval, recovery); :mod:`~opsloop.aiops.actions` — what an action gets and
  returns, and every action by name (plugins: entry-point group
  ``opsloop.remediation_actions``); :mod:`~opsloop.aiops.executors` — who does the built-in
  actions' work;
* :mod:`~opsloop.aiops.nab`, :mod:`~opsloop.aiops.benchmark` and
  :mod:`~opsloop.aiops.benchmark_render` — the Numenta Anomaly Benchmark: its scoring, the
  detectors' scoreboard, and its tables and charts.

The detectors are re-exported here.
"""

from opsloop.aiops.detectors import (
    DETECTORS,
    Detector,
    EnsembleDetector,
    EWMADetector,
    MADDetector,
    SeasonalDetector,
    default_detector,
    get_detector,
)

__all__ = [
    "DETECTORS",
    "Detector",
    "EWMADetector",
    "EnsembleDetector",
    "MADDetector",
    "SeasonalDetector",
    "default_detector",
    "get_detector",
]
