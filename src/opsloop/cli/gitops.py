"""``opsloop deploy promote|set-traffic|render|history``, ``opsloop sync``, ``opsloop rollback``
and ``opsloop status``: desired state in Git, applied by the reconciler (continuously by
``opsloop up``, see :mod:`opsloop.cli.loop`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from opsloop import __version__
from opsloop.cli._common import ago, console, err_console, project
from opsloop.cli.access import status_line
from opsloop.errors import GitOpsError

deploy_app = typer.Typer(
    help="Change and inspect deployments; every change is a commit in Git.",
    no_args_is_help=True,
)

FOLDER_HELP = "Folder of deployment documents, relative to the project."
RUNTIME_HELP = "Where deployments run: local (server processes) or kubernetes (manifests)."

_SYNC_STYLE = {"Synced": "green", "OutOfSync": "yellow", "Unknown": "dim"}
_HEALTH_STYLE = {
    "Healthy": "green",
    "Progressing": "cyan",
    "Degraded": "red",
    "Suspended": "blue",
    "Missing": "yellow",
    "Unknown": "dim",
}


def _styled(word: str, styles: dict[str, str]) -> str:
    style = styles.get(word, "white")
    return f"[{style}]{word}[/{style}]"


def _committed(commit: str | None, message: str, nothing: str) -> None:
    if commit is None:
        console.print(nothing)
        return
    console.print(f"[green]committed[/green] {commit[:10]}  {message}")
    console.print("[dim]apply it with 'opsloop sync' (or keep 'opsloop up' running)[/dim]")


@deploy_app.command("promote")
def promote(
    model: str = typer.Argument(..., help="Registered model name."),
    to: str = typer.Option(
        ..., "--to", metavar="DEPLOYMENT", help="Deployment to point at the version."
    ),
    alias: str = typer.Option(
        "champion", "--alias", metavar="ALIAS", help="Alias resolved now to a version."
    ),
    version: int | None = typer.Option(
        None, "--version", metavar="VERSION", help="Promote this version instead of the alias's."
    ),
    port: int | None = typer.Option(
        None, "--port", metavar="PORT", help="Port of a new deployment."
    ),
    folder: str = typer.Option("deploy", "--folder", metavar="DIR", help=FOLDER_HELP),
) -> None:
    """Write the version an alias names now into a deployment's document, and commit."""
    # Lazy imports here and below (noqa: PLC0415) of opsloop, opsloop.gitops: each loads with the
    # command that needs it, not with every CLI call.
    from opsloop import gitops  # noqa: PLC0415

    res = gitops.promote(
        model, to=to, alias=alias, version=version, project=project(), folder=folder, port=port
    )
    _committed(res.commit, res.message, f"{res.file} already serves v{res.version}; no commit")


@deploy_app.command("set-traffic")
def set_traffic(
    deployment: str = typer.Argument(..., help="Deployment name."),
    weights: list[str] = typer.Argument(..., help="VERSION=PERCENT …, e.g. 3=90 4=10."),
    shadow: list[int] | None = typer.Option(
        None,
        "--shadow",
        metavar="VERSION",
        help="Shadow version (repeat); replaces the shadow list.",
    ),
    folder: str = typer.Option("deploy", "--folder", metavar="DIR", help=FOLDER_HELP),
) -> None:
    """Commit a new traffic split of a deployment."""
    from opsloop import gitops  # noqa: PLC0415

    res = gitops.set_traffic(
        deployment,
        gitops.parse_weights(weights),
        shadow=shadow,
        project=project(),
        folder=folder,
    )
    _committed(res.commit, res.message, f"{res.file} already has that split; no commit")


