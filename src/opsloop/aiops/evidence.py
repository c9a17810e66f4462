"""Evidence of an incident: charts of the metric series its alerts fired on, and one HTML page.

For every distinct series behind the incident's alerts, a PNG chart shows the series from some
time before the incident opened until now, with the rule's threshold as a line, shaded spans
where the alerts fired, and a marker for each remediation action with its status. An
``index.html`` puts the charts and the timeline together; it has no external assets (the charts
are embedded as base64) so it can be attached to a ticket or archived as is.

matplotlib and jinja2 are imported when evidence is written, not with the package: alerting
runs in long-lived processes that never draw.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from opsloop.aiops.incidents import (
    ActionInfo,
    get_incident,
    incident_alerts,
    list_actions,
    timeline,
)
from opsloop.aiops.rules import ThresholdRule
from opsloop.errors import AIOpsError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import jinja2
    from matplotlib.figure import Figure

    from opsloop.aiops.alerts import AlertInfo
    from opsloop.store import Store

__all__ = [
    "DEFAULT_LOOKBACK",
    "EvidenceSeries",
    "describe_details",
    "evidence_series",
    "write_evidence",
]

DEFAULT_LOOKBACK = timedelta(hours=1)
"""How far before the incident opened the charts start, by default."""

# The label detector alerts add to name the series they scored; not a label of the series.
_SERIES_LABEL = "series"

_ACTION_COLORS = {
    "succeeded": "#2ca02c",
    "failed": "#d62728",
    "running": "#ff7f0e",
    "approved": "#ff7f0e",
    "awaiting_approval": "#bcbd22",
    "dry_run": "#17becf",
}
_OTHER_ACTION_COLOR = "#7f7f7f"
_SEVERITY_COLORS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>incident {{ inc.id }}: {{ inc.title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
tr.alert td { background: #fdf0e1; }
tr.action td { background: #e8f0fb; }
td.details { font-family: ui-monospace, monospace; font-size: 0.85em; max-width: 50em;
  word-break: break-all; }
.status { padding: 0.2em 0.6em; display: inline-block; }
.status.open { background: #fde2e1; }
.status.resolved { background: #e1f5e4; }
figure { margin: 1.5em 0; }
figcaption { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>Incident {{ inc.id }}: {{ inc.title }}</h1>
<p><span class="status {{ inc.status }}">{{ inc.status }}</span> · severity {{ inc.severity }}
· kind {{ inc.kind }} · opened {{ when(inc.opened_at) }} UTC
{% if inc.resolved_at %}· resolved {{ when(inc.resolved_at) }} UTC{% endif %}
{% if inc.deployments %}· deployments {{ inc.deployments | join(", ") }}{% endif %}</p>
{% if inc.root_causes %}
<h2>Root-cause candidates</h2>
<ol>{% for rc in inc.root_causes %}<li><code>{{ rc.node }}</code>
{% if rc.reason %}: {{ rc.reason }}{% endif %}</li>{% endfor %}</ol>
{% endif %}
<h2>Evidence</h2>
{% for chart in charts %}
<figure><img alt="{{ chart.title }}" src="data:image/png;base64,{{ chart.png }}">
<figcaption><strong>{{ chart.title }}</strong> · {{ chart.caption }}</figcaption></figure>
{% else %}
<p>No alert of this incident names a stored metric series.</p>
{% endfor %}
{% if unplotted %}
<p>Alerts without a stored series: {{ unplotted | join(", ") }}.</p>
{% endif %}
<h2>Timeline</h2>
<table>
<tr><th>time (UTC)</th><th>type</th><th>what</th><th>by</th><th>details</th></tr>
{% for e in entries %}
<tr class="{{ e.type }}"><td>{{ when(e.time) }}</td><td>{{ e.type }}</td><td>{{ e.what }}</td>
<td>{{ e.actor }}</td><td class="details">{{ compact(e.details) }}</td></tr>
{% endfor %}
</table>
<p>Written {{ when(now) }} UTC.</p>
</body>
</html>
"""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class EvidenceSeries:
    """One metric series behind an incident's alerts.

    Attributes:
        name: The series name.
        labels: The series' labels, exactly as stored.
        alerts: The incident's alerts that fired on it.
        threshold: The threshold of the rule that fired, when a rule did.
        op: The rule's comparison (``>``, ``<=`` …), with ``threshold``.
    """

    name: str
    labels: dict[str, str]
    alerts: list[AlertInfo] = field(default_factory=list)
    threshold: float | None = None
    op: str | None = None

    @property
    def title(self) -> str:
        """``name{label=value,…}``, as rules write a series."""
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{inner}}}" if inner else self.name


