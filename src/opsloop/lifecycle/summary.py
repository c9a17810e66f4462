"""The end-of-run summary: data checks, candidates, gates, the registered version, next steps."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from opsloop.lifecycle.driver import PHASES, LifecycleOutcome

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
    """Test-set metrics of the candidate beside the champion's."""
    ev = outcome.outputs.get("evaluate")
    if not isinstance(ev, dict):
        return None
    champion = ev.get("champion_metrics") or {}
    t = Table(title="held-out test set", title_justify="left")
    t.add_column("metric")
    t.add_column("candidate", justify="right")
    if champion:
        t.add_column("champion", justify="right")
    for k, v in (ev.get("metrics") or {}).items():
        if not isinstance(v, int | float):
            continue
        row = [k, _fmt(float(v))]
        if champion:
            row.append(_fmt(champion.get(k)))
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


def print_summary(outcome: LifecycleOutcome, console: Console) -> None:
    """Print everything a person wants to see after a lifecycle run."""
    for table in (
        phase_table(outcome),
        data_table(outcome),
        candidates_table(outcome),
        metrics_table(outcome),
        gates_table(outcome),
    ):
        if table is not None:
            console.print(table)
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
            f"registered [bold]models:/{reg['model']}/{reg['version']}[/bold]{where} ({verdict})"
        )
    if outcome.report_path is not None:
        console.print(f"evaluation report: {outcome.report_path}")
    console.print(f"run: opsloop runs show {outcome.run_id[:12]}")
    if reg is not None:
        console.print("next:")
        console.print(f"  opsloop models show {reg['model']}")
        console.print(
            "  opsloop run                         # re-run: unchanged phases come from the cache"
        )
