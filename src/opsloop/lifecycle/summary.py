"""The end-of-run summary: data checks, candidates, gates, the registered version, next steps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from opsloop.lifecycle.driver import PHASES, LifecycleOutcome

if TYPE_CHECKING:
    from rich.console import Console

_STYLE = {"succeeded": "green", "cached": "cyan", "failed": "red", "skipped": "dim"}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "-" if v is None else str(v)


def phase_table(outcome: LifecycleOutcome) -> Table:
    """One row per phase with its status."""
    t = Table(title="phases", title_justify="left")
    t.add_column("phase")
    t.add_column("status")
    for name in PHASES:
        st = outcome.steps.get(name, "-")
        style = _STYLE.get(st, "white")
        t.add_row(name, f"[{style}]{st}[/{style}]")
    return t


def data_table(outcome: LifecycleOutcome) -> Table | None:
    """The data set version and every contract failure (errors and warnings)."""
    dataset = outcome.outputs.get("ingest")
    report = outcome.outputs.get("validate")
    if not isinstance(dataset, dict):
        return None
    t = Table(title="data checks", title_justify="left")
    t.add_column("check")
    t.add_column("result", overflow="fold")
    t.add_row("source", str(dataset.get("source")))
    t.add_row("rows, columns", f"{dataset.get('rows'):,}, {len(dataset.get('columns', {}))}")
    t.add_row("dataset version", str(dataset.get("digest", ""))[:23])
    if isinstance(report, dict):
        failures = report.get("failures", [])
        verdict = "[green]passed[/green]" if report.get("passed") else "[red]failed[/red]"
        t.add_row("contract", f"{verdict} ({report.get('rules_checked', 0)} rules)")
        for f in failures:
            sev = f.get("severity")
            colour = "red" if sev == "error" else "yellow"
            examples = ", ".join(map(str, f.get("examples", [])[:3]))
            t.add_row(
                f"  [{colour}]{sev}[/{colour}] {f.get('column') or '(table)'}",
                f"{f.get('rule')}: {f.get('failing_rows', '')} rows"
                + (f" e.g. {examples}" if examples else ""),
            )
    return t


def candidates_table(outcome: LifecycleOutcome) -> Table | None:
    """Best cross-validated score per candidate."""
    tuning = outcome.outputs.get("train")
    if not isinstance(tuning, dict):
        return None
    per = tuning.get("candidates", {})
    metric = tuning.get("metric", "score")
    t = Table(title=f"candidates (cross-validated {metric})", title_justify="left")
    for col in ("candidate", "trials", f"best {metric}", "best params"):
        t.add_column(col, overflow="fold" if col == "best params" else "ellipsis")
    best = tuning.get("best_candidate")
    for name, info in per.items():
        mark = " ★" if name == best else ""
        params = info.get("best_params") or {}
        t.add_row(
            f"{name}{mark}",
            str(info.get("trials", "-")),
            _fmt(info.get("best_score")),
            ", ".join(f"{k}={_fmt(v)}" for k, v in list(params.items())[:4]),
        )
    return t


def metrics_table(outcome: LifecycleOutcome) -> Table | None:
    """Metrics of the candidate beside the champion's: on the held-out test set, and on the
    recent labelled traffic when it was compared there too."""
    ev = outcome.outputs.get("evaluate")
    if not isinstance(ev, dict):
        return None
    champion = ev.get("champion_metrics") or {}
    recent = ev.get("recent") or {}
    recent_metrics = recent.get("metrics") or {}
    recent_champion = recent.get("champion_metrics") or {}
    title = "held-out test set"
    if recent_metrics:
        title += f" · recent labelled traffic ({recent.get('rows', 0):,} rows)"
    t = Table(title=title, title_justify="left")
    t.add_column("metric")
    t.add_column("candidate", justify="right")
    if champion:
        t.add_column("champion", justify="right")
    if recent_metrics:
        t.add_column("candidate (recent)", justify="right")
        if recent_champion:
            t.add_column("champion (recent)", justify="right")
    for k, v in (ev.get("metrics") or {}).items():
        if not isinstance(v, int | float):
            continue
        row = [k, _fmt(float(v))]
        if champion:
            row.append(_fmt(champion.get(k)))
        if recent_metrics:
            row.append(_fmt(recent_metrics.get(k)))
            if recent_champion:
                row.append(_fmt(recent_champion.get(k)))
        t.add_row(*row)
    return t


def gates_table(outcome: LifecycleOutcome) -> Table | None:
    """Every gate with its verdict."""
    gates = outcome.outputs.get("gate")
    if not isinstance(gates, list):
        return None
    t = Table(title="gates", title_justify="left")
    for col in ("gate", "requirement", "result", "detail"):
        t.add_column(col, overflow="fold" if col == "detail" else "ellipsis")
    for g in gates:
        ok = "[green]pass[/green]" if g.get("passed") else "[red]FAIL[/red]"
        t.add_row(str(g.get("name")), str(g.get("requirement", "")), ok, str(g.get("message", "")))
    return t


def print_summary(
    outcome: LifecycleOutcome,
    console: Console,
    *,
    command: str = "opsloop",
    cd: str | None = None,
) -> None:
    """Print everything a person wants to see after a lifecycle run.

    Args:
        outcome: The run.
        console: Where to print.
        command: How to call opsloop in the suggested commands (a path when the command is
            not on PATH).
        cd: A folder to change to first in the suggested commands (the project's, when the
            caller is elsewhere).
    """
    for table in (
        phase_table(outcome),
        data_table(outcome),
        candidates_table(outcome),
        metrics_table(outcome),
        gates_table(outcome),
    ):
        if table is not None:
            console.print(table)
    for note in outcome.notes:
        console.print(f"note: {note}", soft_wrap=True)
    recent_error = ((outcome.outputs.get("evaluate") or {}).get("recent") or {}).get("error")
    if recent_error:
        console.print(
            f"note: the recent labelled traffic could not be scored: {recent_error}",
            soft_wrap=True,
        )
    reg = outcome.registration
    if outcome.error:
        console.print(
            f"[bold red]the lifecycle stopped in '{outcome.failed_step}':[/bold red] "
            f"{outcome.error}",
            soft_wrap=True,
        )
        console.print("no model version was registered and no alias moved")
    if reg is not None:
        alias = reg.get("alias")
        where = f" as [bold]{alias}[/bold]" if alias else ""
        verdict = "every gate passed" if reg.get("gates_passed") else "a gate failed"
        if reg.get("reused"):
            verdict += "; the same training as before, so no new version"
        console.print(
            f"registered [bold]models:/{reg['model']}/{reg['version']}[/bold]{where} ({verdict})",
            soft_wrap=True,
        )
        kept = reg.get("kept")
        if isinstance(kept, dict):
            console.print(
                f"[bold yellow]{reg['model']}@{kept.get('alias')} did not move:[/bold yellow] "
                f"{kept.get('message')}; '{command} run --allow-rollback' moves it",
                soft_wrap=True,
            )
    prefix = f"cd {cd} && " if cd else ""
    if outcome.report_path is not None:
        console.print(f"evaluation report: {outcome.report_path}", soft_wrap=True)
        others = [p.name for p in outcome.reports if p != outcome.report_path]
        if others:
            console.print(
                f"  with {', '.join(others)} in {outcome.report_path.parent}", soft_wrap=True
            )
    console.print(f"run: {prefix}{command} runs show {outcome.run_id[:12]}", soft_wrap=True)
    if reg is not None:
        console.print("next:")
        console.print(f"  {prefix}{command} models show {reg['model']}", soft_wrap=True)
        console.print(
            f"  {prefix}{command} run    # re-run: unchanged phases come from the cache",
            soft_wrap=True,
        )