def _series_name(alert: AlertInfo) -> str | None:
    """The series an alert fired on: rule alerts keep it in details, detector ones in labels."""
    name = alert.details.get("series") or alert.labels.get(_SERIES_LABEL)
    return str(name) if name else None


def _threshold(alert: AlertInfo) -> tuple[float | None, str | None]:
    if isinstance(alert.details.get("threshold"), int | float):
        return float(alert.details["threshold"]), alert.details.get("op")
    rule = alert.details.get("rule")
    if not isinstance(rule, str):
        return None, None

    # Rule alerts record the rule as its expression; reading it back gives the threshold.
    try:
        parsed = ThresholdRule.model_validate(rule)
    except ValidationError:
        return None, None
    return parsed.threshold, parsed.op


def evidence_series(store: Store, alerts: Sequence[AlertInfo]) -> list[EvidenceSeries]:
    """The distinct stored series behind alerts, in order of their first alert.

    An alert's labels hold the series' labels plus the ones its rule adds, so the series is
    the stored one of that name whose labels are all among the alert's (the most specific
    one, when several are). Alerts that name no stored series are left out.
    """
    found: dict[tuple[str, str], EvidenceSeries] = {}
    known: dict[str, list[dict[str, str]]] = {}
    for alert in alerts:
        name = _series_name(alert)
        if name is None:
            continue
        if name not in known:
            known[name] = [labels for n, labels in store.series.list(name) if n == name]
        wanted = {k: v for k, v in alert.labels.items() if k != _SERIES_LABEL}
        matches = [
            labels for labels in known[name] if all(wanted.get(k) == v for k, v in labels.items())
        ]
        if not matches:
            continue
        labels = max(matches, key=len)
        key = (name, json.dumps(sorted(labels.items())))
        entry = found.setdefault(key, EvidenceSeries(name=name, labels=dict(labels)))
        entry.alerts.append(alert)
        if entry.threshold is None:
            entry.threshold, entry.op = _threshold(alert)
    return list(found.values())


def write_evidence(
    store: Store,
    incident_id: int,
    out_dir: str | Path,
    *,
    lookback: timedelta = DEFAULT_LOOKBACK,
    now: datetime | None = None,
) -> list[Path]:
    """Write an incident's evidence charts and its ``index.html`` into a folder.

    Args:
        store: The metadata store.
        incident_id: The incident.
        out_dir: The folder; created when missing. Files of the same names are replaced.
        lookback: How long before the incident opened the charts start.
        now: Where the charts end (default: the current time).

    Returns:
        The PNG charts, one per series, then ``index.html``.

    Raises:
        NotFoundError: There is no incident with that id.
        AIOpsError: A file cannot be written.
    """
    inc = get_incident(store, incident_id)
    end = _utc(now) if now is not None else datetime.now(UTC)
    start = _utc(inc.opened_at) - lookback
    actions = list_actions(store, incident_id)
    alerts = incident_alerts(store, incident_id)
    series = evidence_series(store, alerts)
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AIOpsError(f"cannot create evidence folder {folder}: {exc.strerror}") from exc

    written: list[Path] = []
    charts: list[dict[str, str]] = []
    for n, s in enumerate(series, 1):
        points = [
            (_utc(p.time), p.value)
            for p in store.series.read(s.name, s.labels, since=start, until=end)
        ]
        # A young series would sit squeezed at the right edge of the full look-back: start
        # the chart a little before its first point instead.
        first = points[0][0] if points else start
        chart_start = max(start, first - (inc.opened_at.astimezone(UTC) - first) * 0.1)
        png = _chart_png(s, points, actions, chart_start, end)
        path = folder / f"{n:02d}-{_slug(s.title)}.png"
        _write(path, png)
        written.append(path)
        charts.append(
            {
                "title": s.title,
                "caption": _caption(s, len(points)),
                "png": base64.b64encode(png).decode("ascii"),
            }
        )
    plotted = {a.id for s in series for a in s.alerts}
    unplotted = sorted({a.name for a in alerts if a.id not in plotted})
    html = _template().render(
        inc=inc,
        charts=charts,
        unplotted=unplotted,
        entries=timeline(store, incident_id),
        now=end,
        when=_when,
        compact=_compact,
    )
    index = folder / "index.html"
    _write(index, html.encode("utf-8"))
    written.append(index)
    return written


