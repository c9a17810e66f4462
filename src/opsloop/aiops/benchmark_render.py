"""Tables and charts of NAB benchmark results (:mod:`opsloop.aiops.benchmark` scores them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from opsloop.aiops.benchmark import (
    SOURCE_OPSLOOP,
    SOURCE_PUBLISHED,
    SOURCE_RESULTS,
    CVReport,
    Scoreboard,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opsloop.aiops.loco import LocoReport

__all__ = ["render_cv_report", "render_loco_report", "render_scoreboard", "write_chart"]


def _compact_table(title: str) -> Table:
    """A table that keeps NAB's wide scoreboards readable in 80 columns."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


def render_scoreboard(board: Scoreboard) -> Table:
    """A rich table of the scoreboard."""
    table = _compact_table(
        f"NAB scoreboard: {board.files} files, {board.rows_total} rows, {board.windows} windows"
    )
    table.add_column("#", justify="right")
    table.add_column("detector", min_width=12, overflow="fold")
    table.add_column("source")
    for p in board.profiles:
        # "reward_low_FP_rate" -> "low_FP": keeps the table readable in 80 columns.
        table.add_column(p.removeprefix("reward_").removesuffix("_rate"), justify="right")
    table.add_column("windows", justify="right")
    table.add_column("FP", justify="right")
    table.add_column("s", justify="right")
    style = {SOURCE_OPSLOOP: "bold green", SOURCE_RESULTS: "cyan", SOURCE_PUBLISHED: "dim"}
    for rank, r in enumerate(board.rows, 1):
        cells = [f"{r.scores[p]:.2f}" if p in r.scores else "" for p in board.profiles]
        windows = f"{r.windows_detected}/{r.windows}" if r.windows is not None else ""
        fps = str(r.false_positives) if r.false_positives is not None else ""
        secs = f"{r.seconds:.1f}" if r.seconds is not None else ""
        table.add_row(
            str(rank), r.detector, r.source, *cells, windows, fps, secs, style=style.get(r.source)
        )
    return table


def write_chart(board: Scoreboard, path: str | Path, profile: str | None = None) -> Path:
    """Save a bar chart of one profile's scores as a PNG.

    Args:
        board: The scoreboard.
        path: Where to write the PNG.
        profile: The profile (default: the first).

    Returns:
        The path written.
    """
    # Lazy imports here and below (noqa: PLC0415) of matplotlib: each loads only where it is used,
    # so importing this module stays light.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    profile = profile or board.profiles[0]
    rows = [r for r in board.rows if profile in r.scores]
    rows.sort(key=lambda r: r.scores[profile])
    colors = {SOURCE_OPSLOOP: "#2a9d55", SOURCE_RESULTS: "#3b82c4", SOURCE_PUBLISHED: "#9a9a9a"}
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.2))
    try:
        values = [r.scores[profile] for r in rows]
        ax.barh(
            [f"{r.detector} ({r.source})" for r in rows],
            values,
            color=[colors.get(r.source, "#555555") for r in rows],
        )
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlabel(f"NAB score, {profile} profile (100 = perfect, 0 = never alarms)")
        ax.set_title(f"NAB: {board.files} files, {board.windows} windows")
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    finally:
        plt.close(fig)
    return out


def _setting_label(setting: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "defaults"


def render_cv_report(report: CVReport) -> Table:
    """A rich table of a cross-validation report: held-out mean/min/max beside in-sample."""
    table = _compact_table(
        f"NAB out-of-sample check ({report.profile}): {report.repeats} x "
        f"{report.folds_per_repeat}-fold, stratified by category, seed {report.seed}"
    )
    table.add_column("detector", overflow="fold")
    table.add_column("held-out mean", justify="right")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    table.add_column("in-sample", justify="right")
    best_in = max(report.in_sample)
    rows: list[tuple[str, dict[str, float], float | None, str | None]] = [
        (f"{report.detector} (selected per fold)", report.held_out, best_in, "bold green"),
        (
            f"{report.detector} ({_setting_label(report.candidates[0])})",
            report.default_held_out,
            report.in_sample[0],
            "green",
        ),
    ]
    ref = report.reference_held_out
    if ref is not None and report.reference:
        rows.append((f"{report.reference} (reference)", ref, report.reference_in_sample, "cyan"))
    for name, s, inside, style in rows:
        table.add_row(
            name,
            f"{s['mean']:.2f}",
            f"{s['min']:.2f}",
            f"{s['max']:.2f}",
            f"{inside:.2f}" if inside is not None else "",
            style=style,
        )
    chosen = [f.selected for f in report.folds]
    picks = ", ".join(
        f"{_setting_label(report.candidates[i])} x{chosen.count(i)}"
        for i in sorted(set(chosen), key=lambda i: -chosen.count(i))
    )
    table.caption = f"settings chosen: {picks}"
    table.caption_justify = "left"
    return table


def render_loco_report(report: LocoReport) -> Table:
    """A rich table of leave-one-category-out scores, with the in-sample ones beside."""
    table = _compact_table(
        "NAB leave-one-category-out: setting and threshold chosen on the other categories; "
        f"held out in turn: {', '.join(report.categories)}"
    )
    table.add_column("detector", min_width=12, overflow="fold")
    table.add_column("source")
    for p in report.profiles:
        short = p.removeprefix("reward_").removesuffix("_rate")
        table.add_column(f"{short} LOCO", justify="right")
        table.add_column("in-sample", justify="right")
    table.add_column("points/s", justify="right")
    style = {SOURCE_OPSLOOP: "bold green", SOURCE_RESULTS: "cyan"}
    for r in report.rows:
        cells: list[str] = []
        for p in report.profiles:
            cells += [f"{r.loco[p]:.2f}", f"{r.in_sample[p]:.2f}"]
        rate = f"{r.points_per_second:,.0f}" if r.points_per_second else ""
        table.add_row(r.detector, r.source, *cells, rate, style=style.get(r.source))
    first = report.profiles[0]
    picks = []
    for r in report.rows:
        if r.source == SOURCE_OPSLOOP and len(r.candidates) > 1:
            chosen = ", ".join(
                f"{f.category}: {_setting_label(r.candidates[f.selected])}" for f in r.folds[first]
            )
            picks.append(f"{r.detector} ({first}): {chosen}")
    if picks:
        table.caption = "settings chosen per held-out category: " + "; ".join(picks)
        table.caption_justify = "left"
    return table
