"""``opsloop up`` and ``opsloop down``: run the closed loop as a service, and stop it."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from opsloop.cli._common import console, project
from opsloop.cli.gitops import FOLDER_HELP, RUNTIME_HELP, _status_table

__all__ = ["down", "up"]


def _line(event: str, **fields: Any) -> None:
    """One structured log line (no terminal: a file, a journal, a container's log)."""
    record = {"time": datetime.now(UTC).isoformat(), "event": event, **fields}
    sys.stdout.write(json.dumps(record, default=str) + "\n")
    sys.stdout.flush()


def up(
    interval: float = typer.Option(5.0, "--interval", help="Seconds between passes."),
    runtime: str = typer.Option("local", "--runtime", help=RUNTIME_HELP),
    stop_on_exit: bool = typer.Option(
        False, "--stop-on-exit", help="Stop every deployment when the loop ends."
    ),
    folder: str = typer.Option("deploy", "--folder", help=FOLDER_HELP),
    monitor_every: float = typer.Option(
        60.0, "--monitor-every", help="Seconds between monitoring steps (0: no monitoring)."
    ),
    no_remediate: bool = typer.Option(
        False, "--no-remediate", help="Open incidents, but run no remediation policy."
    ),
    once: bool = typer.Option(False, "--once", help="Run one pass (a monitoring step too), exit."),
    log_format: str = typer.Option(
        "auto",
        "--log-format",
        help="auto (a live table in a terminal, else JSON lines), table or json.",
    ),
) -> None:
    """Run the closed loop until SIGTERM or Ctrl-C: reconcile (automated sync, self-heal,
    prune), monitor, alert, correlate into incidents, remediate, and apply the prediction
    log's retention. Without a terminal it writes one JSON line per pass and per action."""
    # Lazy imports here and below (noqa: PLC0415) of opsloop.loop, opsloop.gitops: each loads with
    # the command that needs it, not with every CLI call.
    from opsloop.loop.controller import Controller, PassReport  # noqa: PLC0415
    from opsloop.loop.service import loop_lock, run_until_stopped  # noqa: PLC0415

    if log_format not in ("auto", "table", "json"):
        raise typer.BadParameter("use auto, table or json", param_hint="--log-format")
    as_json = log_format == "json" or (log_format == "auto" and not sys.stdout.isatty())
    proj = project()
    with loop_lock(proj) as me:
        controller = Controller(
            proj,
            runtime=runtime,
            folder=folder,
            monitor_every_s=0 if monitor_every <= 0 else monitor_every,
            remediate=not no_remediate,
        )
        if as_json:
            _line("start", pid=me.pid, project=str(proj.dir), interval_s=interval)

            def on_pass(report: PassReport) -> None:
                for incident, actions in report.remediated.items():
                    for a in actions:
                        said = a.result.get("did") if a.status == "succeeded" else a.error
                        _line(
                            "action",
                            incident=incident,
                            action=a.action,
                            status=a.status,
                            policy=a.policy,
                            detail=said,
                        )
                _line("pass", **report.summary())

            run_until_stopped(controller, interval, on_pass=on_pass, once=once)
        else:
            notes: list[Text] = []
            with Live(Text("first pass…"), console=console, refresh_per_second=4) as live:

                def on_pass(report: PassReport) -> None:
                    notes[:] = _pass_notes(report)
                    parts: list[Any] = []
                    if report.sync is not None:
                        parts.append(
                            _status_table(
                                report.sync, f"pass {report.number}, every {interval:g} s"
                            )
                        )
                    live.update(Group(*parts, *notes))

                run_until_stopped(controller, interval, on_pass=on_pass, once=once)
    if stop_on_exit:
        for name in sorted(controller.runtime.live_state()):
            controller.runtime.stop(name)
            _say(as_json, f"stopped {name}", deployment=name)
    _say(as_json, "loop stopped; deployments keep running" if not stop_on_exit else "loop stopped")


def _say(as_json: bool, text: str, **fields: Any) -> None:
    if as_json:
        _line("stop" if text.startswith("loop stopped") else "info", message=text, **fields)
    else:
        console.print(text)


def _pass_notes(report: Any) -> list[Text]:
    notes: list[Text] = []
    mon = report.monitored
    if mon is not None:
        opened = f", incident(s) opened: {', '.join(map(str, mon.opened))}" if mon.opened else ""
        notes.append(Text(f"monitors: {mon.windows} window(s), {mon.points} points{opened}"))
    for incident, actions in report.remediated.items():
        done = ", ".join(f"{a.action} {a.status}" for a in actions)
        notes.append(Text(f"incident {incident}: {done}", style="yellow"))
    if report.interrupted:
        notes.append(
            Text(f"marked {len(report.interrupted)} interrupted action(s)", style="yellow")
        )
    if report.pruned is not None and (report.pruned.predictions or report.pruned.feedback):
        notes.append(
            Text(
                f"retention deleted {report.pruned.predictions} request(s), "
                f"{report.pruned.feedback} label(s)"
            )
        )
    notes.extend(Text(f"error: {e}", style="red") for e in report.errors)
    return notes


def down(
    runtime: str = typer.Option("local", "--runtime", help=RUNTIME_HELP),
    folder: str = typer.Option("deploy", "--folder", help=FOLDER_HELP),
    keep_servers: bool = typer.Option(
        False, "--keep-servers", help="Stop the loop only; leave the deployment servers running."
    ),
) -> None:
    """Stop the project's 'opsloop up' (after its pass in progress), then the deployment
    servers it started."""
    from opsloop.gitops import open_runtime  # noqa: PLC0415
    from opsloop.loop.service import stop_loop  # noqa: PLC0415

    proj = project()
    stopped = stop_loop(proj)
    if stopped is None:
        console.print("no 'opsloop up' is running for this project")
    else:
        console.print(f"stopped 'opsloop up' (process {stopped.pid})")
    if keep_servers:
        return
    rt = open_runtime(runtime, proj)
    names = sorted(rt.live_state())
    for name in names:
        rt.stop(name)
        console.print(f"stopped {escape(name)}")
    if not names:
        console.print(f"no deployment runs ({folder}/ is unchanged; 'opsloop up' starts them)")