def _caption(s: EvidenceSeries, n_points: int) -> str:
    names = sorted({a.name for a in s.alerts})
    parts = [f"{n_points} points", f"alerts: {', '.join(names)}"]
    if s.threshold is not None:
        parts.append(f"threshold {s.op or ''} {s.threshold:g}".replace("  ", " "))
    return " · ".join(parts)


def _when(value: datetime) -> str:
    return f"{_utc(value):%Y-%m-%d %H:%M:%S}"


def _compact(details: dict[str, Any], limit: int = 300) -> str:
    text = describe_details(details)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(value: Any) -> str:
    """A value as words: ``a=1, b=2`` for a mapping, ``#1, #2`` style lists, no JSON quotes."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _ids(value: Any) -> str:
    items = value if isinstance(value, list | tuple) else [value]
    return ", ".join(f"#{v}" for v in items)


# What each known detail says, as the start of a clause; the value follows.
_CLAUSES = {
    "reason": "",
    "did": "",
    "error": "error: ",
    "severity": "severity ",
    "kind": "kind ",
    "root_cause": "root cause ",
    "policy": "of policy ",
    "by": "by ",
    "approved_by": "approved by ",
}


def describe_details(details: dict[str, Any]) -> str:
    """The details of a timeline entry (an alert, an action, an audit event) as a sentence.

    Known details read as words (``severity critical; on deployment churn-prod, model churn;
    fired 3 times``), an action's result as what it did; anything else as ``key value``.
    """
    if not details:
        return ""
    rest = dict(details)
    parts: list[str] = []
    result = rest.pop("result", None)
    if isinstance(result, dict) and result:
        did = result.get("did")
        parts.append(
            str(did) if did else _plain({k: v for k, v in result.items() if v is not None})
        )
    if "title" in rest:
        parts.append(f"“{rest.pop('title')}”")
    if "action_id" in rest:
        action = rest.pop("action", None)
        parts.append(f"action {_ids(rest.pop('action_id'))}" + (f" ({action})" if action else ""))
    for key, lead in _CLAUSES.items():
        if key in rest and rest[key] not in (None, "", [], {}):
            parts.append(f"{lead}{_plain(rest.pop(key))}")
    labels = rest.pop("labels", None)
    if isinstance(labels, dict) and labels:
        parts.append("on " + _plain(labels))
    count = rest.pop("count", None)
    if isinstance(count, int):
        parts.append("fired once" if count == 1 else f"fired {count} times")
    for key, words in (("alerts", "alerts"), ("ended_alerts", "ended alerts")):
        if rest.get(key):
            parts.append(f"{words} {_ids(rest.pop(key))}")
    status = rest.pop("status", None)
    for key, value in rest.items():
        if value not in (None, "", [], {}):
            parts.append(f"{key.replace('_', ' ')} {_plain(value)}")
    if status and not result:
        parts.append(f"now {status}")
    sentence = "; ".join(p for p in parts if p)
    return sentence[:1].upper() + sentence[1:] + ("" if sentence.endswith((".", "?", "!")) else ".")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:80] or "series"


def _write(path: Path, data: bytes) -> None:
    try:
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as exc:
        raise AIOpsError(f"cannot write evidence file {path}: {exc.strerror}") from exc


@cache
def _template() -> jinja2.Template:
    # Lazy imports here and below (noqa: PLC0415) of jinja2, matplotlib: each loads only where it is
    # used, so importing this module stays light.
    import jinja2  # noqa: PLC0415

    return jinja2.Environment(autoescape=True).from_string(_TEMPLATE)


def _chart_png(
    s: EvidenceSeries,
    points: list[tuple[datetime, float]],
    actions: list[ActionInfo],
    start: datetime,
    end: datetime,
) -> bytes:
    fig = _chart_figure(s, points, actions, start, end)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return buffer.getvalue()


# Rotated action labels: their font size, and the room one takes across the chart (points).
_LABEL_SIZE = 8.0
_LABEL_STEP = _LABEL_SIZE * 1.4
_LABEL_GAP = 14.0


def _label_offsets(fractions: list[float], width_pt: float) -> list[float]:
    """How far right (points) each label must move so that none overlaps the one before.

    ``fractions`` are the labels' wanted places across the axes (0..1), in time order; a
    label that would overlap its neighbour is pushed right and joined to its mark by a line.
    """
    offsets: list[float] = []
    last = -math.inf
    for fraction in fractions:
        wanted = fraction * width_pt
        placed = max(wanted, last + _LABEL_STEP)
        offsets.append(placed - wanted)
        last = placed
    return offsets


def _chart_figure(
    s: EvidenceSeries,
    points: list[tuple[datetime, float]],
    actions: list[ActionInfo],
    start: datetime,
    end: datetime,
) -> Figure:
    """The chart of one series: the points, the threshold, the firing spans, and a labelled
    mark per remediation action. Labels stand in a band above the plot, spread so that none
    overlaps another, the title or the legend (which stands right of the plot)."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    def x(t: datetime) -> float:
        # matplotlib.dates ships without type hints.
        return float(date2num(_utc(t)))  # type: ignore[no-untyped-call]

    # A bare Figure draws with the Agg canvas and touches no pyplot global state, so
    # evidence can be written from any thread.
    fig = Figure(figsize=(9, 3.4))
    ax = fig.add_subplot()
    times = [t for t, _ in points]
    if points:
        ax.plot(
            [x(t) for t in times],
            [v for _, v in points],
            color="#1f77b4",
            lw=1.4,
            label=s.name,
            marker="." if len(points) < 60 else None,
        )
    else:
        ax.text(
            0.5,
            0.5,
            "no points in this window",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="#888",
        )
    # The chart ends at the last thing to show, not at "now": an old incident would
    # otherwise be squeezed into the left edge.
    moments = [*times, *(_utc(a.created_at) for a in actions)]
    moments += [_utc(a.ends_at or a.last_seen_at) for a in s.alerts]
    right = min(end, max(moments, default=end))
    left = start
    if right <= left:
        right = left + timedelta(minutes=1)
    if s.threshold is not None:
        ax.axhline(
            s.threshold,
            color="#d62728",
            ls="--",
            lw=1,
            label=f"threshold {s.op or ''} {s.threshold:g}",
        )
    labelled: set[str] = set()
    for a in s.alerts:
        color = _SEVERITY_COLORS.get(a.severity, "#ff7f0e")
        until = _utc(a.ends_at) if a.ends_at is not None else right
        ax.axvspan(
            x(a.starts_at),
            x(max(until, _utc(a.last_seen_at))),
            color=color,
            alpha=0.18,
            label=None if a.name in labelled else f"{a.name} firing",
        )
        labelled.add(a.name)
    shown = sorted(
        (act for act in actions if left <= _utc(act.created_at) <= right),
        key=lambda act: (_utc(act.created_at), act.id),
    )
    span = x(right) - x(left)
    width_pt = ax.get_position().width * fig.get_figwidth() * 72
    fractions = [(x(act.created_at) - x(left)) / span for act in shown]
    longest = 0
    for act, dx in zip(shown, _label_offsets(fractions, width_pt), strict=True):
        color = _ACTION_COLORS.get(act.status, _OTHER_ACTION_COLOR)
        at = x(act.created_at)
        ax.axvline(at, color=color, lw=1.2)
        text = f"{act.action}: {act.status}"
        longest = max(longest, len(text))
        ax.annotate(
            text,
            xy=(at, 1.0),
            xycoords=("data", "axes fraction"),
            # Above a gap the joining lines cross, so that none runs over another label.
            xytext=(dx, _LABEL_GAP),
            textcoords="offset points",
            rotation=90,
            ha="center",
            va="bottom",
            fontsize=_LABEL_SIZE,
            color=color,
            annotation_clip=False,
            arrowprops=(
                {"arrowstyle": "-", "color": color, "lw": 0.6, "relpos": (0.5, 0.0)}
                if dx > 0
                else None
            ),
        )
    locator = AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    formatter = ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(formatter)
    ax.set_xlim(x(left), x(right))
    # The title stands above the band of action labels (rotated: as tall as they are long).
    pad = 6 + (_LABEL_GAP + 4 + longest * _LABEL_SIZE * 0.62 if longest else 0)
    ax.set_title(s.title, fontsize=10, loc="left", pad=pad)
    ax.set_xlabel("time (UTC)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.8)
    return fig
