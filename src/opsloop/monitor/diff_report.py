"""A data diff as rich tables for the terminal and as one self-contained HTML file.

The HTML report embeds its charts as PNGs (matplotlib, base64): rows added, removed, changed
and unchanged; the PSI of every shared column; and the old and new distribution of each
column, drifted ones first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from opsloop.monitor.report import REPORT_STYLE, _fmt, _png, draw_paired_bars, write_html

if TYPE_CHECKING:
    import os

    import jinja2

    from opsloop.monitor.datadiff import DataDiff
    from opsloop.monitor.drift import FeatureDrift

__all__ = ["render_diff", "write_diff_report"]

_OLD_COLOR = "#4c72b0"
_NEW_COLOR = "#dd8452"
_MAX_CHARTS = 40

_TEMPLATE = (
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Data diff: {{ diff.old }} → {{ diff.new }}</title>
<style>"""
    + REPORT_STYLE
    + """td.text { text-align: left; }
</style>
</head>
<body>
<h1>Data diff</h1>
<p><b>old</b> {{ diff.old }} ({{ diff.old_rows }} rows) &nbsp; → &nbsp;
<b>new</b> {{ diff.new }} ({{ diff.new_rows }} rows)</p>
<h2>Schema</h2>
{% if diff.schema_changes %}
<table><tr><th>column</th><th>change</th><th>old type</th><th>new type</th></tr>
{% for c in diff.schema_changes %}
<tr><td>{{ c.column }}</td><td class="text">{{ c.change }}</td>
<td class="text">{{ c.old_type or "-" }}</td><td class="text">{{ c.new_type or "-" }}</td></tr>
{% endfor %}</table>
{% else %}<p>No column added, removed or retyped.</p>{% endif %}
<h2>Rows</h2>
<p>{% if diff.rows.key %}Matched by key <b>{{ diff.rows.key | join(", ") }}</b>.
{% else %}Compared whole, over the shared columns (no key given).{% endif %}</p>
<table><tr><th>added</th><th>removed</th><th>changed</th><th>unchanged</th></tr>
<tr><td>{{ diff.rows.added }}</td><td>{{ diff.rows.removed }}</td>
<td>{{ "-" if diff.rows.changed is none else diff.rows.changed }}</td>
<td>{{ diff.rows.unchanged }}</td></tr></table>
{% if diff.rows.changed_by_column %}
<table><tr><th>column</th><th>rows changed</th></tr>
{% for col, n in diff.rows.changed_by_column.items() %}
<tr><td>{{ col }}</td><td>{{ n }}</td></tr>{% endfor %}</table>{% endif %}
{% if diff.rows.changed_examples %}
<table><tr><th>key</th><th>column</th><th>old</th><th>new</th></tr>
{% for e in diff.rows.changed_examples %}
<tr><td>{{ e.key }}</td><td class="text">{{ e.column }}</td><td>{{ e.old }}</td>
<td>{{ e.new }}</td></tr>{% endfor %}</table>{% endif %}
<figure><img alt="rows" src="data:image/png;base64,{{ rows_chart }}"></figure>
<h2>Distribution shift</h2>
<p>The old version is the reference; {{ diff.n_drifted }} of {{ diff.shift | length }} shared
column(s) drift.</p>
{% if diff.shift %}
<table><tr><th>column</th><th>kind</th><th>PSI</th><th>KS statistic</th><th>KS p-value</th>
<th>method</th><th>score</th><th>threshold</th><th>drift</th></tr>
{% for f in diff.shift.values() %}
<tr class="{{ 'drift' if f.drift_detected else '' }}"><td>{{ f.name }}</td>
<td class="text">{{ f.kind }}</td><td>{{ fmt(f.psi) }}</td><td>{{ fmt(f.ks_statistic) }}</td>
<td>{{ fmt(f.ks_pvalue) }}</td><td class="text">{{ f.method }}</td><td>{{ fmt(f.score) }}</td>
<td>{{ fmt(f.threshold) }}</td><td class="text">{{ "yes" if f.drift_detected else "no" }}</td>
</tr>{% endfor %}</table>
{% if psi_chart %}<figure><img alt="PSI per column" src="data:image/png;base64,{{ psi_chart }}">
<figcaption>Population stability index per column (0.1: moderate, 0.25: large shift).
</figcaption></figure>{% endif %}
{% endif %}
{% for name, reason in diff.skipped.items() %}<p>{{ name }}: not checked ({{ reason }}).</p>
{% endfor %}
{% for chart in charts %}
<figure><img alt="{{ chart.title }}" src="data:image/png;base64,{{ chart.png }}">
<figcaption>{{ chart.caption }}</figcaption></figure>
{% endfor %}
</body>
</html>
"""
)


