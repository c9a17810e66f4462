"""Monitoring settings: the project's defaults (``monitoring:`` in ``opsloop.yaml``) and a
deployment's own (``spec.monitoring`` of its document in Git), which override them.

    monitoring:                      # opsloop.yaml
      window: 15m
      drift: {drift_share: 0.5}

    spec:                            # deploy/churn-prod.yaml
      monitoring:
        window: 30s
        monitors: [drift, quality]   # no service-health series for this one
        drift: {psi: 0.2}
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

__all__ = [
    "MONITORS",
    "DeploymentMonitoring",
    "DriftThresholds",
    "Duration",
    "Method",
    "MonitorName",
    "format_duration",
    "parse_duration",
]

Method = Literal["wasserstein", "ks", "psi", "chisquare", "z", "jensenshannon", "none"]
"""How a feature's drift is judged."""

MonitorName = Literal["drift", "quality", "service"]
MONITORS: tuple[MonitorName, ...] = ("drift", "quality", "service")
"""The monitors a deployment can run: data and prediction drift, model quality on the labels
that come back, and service health (request rate, latency) from the prediction log."""

#: Most distinct values a reference profile keeps per feature; a low-cardinality test needs
#: all of them.
MAX_LOW_CARDINALITY = 20

_DURATION = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s|m|min|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> timedelta:
    """A positive duration from seconds (a number) or text such as ``30s``, ``15m``, ``1h30m``.

    Raises:
        ValueError: The value is not a positive duration.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        parts = list(_DURATION.finditer(text))
        if not parts or "".join(p.group(0) for p in parts) != text:
            raise ValueError(f"{value!r} is not a duration: use e.g. 30s, 15m, 1h or 1h30m")
        seconds = sum(float(p["n"]) * _UNITS[p["unit"]] for p in parts)
    else:
        raise ValueError(f"{value!r} is not a duration: use e.g. 30s, 15m, 1h or 1h30m")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r} must be a duration longer than zero")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """A duration as :func:`parse_duration` reads it back: ``30s``, ``15m``, ``1h30m``."""
    seconds = value.total_seconds()
    if not seconds.is_integer():
        return f"{seconds:g}s"
    out, rest = "", int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A positive duration: seconds, or text such as ``15m``."""


class DriftThresholds(BaseModel):
    """How a feature's drift is judged.

    With ``verdict: test_and_effect`` (the default) a feature drifts when two things hold:
    its two-sample test says the window differs (Kolmogorov-Smirnov for numeric features;
    chi-square on the reference and window counts for categorical features and numeric ones
    with few values), with the p-values of a window's features adjusted together
    (``multiple_testing``) and at most ``alpha``; and the difference is large enough to
    matter: its effect size (normed Wasserstein distance for numeric features, Jensen-Shannon
    distance for counted values, or the ``*_method`` chosen) reaches its threshold below. A
    test alone flags tiny differences in large windows, an effect size alone flags sampling
    noise in small ones. A feature with fewer than ``min_count`` values in the window is not
    judged (status ``too_few``). ``verdict: evidently`` gives Evidently's ``DataDriftPreset``
    verdicts instead: one statistic per feature, chosen by reference size, compared with the
    thresholds below, with no adjustment and no minimum.

    Attributes:
        verdict: ``"test_and_effect"`` or ``"evidently"``, see above.
        alpha: Largest adjusted p-value that counts as significant (``test_and_effect``).
        multiple_testing: How the p-values of a window's features are adjusted together:
            ``"bh"`` (Benjamini-Hochberg), ``"bonferroni"``, or ``"none"``.
        min_count: Fewest values of a feature in a window for a verdict
            (``test_and_effect``).
        wasserstein: Normed Wasserstein distance at or above which a feature drifts.
        ks_pvalue: KS p-value at or below which a feature drifts (``evidently``).
        chisquare_pvalue: Chi-square p-value below which a feature drifts (``evidently``).
        z_pvalue: Two-proportion z-test p-value below which a feature drifts (``evidently``).
        jensenshannon: Jensen-Shannon distance at or above which a feature drifts.
        psi: PSI at or above which a feature drifts (only when PSI is the method).
        drift_share: Share of drifting features at or above which the data set drifts.
        small_reference: Largest reference size for which p-value tests are used
            (``evidently``).
        low_cardinality: Most distinct values (reference and window together, at most 20)
            for which a numeric feature is tested as a set of values.
        numeric_method: ``"auto"`` for the choice above, or one method for every numeric
            feature; with ``test_and_effect``, a distance chosen here is the effect size (a
            p-value method leaves the default one).
        categorical_method: ``"auto"``, or one method for every categorical feature (as
            ``numeric_method``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    verdict: Literal["test_and_effect", "evidently"] = "test_and_effect"
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    multiple_testing: Literal["bh", "bonferroni", "none"] = "bh"
    min_count: int = Field(default=30, ge=1)
    wasserstein: float = 0.1
    ks_pvalue: float = 0.05
    chisquare_pvalue: float = 0.05
    z_pvalue: float = 0.05
    jensenshannon: float = 0.1
    psi: float = 0.1
    drift_share: float = 0.5
    small_reference: int = Field(default=1000, ge=0)
    low_cardinality: int = Field(default=5, ge=1, le=MAX_LOW_CARDINALITY)
    numeric_method: Literal["auto", "wasserstein", "ks", "psi"] = "auto"
    categorical_method: Literal["auto", "chisquare", "z", "jensenshannon", "psi"] = "auto"

    def threshold(self, method: Method) -> float | None:
        """The threshold that applies to ``method``."""
        return {
            "wasserstein": self.wasserstein,
            "ks": self.ks_pvalue,
            "chisquare": self.chisquare_pvalue,
            "z": self.z_pvalue,
            "jensenshannon": self.jensenshannon,
            "psi": self.psi,
        }.get(method)

    def drifted(self, method: Method, score: float) -> bool:
        """Whether ``score`` of ``method`` means drift (comparisons as in Evidently)."""
        limit = self.threshold(method)
        if limit is None or math.isnan(score):
            return False
        if method == "ks":
            return score <= limit
        if method in ("chisquare", "z"):
            return score < limit
        return score >= limit


class DeploymentMonitoring(BaseModel):
    """A deployment's monitoring, in its document (``spec.monitoring``); what is left out
    comes from the project's ``monitoring`` section.

    Attributes:
        enabled: Monitor the deployment at all.
        window: Length of a monitoring window.
        monitors: Which monitors run (default: all of :data:`MONITORS`).
        drift: Drift thresholds that differ from the project's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    window: Duration | None = None
    monitors: list[MonitorName] = Field(default_factory=lambda: list(MONITORS), min_length=1)
    drift: dict[str, Any] = Field(default_factory=dict)

    @field_validator("drift")
    @classmethod
    def _drift_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Checked now, so that a typo is an error in the document rather than at a pass.
        DriftThresholds.model_validate(value)
        return value

    def thresholds(self, base: DriftThresholds) -> DriftThresholds:
        """``base`` with this deployment's drift settings over it."""
        if not self.drift:
            return base
        return DriftThresholds.model_validate({**base.model_dump(), **self.drift})
