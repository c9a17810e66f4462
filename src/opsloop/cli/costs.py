"""``opsloop costs`` and ``opsloop finops export``: what the project's usage cost."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from opsloop.cli._common import console, project
from opsloop.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.context import Project

finops_app = typer.Typer(help="FinOps data: export the allocated costs.", no_args_is_help=True)
costs_app = typer.Typer(
    help="What the project's usage cost; rightsizing recommendations.",
    invoke_without_command=True,
)

_BY_CHOICES = "team|cost_centre|model|version|deployment|run|step|trial|kind|day"


def _when(value: str | None, option: str, *, end: bool = False) -> datetime | None:
    """A ``--from``/``--to`` value: an ISO date (a day; ``--to`` includes it) or date-time
    (UTC unless it says otherwise)."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(
            f"{option} {value!r} is not a date or date-time (e.g. 2026-12-01 or 2026-12-01T08:00)"
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if end and len(value) == 10:
        when += timedelta(days=1)
    return when


def _allocated(
    proj: Project, since: str | None, until: str | None
) -> tuple[pd.DataFrame, str, datetime | None, datetime | None]:
    from opsloop.finops import allocated_costs  # noqa: PLC0415 - pandas: only when asked
    from opsloop.spec.finops import FinopsSection  # noqa: PLC0415 - pydantic models

    start = _when(since, "--from")
    end = _when(until, "--to", end=True)
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"--to {until} is not after --from {since}")
    finops = proj.spec.finops if proj.spec is not None else FinopsSection()
    return allocated_costs(proj.store, finops, since=start, until=end), finops.currency, start, end


@costs_app.callback()
def costs(
    ctx: typer.Context,
    by: str = typer.Option("team", "--by", metavar=_BY_CHOICES, help="What to group the costs by."),
    since: str | None = typer.Option(
        None, "--from", metavar="DATE", help="From this day or time (UTC), inclusive."
    ),
    until: str | None = typer.Option(
        None, "--to", metavar="DATE", help="To this day (inclusive) or time (exclusive)."
    ),
    chart: Path | None = typer.Option(
        None, "--chart", help="Also write a PNG of the daily cost, stacked by --by."
    ),
    budgets: bool = typer.Option(
        False, "--budgets", help="Show where each budget of finops.budgets stands this month."
    ),
) -> None:
    """What the project's usage cost, from the rate cards of opsloop.yaml (finops:).

    A serving replica costs its reserved CPU and memory for its uptime (what it did not use
    is its idle cost); steps and tuning trials the CPU and memory they used; shared costs
    (the loop itself, the fixed costs of finops.shared) are spread over each hour's
    consumers.
    """
    if ctx.invoked_subcommand is not None:
        return
    from opsloop.finops import BY, daily_chart, summarise  # noqa: PLC0415 - pandas

    if by not in BY:
        raise ConfigError(f"--by {by!r} is not one of: {', '.join(BY)}")
    proj = project()
    if budgets:
        _show_budgets(proj)
        return
    allocated, currency, _start, _end = _allocated(proj, since, until)
    table = summarise(allocated, by)
    shown = Table(title=f"costs by {by} ({currency})", title_justify="left")
    for name in (by, "used", "idle", "storage", "requests", "shared", "total", "per 1k req"):
        shown.add_column(name, justify="left" if name == by else "right")
    total = float(table["cost"].sum())
    # Enough decimals that a small project's costs are not all zero.
    places = 2 if total >= 100 else 4 if total >= 1 else 6
    for row in table.itertuples(index=False):
        per_k = row.cost_per_1000_requests
        shown.add_row(
            str(getattr(row, by)),
            f"{row.compute_cost + row.memory_cost:,.{places}f}",
            f"{row.idle_compute_cost + row.idle_memory_cost:,.{places}f}",
            f"{row.storage_cost:,.{places}f}",
            f"{row.request_cost:,.{places}f}",
            f"{row.shared_cost:,.{places}f}",
            f"{row.cost:,.{places}f}",
            "-" if math.isnan(per_k) else f"{per_k:.{places + 1}f}",  # NaN: no requests
        )
    shown.add_row("total", "", "", "", "", "", f"{total:,.{places}f}", "", style="bold")
    console.print(shown)
    if allocated.empty:
        console.print("no usage metered yet: run a pipeline, or let the loop serve a while")
    if chart is not None:
        daily_chart(allocated, by, chart, currency=currency)
        console.print(f"wrote {chart}")