@deploy_app.command("render")
def render(
    target: str = typer.Option(
        "kubernetes",
        "--target",
        metavar="TARGET",
        help="kubernetes (plain manifests) or helm (a chart of the same objects).",
    ),
    out: Path = typer.Option(
        Path("manifests"), "--out", metavar="DIR", help="Folder for the manifests."
    ),
    image: str | None = typer.Option(
        None,
        "--image",
        metavar="IMAGE",
        help=f"Server container image (default: opsloop:{__version__}, this opsloop's version).",
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", metavar="NAMESPACE", help="Namespace of the objects."
    ),
    env: list[str] | None = typer.Option(
        None, "--env", metavar="KEY=VALUE", help="Environment of the server containers (repeat)."
    ),
    store_secret: str = typer.Option(
        "opsloop-store",
        "--store-secret",
        metavar="NAME",
        help="Secret the servers read the store URLs from (keys store-url, artifact-url and "
        "optionally s3-endpoint-url).",
    ),
    revision: str = typer.Option(
        "HEAD", "--revision", metavar="REVISION", help="Git revision to read."
    ),
    folder: str = typer.Option("deploy", "--folder", metavar="DIR", help=FOLDER_HELP),
) -> None:
    """Write Kubernetes manifests (or a Helm chart) and a server Dockerfile per deployment.

    The servers read their tokens from the Secret <deployment>-serve-tokens and the store URLs
    from the Secret opsloop-store; create them in the cluster, never in Git.
    """
    from opsloop.gitops.render import DEFAULT_IMAGE, TARGETS, render_deployments  # noqa: PLC0415

    if target not in TARGETS:
        raise GitOpsError(f"unknown render target {target!r}; use {' or '.join(TARGETS)}")
    variables: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise GitOpsError(f"--env {item!r}: expected KEY=VALUE")
        variables[key] = value
    res = render_deployments(
        out,
        project=project(),
        revision=revision,
        image=image or DEFAULT_IMAGE,
        namespace=namespace,
        env=variables,
        folder=folder,
        store_secret=store_secret,
        target="helm" if target == "helm" else "kubernetes",
    )
    if res.chart is not None and res.files:
        console.print(f"[green]wrote[/green] {res.chart}  (Helm chart)")
    for name, path in res.files.items():
        console.print(f"[green]wrote[/green] {path}  ({name}: Deployment, Service, NetworkPolicy)")
        console.print(f"[green]wrote[/green] {res.dockerfiles[name]}  ({name}: server image)")
    for name, reason in res.problems.items():
        err_console.print(f"[red]skipped[/red] {name}: {escape(reason)}", soft_wrap=True)
    if not res.files and not res.problems:
        console.print(f"no deployment documents in {folder}/ at {res.revision[:10]}")
    if res.problems:
        raise typer.Exit(1)


@deploy_app.command("history")
def history(
    deployment: str = typer.Argument(..., help="Deployment name."),
    limit: int = typer.Option(20, "--limit", "-n", metavar="N", help="Most entries shown."),
    commits: bool = typer.Option(
        False, "--commits", help="Show the commits of the document instead of the syncs."
    ),
    folder: str = typer.Option("deploy", "--folder", metavar="DIR", help=FOLDER_HELP),
) -> None:
    """List the revisions a deployment was synced to (or its document's commits)."""
    from opsloop import gitops  # noqa: PLC0415
    from opsloop.gitops.wording import describe_diff  # noqa: PLC0415

    proj = project()
    if commits:
        table = Table(title=f"commits of {deployment}", title_justify="left")
        for col in ("commit", "when", "author", "subject"):
            table.add_column(col)
        for c in gitops.document_history(deployment, project=proj, folder=folder, max_count=limit):
            table.add_row(c.short, ago(c.time), c.author, c.subject)
        console.print(table)
        return
    table = Table(title=f"syncs of {deployment}", title_justify="left")
    for col in ("when", "revision", "result", "trigger", "version", "change"):
        table.add_column(col, overflow="fold" if col == "change" else "ellipsis")
    entries = proj.store.deployments.history(deployment, limit=limit)
    for e in entries:
        style = {"Succeeded": "green", "Failed": "red", "Pruned": "yellow"}.get(e.result, "white")
        change = e.details.get("error") or describe_diff(e.diff) or "-"
        table.add_row(
            ago(e.started_at),
            (e.revision or "-")[:10],
            f"[{style}]{e.result}[/{style}]",
            str(e.details.get("trigger", "-")),
            f"v{e.details['version']}" if "version" in e.details else "-",
            Text(str(change)),
        )
    console.print(table)
    if not entries:
        console.print(f"deployment '{deployment}' has not been synced yet")


