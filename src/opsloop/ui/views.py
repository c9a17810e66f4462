"""What the pages compute from API answers: Plotly figures (as plain JSON, drawn by the
Plotly.js the server ships), document diffs, and which buttons a visitor's roles allow."""

from __future__ import annotations

import difflib
from collections import defaultdict
from typing import Any

import yaml

__all__ = [
    "ROLES",
    "bars_figure",
    "can",
    "cost_figure",
    "dag_figure",
    "line_figure",
    "sparkline",
    "unified_diff",
]

#: The API's roles, least first (each holds the rights of those before it).
ROLES = ("viewer", "developer", "deployer", "admin")

_LAYOUT: dict[str, Any] = {
    "margin": {"l": 50, "r": 20, "t": 30, "b": 40},
    "height": 300,
    "legend": {"orientation": "h"},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
}


def can(me: dict[str, Any], least: str, *, resource_type: str = "", resource: str = "") -> bool:
    """Whether the visitor (``/whoami``'s answer) holds ``least`` or more, on everything or
    by a grant on this one resource. Only decides which buttons show: the API still decides
    every call."""
    rank = ROLES.index(least)
    if any(r in ROLES and ROLES.index(r) >= rank for r in me.get("roles", [])):
        return True
    return any(
        g["resource_type"] == resource_type
        and g["resource"] == resource
        and g["role"] in ROLES
        and ROLES.index(g["role"]) >= rank
        for g in me.get("grants", [])
    )


#: The parts of an allocated cost, as ``GET /api/v1/costs`` names them, in stacking order.
COST_PARTS = ("used", "idle", "storage", "requests", "shared")


def cost_figure(rows: list[dict[str, Any]], *, currency: str) -> dict[str, Any]:
    """Horizontal bars of cost per value of a dimension, stacked by what it paid for (used,
    idle reservation, storage, requests, share of the shared costs), the largest on top."""
    ordered = list(reversed(rows))
    keys = [r["key"] for r in ordered]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": part,
                "y": keys,
                "x": [r[part] for r in ordered],
            }
            for part in COST_PARTS
        ],
        "layout": {
            **_LAYOUT,
            "barmode": "stack",
            "title": {"text": f"cost by what it paid for ({currency})"},
            "height": max(220, 60 + 26 * len(keys)),
            "margin": {"l": 160, "r": 20, "t": 30, "b": 40},
        },
    }