@finops_app.command("export")
def export(
    fmt: str = typer.Option("focus", "--format", metavar="focus", help="The data format."),
    out: Path = typer.Option(..., "--out", help="The file to write: .csv or .parquet."),
    since: str | None = typer.Option(
        None, "--from", metavar="DATE", help="From this day or time (UTC), inclusive."
    ),
    until: str | None = typer.Option(
        None, "--to", metavar="DATE", help="To this day (inclusive) or time (exclusive)."
    ),
) -> None:
    """Write the allocated costs as a FOCUS 1.0 dataset (FinOps Open Cost and Usage
    Specification); opsloop's own dimensions are the x_ columns."""
    from opsloop.finops import write_focus  # noqa: PLC0415 - pandas

    if fmt != "focus":
        raise ConfigError(f"--format {fmt!r} is not supported; the only format is 'focus'")
    proj = project()
    allocated, currency, _start, _end = _allocated(proj, since, until)
    rows = write_focus(allocated, out, currency=currency, account=proj.name)
    console.print(f"wrote {rows} FOCUS rows to {out}")


def _show_budgets(proj: Project) -> None:
    """The month's spend and forecast of each budget, with the thresholds reached."""
    from opsloop.finops import allocated_costs, budget_statuses, month_bounds  # noqa: PLC0415
    from opsloop.finops.budgets import RUN_RATE_DAYS  # noqa: PLC0415
    from opsloop.spec.finops import FinopsSection  # noqa: PLC0415

    finops = proj.spec.finops if proj.spec is not None else FinopsSection()
    if not finops.budgets:
        console.print("no budgets: declare them under finops.budgets in opsloop.yaml")
        return
    now = datetime.now(UTC)
    start, _end = month_bounds(now)
    since = min(start, now - timedelta(days=RUN_RATE_DAYS))
    allocated = allocated_costs(proj.store, finops, since=since, until=now)
    shown = Table(title=f"budgets of {start:%Y-%m} ({finops.currency})", title_justify="left")
    for name in ("budget", "covers", "monthly", "spent", "used", "forecast", "of budget"):
        shown.add_column(name, justify="left" if name in ("budget", "covers") else "right")
    for status in budget_statuses(allocated, finops.budgets, now):
        dim, value = status.budget.scope
        over = status.forecast_used >= 1
        shown.add_row(
            status.budget.name,
            f"{dim} {value}",
            f"{status.budget.monthly:,.2f}",
            f"{status.actual:,.4f}",
            f"{status.used:.0%}",
            f"{status.forecast:,.4f}",
            f"{status.forecast_used:.0%}",
            style="bold red" if over else None,
        )
    console.print(shown)


@finops_app.command("import")
def import_invoice(
    file: Path = typer.Argument(..., help="A FOCUS billing export: .csv or .parquet."),
) -> None:
    """Join a cloud provider's FOCUS billing export to opsloop's allocation: the invoiced
    cost of the resources tagged with a deployment beside what opsloop metered for it over
    the same charge periods."""
    from opsloop.finops import allocated_costs  # noqa: PLC0415 - pandas
    from opsloop.finops.invoice import compare_invoice, read_focus  # noqa: PLC0415
    from opsloop.spec.finops import FinopsSection  # noqa: PLC0415

    proj = project()
    focus = read_focus(file)
    finops = proj.spec.finops if proj.spec is not None else FinopsSection()
    starts = focus["ChargePeriodStart"]
    ends = focus["ChargePeriodEnd"]
    since = _when(str(min(starts.astype(str))), "ChargePeriodStart")
    until = _when(str(max(ends.astype(str))), "ChargePeriodEnd")
    allocated = allocated_costs(proj.store, finops, since=since, until=until)
    result = compare_invoice(focus, allocated)
    shown = Table(
        title=f"invoice vs metered, {result.since:%Y-%m-%d %H:%M} to "
        f"{result.until:%Y-%m-%d %H:%M} UTC ({result.currency})",
        title_justify="left",
    )
    for name in ("deployment", "invoiced", "metered", "difference", "invoice / metered"):
        shown.add_column(name, justify="left" if name == "deployment" else "right")
    for row in result.table.itertuples(index=False):
        shown.add_row(
            str(row.deployment),
            f"{row.invoiced:,.4f}",
            f"{row.metered:,.4f}",
            f"{row.difference:+,.4f}",
            "-" if math.isnan(row.ratio) else f"{row.ratio:.2f}",
        )
    console.print(shown)
    console.print(f"invoiced without an opsloop deployment tag: {result.untagged:,.4f}")
    if result.currency != finops.currency:
        console.print(
            f"[yellow]the invoice bills in {result.currency}, the rate cards price in "
            f"{finops.currency}: the columns are not converted[/yellow]"
        )


