"""AIOps: from metric series to healed deployments.

* :mod:`~opsloop.aiops.alerting` — the one entry point of a pass, :func:`raise_alerts
  <opsloop.aiops.alerting.raise_alerts>`: the threshold rules of :mod:`~opsloop.aiops.rules`
  and the anomaly detectors over a deployment's new series points, then correlation into
  incidents;
* :mod:`~opsloop.aiops.detectors` — streaming anomaly detectors with one small contract
  (``learn_one`` / ``score_one``): robust MAD, EWMA, seasonal and their ensemble, a
  contextual detector and an anomaly-likelihood wrapper, by name (plugins: entry-point group
  ``opsloop.detectors``), and their JSON checkpoints;
* :mod:`~opsloop.aiops.alerts` — alerts from detectors, rules and Alertmanager webhooks,
  deduplicated in the store by fingerprint;
* :mod:`~opsloop.aiops.lineage`, :mod:`~opsloop.aiops.correlation` and
  :mod:`~opsloop.aiops.incidents` — alerts correlated over the lineage graph into incidents
  with a ranked root cause, stored with their timelines; :mod:`~opsloop.aiops.evidence` draws
  an incident's series as charts and one HTML page;
* :mod:`~opsloop.aiops.remediation` — the engine that runs remediation policies on incidents
  under guardrails (cooldown, daily limit, dry run, approval) and withdraws a failed chain's
  canary; :mod:`~opsloop.aiops.actions` — what an action gets and returns, and every action by
  name (plugins: entry-point group ``opsloop.remediation_actions``);
  :mod:`~opsloop.aiops.executors` — the contract of whoever does the built-in actions' work
  (the loop's executor retrains and commits to Git; this package never imports it) and the
  executor that sends webhook notifications;
* :mod:`~opsloop.aiops.nab`, :mod:`~opsloop.aiops.benchmark`, :mod:`~opsloop.aiops.loco`
  and :mod:`~opsloop.aiops.benchmark_render` — the Numenta Anomaly Benchmark: its scoring,
  the detectors' scoreboard, out-of-sample checks (leave-one-category-out among them), and
  their tables and charts.

The detectors are re-exported here.
"""

from opsloop.aiops.detectors import (
    DETECTORS,
    ARTimeDetector,
    ContextDetector,
    Detector,
    EnsembleDetector,
    EWMADetector,
    FusedDetector,
    LikelihoodDetector,
    MADDetector,
    SeasonalDetector,
    default_detector,
    get_detector,
)

__all__ = [
    "DETECTORS",
    "ARTimeDetector",
    "ContextDetector",
    "Detector",
    "EWMADetector",
    "EnsembleDetector",
    "FusedDetector",
    "LikelihoodDetector",
    "MADDetector",
    "SeasonalDetector",
    "default_detector",
    "get_detector",
]