def render_diff(diff: DataDiff) -> list[Table]:
    """The diff as rich tables: summary, schema changes, changed columns, shift."""
    summary = Table(title=f"{diff.old} → {diff.new}", title_justify="left")
    for column in ("", "old", "new"):
        summary.add_column(column, justify="left" if not column else "right")
    summary.add_row("rows", f"{diff.old_rows:,}", f"{diff.new_rows:,}")
    r = diff.rows
    rows = Table(title="rows" + (f" by key {', '.join(r.key)}" if r.key else " (whole)"))
    for column in ("added", "removed", "changed", "unchanged"):
        rows.add_column(column, justify="right")
    rows.add_row(
        f"{r.added:,}",
        f"{r.removed:,}",
        "-" if r.changed is None else f"{r.changed:,}",
        f"{r.unchanged:,}",
    )
    tables = [summary, rows]
    if diff.schema_changes:
        schema = Table(title="schema changes", title_justify="left")
        for column in ("column", "change", "old type", "new type"):
            schema.add_column(column)
        for c in diff.schema_changes:
            schema.add_row(c.column, c.change, c.old_type or "-", c.new_type or "-")
        tables.append(schema)
    if r.changed_by_column:
        changed = Table(title="changed values", title_justify="left")
        changed.add_column("column")
        changed.add_column("rows", justify="right")
        for column, n in r.changed_by_column.items():
            changed.add_row(column, f"{n:,}")
        tables.append(changed)
    if diff.shift:
        shift = Table(title="distribution shift (old = reference)", title_justify="left")
        for column in ("column", "kind", "PSI", "KS", "method", "score", "drift"):
            shift.add_column(column, justify="left" if column in ("column", "kind") else "right")
        for f in diff.shift.values():
            shift.add_row(
                f.name,
                f.kind,
                _fmt(f.psi),
                _fmt(f.ks_statistic),
                f.method,
                _fmt(f.score),
                "[bold red]yes[/]" if f.drift_detected else "no",
            )
        tables.append(shift)
    return tables


def _template() -> jinja2.Template:
    # Lazy imports here and below (noqa: PLC0415) of jinja2 and matplotlib: only a report
    # written to a file needs them.
    import jinja2  # noqa: PLC0415

    return jinja2.Environment(autoescape=True).from_string(_TEMPLATE)


def write_diff_report(diff: DataDiff, path: str | os.PathLike[str]) -> Path:
    """Write the diff as a self-contained HTML file with its charts.

    Raises:
        MonitorError: The file cannot be written.
    """
    target = Path(path)
    ordered = sorted(diff.shift.values(), key=lambda f: (not f.drift_detected, f.name))
    charts = [_column_chart(f) for f in ordered[:_MAX_CHARTS] if f.distribution is not None]
    html = _template().render(
        diff=diff,
        fmt=_fmt,
        rows_chart=_rows_chart(diff),
        psi_chart=_psi_chart(diff),
        charts=charts,
    )
    return write_html(target, html, "the diff report")


def _rows_chart(diff: DataDiff) -> str:
    from matplotlib.figure import Figure  # noqa: PLC0415

    r = diff.rows
    labels = ["unchanged", "changed", "removed", "added"]
    counts = [r.unchanged, r.changed or 0, r.removed, r.added]
    colors = ["#9db4c0", "#e0a458", "#c44e52", "#55a868"]
    figure = Figure(figsize=(6, 2.4))
    ax = figure.add_subplot(1, 1, 1)
    ax.barh(labels, counts, color=colors)
    for y, n in enumerate(counts):
        ax.text(n, y, f" {n:,}", va="center", fontsize=8)
    ax.set_xlabel("rows")
    ax.set_title("rows by what happened to them", fontsize=10)
    return _png(figure)


def _psi_chart(diff: DataDiff) -> str | None:
    scored = [(f.name, f.psi) for f in diff.shift.values() if f.psi is not None]
    if not scored:
        return None
    from matplotlib.figure import Figure  # noqa: PLC0415

    scored.sort(key=lambda item: item[1] or 0.0)
    names = [name for name, _ in scored]
    values = [float(psi or 0.0) for _, psi in scored]
    figure = Figure(figsize=(6, 0.6 + 0.3 * len(scored)))
    ax = figure.add_subplot(1, 1, 1)
    colors = [_NEW_COLOR if v >= 0.1 else _OLD_COLOR for v in values]
    ax.barh(names, values, color=colors)
    for bound in (0.1, 0.25):
        ax.axvline(bound, color="grey", ls="--", lw=1)
    ax.set_xlabel("PSI")
    return _png(figure)


def _column_chart(feature: FeatureDrift) -> dict[str, str]:
    from matplotlib.figure import Figure  # noqa: PLC0415

    dist = feature.distribution
    assert dist is not None
    figure = Figure(figsize=(6, 3.2))
    ax = figure.add_subplot(1, 1, 1)
    draw_paired_bars(ax, dist, ("old", "new"), (_OLD_COLOR, _NEW_COLOR))
    ax.legend(fontsize=8)
    verdict = "drifts" if feature.drift_detected else "stable"
    ax.set_title(f"{feature.name}: PSI {_fmt(feature.psi)}, {verdict}", fontsize=10)
    caption = (
        f"{feature.name}: old vs new distribution; {feature.method} = {_fmt(feature.score)} "
        f"(threshold {_fmt(feature.threshold)})."
    )
    return {"title": feature.name, "png": _png(figure), "caption": caption}
