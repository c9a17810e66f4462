"""Tracking: runs, parameters, metrics, tags and artifacts."""

from opsloop.tracking.buffer import MetricBuffer
from opsloop.tracking.fluent import (
    ActiveRun,
    active_run,
    end_run,
    log_artifact,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_tag,
    set_tags,
    start_run,
)

__all__ = [
    "ActiveRun",
    "MetricBuffer",
    "active_run",
    "end_run",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "set_tag",
    "set_tags",
    "start_run",
]