def _status_table(result: object, title: str) -> Table:
    from opsloop.gitops import SyncResult  # noqa: PLC0415

    assert isinstance(result, SyncResult)
    rev = result.revision[:10]
    table = Table(title=f"{title} at {rev}", title_justify="left")
    for col in ("deployment", "sync", "health", "serves", "endpoint", "reason"):
        table.add_column(col, overflow="fold" if col in ("reason", "serves") else "ellipsis")
    for o in result.outcomes:
        table.add_row(
            o.name,
            _styled(str(o.sync), _SYNC_STYLE),
            _styled(str(o.health), _HEALTH_STYLE),
            Text(o.serving),
            ", ".join(o.endpoints) or "-",
            Text(o.reason),
        )
    return table


def sync(
    names: list[str] | None = typer.Argument(None, help="Deployments to sync (default: all)."),
    revision: str = typer.Option(
        "HEAD", "--revision", metavar="REVISION", help="Git revision to read."
    ),
    working_tree: bool = typer.Option(
        False, "--working-tree", help="Read uncommitted documents instead of a revision."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff, change nothing."),
    prune: bool | None = typer.Option(
        None,
        "--prune/--no-prune",
        help="Stop deployments removed from Git (default: as their syncPolicy says).",
    ),
    runtime: str = typer.Option("local", "--runtime", metavar="RUNTIME", help=RUNTIME_HELP),
    folder: str = typer.Option("deploy", "--folder", metavar="DIR", help=FOLDER_HELP),
) -> None:
    """Read the desired state, compare it with the live state, show the diff and apply it."""
    from opsloop.gitops import Reconciler  # noqa: PLC0415
    from opsloop.gitops.wording import describe_change  # noqa: PLC0415

    rec = Reconciler(project(), runtime=runtime, folder=folder)
    with console.status("syncing…" if not dry_run else "comparing…"):
        result = rec.sync(
            names or None,
            revision=None if working_tree else revision,
            dry_run=dry_run,
            prune=prune,
        )
    for o in result.outcomes:
        for key, change in o.diff.items():
            words = describe_change(key, change.get("live"), change.get("desired"))
            console.print(f"  [bold]{escape(o.name)}[/bold] {escape(words)}", soft_wrap=True)
    console.print(_status_table(result, "dry run" if dry_run else "sync"))
    if not result.ok:
        raise typer.Exit(1)


def rollback(
    deployment: str = typer.Argument(..., help="Deployment name."),
    to: str | None = typer.Option(
        None,
        "--to",
        metavar="REVISION",
        help="Restore the document as of this revision instead of reverting.",
    ),
    folder: str = typer.Option("deploy", "--folder", metavar="DIR", help=FOLDER_HELP),
) -> None:
    """Revert the last commit that changed a deployment's document, as a new commit."""
    from opsloop import gitops  # noqa: PLC0415

    res = gitops.rollback(deployment, to=to, project=project(), folder=folder)
    _committed(res.commit, res.message, f"{res.file} is already as of {to}; no commit")


def status(
    runtime: str = typer.Option("local", "--runtime", metavar="RUNTIME", help=RUNTIME_HELP),
    folder: str = typer.Option("deploy", "--folder", metavar="DIR", help=FOLDER_HELP),
) -> None:
    """Show every deployment's sync and health status, with the reason."""
    from opsloop.gitops import Reconciler  # noqa: PLC0415

    console.print(escape(status_line()), soft_wrap=True)
    result = Reconciler(project(), runtime=runtime, folder=folder).status()
    if not result.outcomes:
        console.print(f"no deployments in {folder}/ at {result.revision[:10]} and none running")
        return
    console.print(_status_table(result, "status"))
