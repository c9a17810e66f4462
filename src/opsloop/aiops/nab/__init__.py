"""Numenta Anomaly Benchmark (NAB) scoring, implemented from NAB's published method."""

from opsloop.aiops.nab.corpus import (
    NabCorpus,
    NabFile,
    load_profiles,
    load_results,
    load_windows,
    read_series,
)
from opsloop.aiops.nab.scoring import (
    PROBATIONARY_FRACTION,
    STANDARD_PROFILES,
    CorpusScore,
    CostProfile,
    FileLabels,
    FileScore,
    ThresholdResult,
    label_rows,
    normalized_score,
    optimize_threshold,
    probationary_length,
    scaled_sigmoid,
    score_corpus,
    score_file,
)

__all__ = [
    "PROBATIONARY_FRACTION",
    "STANDARD_PROFILES",
    "CorpusScore",
    "CostProfile",
    "FileLabels",
    "FileScore",
    "NabCorpus",
    "NabFile",
    "ThresholdResult",
    "label_rows",
    "load_profiles",
    "load_results",
    "load_windows",
    "normalized_score",
    "optimize_threshold",
    "probationary_length",
    "read_series",
    "scaled_sigmoid",
    "score_corpus",
    "score_file",
]
