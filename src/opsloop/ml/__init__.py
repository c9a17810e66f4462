"""MLOps phases as pure functions: split, features, candidates, tuning, evaluation, gates.

Every function takes plain typed parameters and returns pydantic results (JSON-serialisable,
except the fitted model a :class:`TuneResult` carries), so the pipeline engine can wrap each
one into a cached step.
"""

from __future__ import annotations

from opsloop.ml.candidates import (
    DEFAULT_CANDIDATES,
    Candidate,
    available_candidates,
    candidate_names,
    get_candidate,
    register_candidate,
    unregister_candidate,
)
from opsloop.ml.evaluate import EvaluationResult, evaluate_model, predict_for_metrics, write_report
from opsloop.ml.features import (
    FeatureSpec,
    build_preprocessor,
    check_feature_frame,
    infer_feature_types,
)
from opsloop.ml.gates import (
    ChampionGate,
    ContractGate,
    GateResult,
    GateSpec,
    ThresholdGate,
    evaluate_gates,
    gates_passed,
    render_gate_table,
    validate_gates,
)
from opsloop.ml.metrics import (
    METRICS,
    PROBLEM_TYPES,
    MetricInfo,
    ProblemType,
    check_problem_type,
    compute_metrics,
    get_metric,
    is_improvement,
    metric_direction,
    score_model,
)
from opsloop.ml.split import check_target, split_dataset
from opsloop.ml.tune import (
    CandidateResult,
    TrialRecord,
    TuneResult,
    render_tune_table,
    tune_candidates,
)

__all__ = [
    "DEFAULT_CANDIDATES",
    "METRICS",
    "PROBLEM_TYPES",
    "Candidate",
    "CandidateResult",
    "ChampionGate",
    "ContractGate",
    "EvaluationResult",
    "FeatureSpec",
    "GateResult",
    "GateSpec",
    "MetricInfo",
    "ProblemType",
    "ThresholdGate",
    "TrialRecord",
    "TuneResult",
    "available_candidates",
    "build_preprocessor",
    "candidate_names",
    "check_feature_frame",
    "check_problem_type",
    "check_target",
    "compute_metrics",
    "evaluate_gates",
    "evaluate_model",
    "gates_passed",
    "get_candidate",
    "get_metric",
    "infer_feature_types",
    "is_improvement",
    "metric_direction",
    "predict_for_metrics",
    "register_candidate",
    "render_gate_table",
    "render_tune_table",
    "score_model",
    "split_dataset",
    "tune_candidates",
    "unregister_candidate",
    "validate_gates",
    "write_report",
]