@costs_app.command("recommend")
def recommend(
    days: float = typer.Option(7.0, "--days", min=0.1, help="Days of usage to size by."),
    deployment: list[str] = typer.Option(
        [], "--deployment", "-d", help="Only this deployment (repeatable)."
    ),
    apply: bool = typer.Option(
        False, "--apply", help="Commit each recommendation to its deployment document."
    ),
) -> None:
    """Rightsizing: replicas and CPU/memory requests per deployment from its observed
    utilisation and p99 latency objective (spec.objectives of its document), with the
    monthly saving; --apply commits the changes to Git (the reconciler applies them)."""
    from opsloop.finops import usage_frame  # noqa: PLC0415 - pandas
    from opsloop.finops.metering import cpu_quantity, memory_quantity  # noqa: PLC0415
    from opsloop.finops.rightsize import (  # noqa: PLC0415
        Sizing,
        cpu_text,
        memory_text,
    )
    from opsloop.finops.rightsize import recommend as recommend_one  # noqa: PLC0415
    from opsloop.gitops import resize  # noqa: PLC0415
    from opsloop.loop.monitoring import deployment_documents  # noqa: PLC0415
    from opsloop.spec.finops import FinopsSection  # noqa: PLC0415

    proj = project()
    finops = proj.spec.finops if proj.spec is not None else FinopsSection()
    documents = deployment_documents(proj)
    names = sorted(deployment) if deployment else sorted(documents)
    unknown = [n for n in names if n not in documents]
    if unknown:
        raise ConfigError(f"deployment '{unknown[0]}' has no valid document at HEAD")
    if not names:
        console.print("no deployment documents: nothing to size")
        return
    now = datetime.now(UTC)
    since = now - timedelta(days=days)
    usage = usage_frame(proj.store, since=since, until=now)
    table = Table(
        title=f"rightsizing from {days:g} days of usage ({finops.currency})", title_justify="left"
    )
    for name in ("deployment", "now", "recommended", "saving / month", "why"):
        table.add_column(name, justify="right" if name == "saving / month" else "left")
    results = []
    for name in names:
        spec = documents[name].spec
        requests = spec.resources.requests
        sizing = Sizing(
            replicas=spec.replicas,
            cpu=cpu_quantity(requests.cpu),
            memory_gb=memory_quantity(requests.memory),
            latency_p99_ms=spec.objectives.latency_p99_ms,
            min_replicas=spec.objectives.min_replicas,
        )
        latencies = [
            p.value
            for p in proj.store.series.read("service.latency_p99", since=since)
            if p.labels.get("deployment") == name
        ]
        rec = recommend_one(
            name,
            usage,
            sizing,
            finops,
            latency_p99_ms=max(latencies) if latencies else None,
            now=now,
        )
        results.append(rec)
        table.add_row(
            name,
            f"{sizing.replicas} x {cpu_text(sizing.cpu)} / {memory_text(sizing.memory_gb)}",
            f"{rec.replicas} x {cpu_text(rec.cpu)} / {memory_text(rec.memory_gb)}",
            f"{rec.monthly_saving:,.2f}",
            rec.reason,
        )
    console.print(table)
    if not apply:
        return
    for rec in results:
        if not rec.changes:
            continue
        change = resize(
            rec.deployment,
            replicas=rec.replicas,
            cpu=cpu_text(rec.cpu),
            memory=memory_text(rec.memory_gb),
            reason=(
                f"Rightsizing from {rec.hours} hours of usage: {rec.reason}. "
                f"Saves {rec.monthly_saving:,.2f} {finops.currency} a month."
            ),
            project=proj,
        )
        if change.commit:
            console.print(f"{rec.deployment}: committed {change.commit[:10]} {change.message}")