def line_figure(
    traces: dict[str, tuple[list[Any], list[float]]],
    *,
    title: str = "",
    x_title: str = "",
    y_title: str = "",
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A zoomable line chart: one trace per name, optional dashed threshold lines."""
    data: list[dict[str, Any]] = [
        {
            "type": "scattergl" if len(xs) > 2000 else "scatter",
            "mode": "lines+markers" if len(xs) < 60 else "lines",
            "name": name,
            "x": xs,
            "y": ys,
        }
        for name, (xs, ys) in traces.items()
    ]
    shapes = [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "y0": value,
            "y1": value,
            "line": {"dash": "dash", "color": "#c0392b", "width": 1},
        }
        for value in (thresholds or {}).values()
    ]
    annotations = [
        {
            "xref": "paper",
            "x": 1,
            "y": value,
            "text": label,
            "showarrow": False,
            "xanchor": "right",
            "yanchor": "bottom",
            "font": {"size": 10, "color": "#c0392b"},
        }
        for label, value in (thresholds or {}).items()
    ]
    layout = {
        **_LAYOUT,
        "title": {"text": title, "font": {"size": 14}},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}},
        "shapes": shapes,
        "annotations": annotations,
    }
    return {"data": data, "layout": layout}


def bars_figure(
    labels: list[str],
    groups: dict[str, list[float]],
    *,
    title: str = "",
    x_title: str = "",
    y_title: str = "",
) -> dict[str, Any]:
    """Grouped bars: one bar per label for each group (e.g. reference and current shares)."""
    return {
        "data": [
            {"type": "bar", "name": name, "x": labels, "y": values}
            for name, values in groups.items()
        ],
        "layout": {
            **_LAYOUT,
            "barmode": "group",
            "title": {"text": title, "font": {"size": 14}},
            "xaxis": {"title": {"text": x_title}, "type": "category"},
            "yaxis": {"title": {"text": y_title}},
        },
    }


def sparkline(xs: list[Any], ys: list[float]) -> dict[str, Any]:
    """A small trend line without axes."""
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "x": xs,
                "y": ys,
                "hoverinfo": "x+y",
                "line": {"width": 2},
            }
        ],
        "layout": {
            "height": 60,
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "showlegend": False,
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
        },
        "config": {"staticPlot": True},
    }


def dag_figure(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The pipeline's steps as a left-to-right graph: an edge where a step's input is an
    earlier step's output (else the order they ran), colour by cache hit, duration, CPU and
    memory on hover."""
    produced: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    names = [s["name"] for s in steps]
    for i, step in enumerate(steps):
        sources = {produced[v] for v in _values(step.get("inputs")) if v in produced}
        if not sources and i > 0:
            sources = {names[i - 1]}
        edges.extend((src, step["name"]) for src in sorted(sources))
        for value in _values(step.get("outputs")):
            produced.setdefault(value, step["name"])
    depth: dict[str, int] = {}
    for name in names:
        depth[name] = max((depth[a] + 1 for a, b in edges if b == name and a in depth), default=0)
    rows: dict[int, int] = defaultdict(int)
    pos: dict[str, tuple[int, int]] = {}
    for name in names:
        pos[name] = (depth[name], rows[depth[name]])
        rows[depth[name]] += 1
    edge_x: list[float | None] = []
    edge_y: list[float | None] = []
    for a, b in edges:
        edge_x += [pos[a][0], pos[b][0], None]
        edge_y += [-pos[a][1], -pos[b][1], None]
    hover = [_step_hover(s) for s in steps]
    colours = [
        "#7f8c8d"
        if s.get("cached_from")
        else "#27ae60"
        if s["status"] == "succeeded"
        else "#c0392b"
        for s in steps
    ]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "x": edge_x,
                "y": edge_y,
                "hoverinfo": "skip",
                "line": {"color": "#95a5a6"},
                "showlegend": False,
            },
            {
                "type": "scatter",
                "mode": "markers+text",
                "x": [pos[n][0] for n in names],
                "y": [-pos[n][1] for n in names],
                "text": names,
                "textposition": "top center",
                "hovertext": hover,
                "hoverinfo": "text",
                "showlegend": False,
                "marker": {"size": 22, "color": colours, "symbol": "square"},
            },
        ],
        "layout": {
            **_LAYOUT,
            "height": 260,
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
        },
    }


def _values(mapping: Any) -> list[str]:
    if not isinstance(mapping, dict):
        return []
    return [str(v) for v in mapping.values() if isinstance(v, str | int)]


def _step_hover(step: dict[str, Any]) -> str:
    parts = [f"{step['name']}: {step['status']}"]
    if step.get("cached_from"):
        parts.append(f"cache hit (step {step['cached_from']})")
    if step.get("duration_s") is not None:
        parts.append(f"{step['duration_s']:.2f} s")
    if step.get("cpu_seconds") is not None:
        parts.append(f"CPU {step['cpu_seconds']:.2f} s")
    if step.get("peak_memory_bytes"):
        parts.append(f"peak {step['peak_memory_bytes'] / 2**20:.0f} MiB")
    return "<br>".join(parts)


def unified_diff(before: Any, after: Any, *, before_name: str, after_name: str) -> list[str]:
    """The lines of a unified diff of two documents as YAML (empty when they are equal)."""

    def text(doc: Any) -> list[str]:
        if doc is None or doc == {}:
            return []
        return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False).splitlines()

    return list(
        difflib.unified_diff(
            text(before), text(after), fromfile=before_name, tofile=after_name, lineterm=""
        )
    )
