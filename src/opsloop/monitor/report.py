"""Self-contained HTML drift report.

One file, no external assets: charts are PNGs drawn with matplotlib and embedded as base64,
so the report can be attached to an incident, mailed or archived as is.

matplotlib and jinja2 are imported when a report is written, not with the package: drift
checks run inside long-lived monitoring processes that never draw.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from opsloop.data.reference import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    numeric_values,
)
from opsloop.errors import MonitorError

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence

    import jinja2
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from opsloop.monitor.drift import Distribution, DriftResult, FeatureDrift

__all__ = ["REPORT_STYLE", "WindowTable", "draw_paired_bars", "write_drift_report", "write_html"]

_REFERENCE_COLOR = "#4c72b0"
_CURRENT_COLOR = "#dd8452"

REPORT_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.drift td { background: #fde2e1; }
figure { margin: 1em 0; }
figcaption { color: #555; font-size: 0.9em; }
"""
"""The style sheet the monitoring HTML reports share."""

_TEMPLATE = (
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>"""
    + REPORT_STYLE
    + """.verdict { font-size: 1.3em; padding: 0.5em 1em; display: inline-block; }
.verdict.drift { background: #fde2e1; }
.verdict.stable { background: #e1f5e4; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
{% for line in details %}<p class="detail">{{ line }}</p>
{% endfor %}
<p class="verdict {{ 'drift' if result.dataset_drift else 'stable' }}">
{% if result.dataset_drift %}Data set drift detected{% else %}No data set drift{% endif %}:
{{ result.n_drifted }} of {{ result.n_features }} features drift
({{ '%.1f' % (100 * result.share_drifted) }}%, threshold
{{ '%.0f' % (100 * result.thresholds.drift_share) }}%).</p>
<p>Computed {{ result.computed_at.isoformat(timespec='seconds') }} on {{ result.rows }} rows.
{% if profile %}Reference: {{ profile.rows }} rows, profiled
{{ profile.created_at.isoformat(timespec='seconds') }}.{% endif %}</p>
{% if result.prediction %}
<h2>Predictions</h2>
<p>Prediction drift {{ 'detected' if result.prediction.drift_detected else 'not detected' }}
({{ result.prediction.method }} = {{ fmt(result.prediction.score) }}, threshold
{{ fmt(result.prediction.threshold) }}).</p>
{% endif %}
<h2>Features</h2>
<table>
<tr><th>feature</th><th>kind</th><th>method</th><th>score</th><th>threshold</th><th>drift</th>
<th>PSI</th><th>KS p-value</th><th>Wasserstein (normed)</th><th>Jensen-Shannon</th>
<th>missing</th><th>out of range</th><th>unseen</th></tr>
{% for f in rows %}
<tr class="{{ 'drift' if f.drift_detected else '' }}"><td>{{ f.name }}</td><td>{{ f.kind }}</td>
<td>{{ f.method }}</td><td>{{ fmt(f.score) }}</td><td>{{ fmt(f.threshold) }}</td>
<td>{{ 'yes' if f.drift_detected else status_text.get(f.status, 'no') }}</td>
<td>{{ fmt(f.psi) }}</td><td>{{ fmt(f.ks_pvalue) }}</td><td>{{ fmt(f.wasserstein_normed) }}</td>
<td>{{ fmt(f.jensenshannon) }}</td><td>{{ pct(f.missing_rate) }}</td>
<td>{{ pct(f.out_of_range_rate) }}</td><td>{{ pct(f.unseen_rate) }}</td></tr>
{% endfor %}
</table>
{% if charts %}
<h2>Drifted features</h2>
{% for chart in charts %}
<figure><img alt="{{ chart.title }}" src="data:image/png;base64,{{ chart.png }}">
<figcaption>{{ chart.caption }}</figcaption></figure>
{% endfor %}
{% endif %}
{% if windows and windows.rows %}
<h2>Metrics per window</h2>
<table class="windows">
<tr><th>window (UTC)</th>{% for c in windows.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for label, values in windows.rows %}
<tr><td>{{ label }}</td>{% for v in values %}<td>{{ fmt(v) }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}
{% if series_charts %}
<h2>Metrics over time</h2>
{% for chart in series_charts %}
<figure><img alt="{{ chart.title }}" src="data:image/png;base64,{{ chart.png }}">
<figcaption>{{ chart.caption }}</figcaption></figure>
{% endfor %}
{% endif %}
</body>
</html>
"""
)


@dataclass(frozen=True)
class WindowTable:
    """Metric series side by side, one row per monitoring window.

    Attributes:
        columns: The series, by title.
        rows: ``(window, values)``: the window as ``[start, end)``, and the value of each
            column in it (None where the series has no point).
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[float | None, ...]], ...]

    @classmethod
    def of(
        cls,
        series: Mapping[str, Sequence[tuple[datetime, float]]],
        window: timedelta,
        *,
        last: int | None = None,
    ) -> WindowTable:
        """The table of series whose points are stamped with the start of their window:
        the point at ``t`` is the value of the window ``[t, t + window)``.

        Args:
            series: Points ``(window start, value)`` by title.
            window: The length of a window.
            last: Only the newest ``last`` windows.
        """
        columns = tuple(series)
        starts = sorted({t for points in series.values() for t, _ in points})
        if last is not None:
            starts = starts[-last:] if last > 0 else []
        values = {(title, t): v for title, points in series.items() for t, v in points}
        rows = tuple(
            (
                f"[{t:%Y-%m-%d %H:%M:%S}, {t + window:%Y-%m-%d %H:%M:%S})",
                tuple(values.get((title, t)) for title in columns),
            )
            for t in starts
        )
        return cls(columns, rows)


@cache
def _template() -> jinja2.Template:
    # Lazy imports here and below (noqa: PLC0415) of jinja2, matplotlib: each loads only where it is
    # used, so importing this module stays light.
    import jinja2  # noqa: PLC0415

    return jinja2.Environment(autoescape=True).from_string(_TEMPLATE)


def write_drift_report(
    result: DriftResult,
    path: str | os.PathLike[str],
    *,
    profile: ReferenceProfile | None = None,
    current: pd.DataFrame | None = None,
    series: Mapping[str, Sequence[tuple[datetime, float]]] | None = None,
    title: str = "Drift report",
    details: Sequence[str] = (),
    windows: WindowTable | None = None,
) -> Path:
    """Write a self-contained HTML report of a drift check.

    Args:
        result: The drift check, from :func:`~opsloop.monitor.drift.compute_drift`.
        path: Where to write the HTML file; parent folders are created.
        profile: The reference profile; adds the reference size and, for numeric features,
            the reference range to the charts.
        current: The window that was checked; with ``profile``, adds a cumulative
            distribution panel to each drifted numeric feature.
        series: Metric series to chart over time, by name: ``(timestamp, value)`` pairs,
            for instance the share of drifted features of past checks.
        title: Heading of the report.
        details: Lines said under the heading (what serves, which window was checked).
        windows: Metric series per window, as a table.

    Returns:
        The path written.

    Raises:
        MonitorError: The file cannot be written.
    """
    target = Path(path)
    features = list(result.features.values())
    drifted = [f for f in features if f.drift_detected]
    references: dict[str, NumericProfile | CategoricalProfile | None] = {}
    if profile is not None:
        references = dict(profile.features)
    charts = [_feature_chart(f, references.get(f.name), current) for f in drifted]
    if result.prediction is not None and result.prediction.drift_detected:
        reference = profile.prediction if profile is not None else None
        charts.append(_feature_chart(result.prediction, reference, None))
    series_charts = [_series_chart(name, points) for name, points in (series or {}).items()]
    rows = features + ([result.prediction] if result.prediction is not None else [])
    html = _template().render(
        title=title,
        details=list(details),
        windows=windows,
        result=result,
        profile=profile,
        rows=rows,
        charts=charts,
        series_charts=series_charts,
        fmt=_fmt,
        pct=_pct,
        status_text={"no_data": "no data", "too_few": "too few values"},
    )
    return write_html(target, html, "drift report")


def write_html(target: Path, html: str, what: str) -> Path:
    """Write ``html`` to ``target`` whole or not at all (through a partial file beside it).

    Raises:
        MonitorError: The file cannot be written; the message names ``what`` it is.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(html, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        raise MonitorError(f"cannot write {what} to {target}: {exc.strerror}") from exc
    return target


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.4g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _feature_chart(
    feature: FeatureDrift,
    reference: NumericProfile | CategoricalProfile | None,
    current: pd.DataFrame | None,
) -> dict[str, str]:
    from matplotlib.figure import Figure  # noqa: PLC0415

    numeric_ref = reference if isinstance(reference, NumericProfile) else None
    column = None
    if numeric_ref is not None and current is not None and feature.name in current.columns:
        column = current[feature.name]
    panels = 1 if column is None else 2
    figure = Figure(figsize=(1 + 5 * panels, 3.4))
    _draw_distribution(figure.add_subplot(1, panels, 1), feature, numeric_ref)
    if numeric_ref is not None and column is not None:
        _draw_cdf(figure.add_subplot(1, 2, 2), feature, numeric_ref, column)
    figure.suptitle(f"{feature.name}: {feature.method} = {_fmt(feature.score)}")
    caption = (
        f"{feature.name}: reference vs current distribution; drift by {feature.method} "
        f"({_fmt(feature.score)}, threshold {_fmt(feature.threshold)})."
    )
    return {"title": feature.name, "png": _png(figure), "caption": caption}


def _draw_distribution(ax: Axes, feature: FeatureDrift, ref: NumericProfile | None) -> None:
    dist = feature.distribution
    if dist is None:
        ax.text(0.5, 0.5, "no data", ha="center", va="center")
        return
    draw_paired_bars(ax, dist, ("reference", "current"))
    if dist.kind == "histogram" and ref is not None and dist.edges is not None:
        # Mark the reference range: values beyond it count as out of range.
        edges = np.asarray(dist.edges)
        bin_width = edges[1] - edges[0]
        for bound in (ref.min, ref.max):
            if edges[0] <= bound <= edges[-1]:
                ax.axvline((bound - edges[0]) / bin_width - 0.5, color="grey", ls="--", lw=1)
    ax.legend(fontsize=8)


def draw_paired_bars(
    ax: Axes,
    dist: Distribution,
    names: tuple[str, str],
    colors: tuple[str, str] = (_REFERENCE_COLOR, _CURRENT_COLOR),
) -> None:
    """Side-by-side bars of a distribution's reference and current shares per bin."""
    x = np.arange(len(dist.labels))
    width = 0.4
    ax.bar(x - width / 2, dist.reference, width, label=names[0], color=colors[0])
    ax.bar(x + width / 2, dist.current, width, label=names[1], color=colors[1])
    step = max(1, len(dist.labels) // 10)
    ax.set_xticks(x[::step], dist.labels[::step], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share")


def _draw_cdf(ax: Axes, feature: FeatureDrift, ref: NumericProfile, column: pd.Series) -> None:
    values = numeric_values(column, feature.name)
    finite = np.sort(values[np.isfinite(values)])
    cum = ref.sample_cumcounts
    ref_cdf = np.arange(1, ref.sample.size + 1) / ref.sample.size if cum is None else cum / cum[-1]
    ax.step(ref.sample, ref_cdf, where="post", label="reference", color=_REFERENCE_COLOR)
    if finite.size:
        # A million points draw no better than a few thousand.
        shown = np.unique(np.linspace(0, finite.size - 1, min(finite.size, 5000)).astype(int))
        cur_cdf = (shown + 1) / finite.size
        ax.step(finite[shown], cur_cdf, where="post", label="current", color=_CURRENT_COLOR)
    ax.set_ylabel("cumulative share")
    ax.set_title(f"KS statistic {_fmt(feature.ks_statistic)}", fontsize=9)
    ax.legend(fontsize=8)


def _series_chart(name: str, points: Sequence[tuple[datetime, float]]) -> dict[str, str]:
    if not points:
        raise MonitorError(f"series '{name}' has no points")
    from matplotlib.figure import Figure  # noqa: PLC0415

    ordered = sorted(points, key=lambda point: point[0])
    figure = Figure(figsize=(8, 2.8))
    ax = figure.add_subplot(1, 1, 1)
    # numpy refuses time zones: plot aware timestamps as naive UTC.
    naive = [t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t for t, _ in ordered]
    times = np.array(naive, dtype="datetime64[us]")
    ax.plot(times, [v for _, v in ordered], marker="o", ms=3)
    ax.set_title(name)
    figure.autofmt_xdate()
    caption = f"{name}: {len(ordered)} points, {ordered[0][0]:%Y-%m-%d %H:%M} to "
    caption += f"{ordered[-1][0]:%Y-%m-%d %H:%M}."
    return {"title": name, "png": _png(figure), "caption": caption}
