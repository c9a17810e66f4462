"""``opsloop users``, ``opsloop tokens``, ``opsloop login`` and ``opsloop logout``.

``users`` and ``tokens`` edit the project's store directly: whoever can open it administers
it (in local single-user mode, the OS user). ``login`` checks a token against a server and
saves it for the CLI; the token is read from a file or standard input, never from an
argument (the process list shows arguments to every user of the machine).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from opsloop.cli._common import ago, console, err_console, project
from opsloop.errors import ConfigError, SecurityError

if TYPE_CHECKING:
    from opsloop.store.types import IdentityInfo

users_app = typer.Typer(
    help="Users and service accounts of the control plane, their roles and grants "
    "(roles: viewer < developer < deployer < admin).",
    no_args_is_help=True,
)
tokens_app = typer.Typer(
    help="API tokens: made for a user or service account, shown once, stored hashed.",
    no_args_is_help=True,
)

ROLE_HELP = "viewer, developer, deployer or admin."


def _resource(model: str | None, deployment: str | None) -> tuple[str | None, str | None]:
    if model is not None and deployment is not None:
        raise SecurityError("a grant is on one model or one deployment: give one of them")
    if model is not None:
        return "model", model
    if deployment is not None:
        return "deployment", deployment
    return None, None


def _where(resource_type: str | None, resource: str | None) -> str:
    return f" on {resource_type} '{resource}'" if resource_type else ""


def _roles_text(info: IdentityInfo) -> str:
    roles = ", ".join(info.roles) or "-"
    grants = ", ".join(f"{g.role} on {g.resource_type} {g.resource}" for g in info.grants)
    return roles + (f"; {grants}" if grants else "")


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="The user's or service account's name."),
    role: list[str] = typer.Option(
        [], "--role", "-r", metavar="ROLE", help=f"A role on everything ({ROLE_HELP})"
    ),
    service: bool = typer.Option(False, "--service", help="A service account, not a user."),
) -> None:
    """Add a user (or, with --service, a service account) holding ROLE on everything."""
    info = project().store.access.create_identity(
        name, kind="service" if service else "user", roles=role
    )
    console.print(
        f"added {info.kind} {escape(info.name)} ({escape(_roles_text(info))})", soft_wrap=True
    )
    console.print(f"next: opsloop tokens create {escape(info.name)}")


@users_app.command("list")
def users_list() -> None:
    """List users and service accounts with their roles and grants."""
    identities = project().store.access.list_identities()
    if not identities:
        console.print("no users yet: 'opsloop users add NAME --role ROLE' adds one")
        return
    table = Table()
    for col in ("name", "kind", "roles", "grants", "status", "created"):
        table.add_column(col)
    for i in identities:
        grants = ", ".join(f"{g.role} on {g.resource_type} {g.resource}" for g in i.grants)
        table.add_row(
            escape(i.name),
            i.kind,
            ", ".join(i.roles) or "-",
            escape(grants) or "-",
            "[red]disabled[/red]" if i.disabled else "active",
            ago(i.created_at),
        )
    console.print(table)


@users_app.command("grant")
def users_grant(
    name: str = typer.Argument(..., help="User or service account."),
    role: str = typer.Argument(..., help=ROLE_HELP),
    model: str | None = typer.Option(None, "--model", metavar="MODEL", help="Only this model."),
    deployment: str | None = typer.Option(
        None, "--deployment", metavar="DEPLOYMENT", help="Only this deployment."
    ),
) -> None:
    """Give NAME the role ROLE on everything, or on one model or deployment."""
    resource_type, resource = _resource(model, deployment)
    info = project().store.access.grant(name, role, resource_type=resource_type, resource=resource)
    console.print(
        f"{escape(info.name)} holds {role}{escape(_where(resource_type, resource))} "
        f"({escape(_roles_text(info))})",
        soft_wrap=True,
    )


@users_app.command("revoke")
def users_revoke(
    name: str = typer.Argument(..., help="User or service account."),
    role: str = typer.Argument(..., help=ROLE_HELP),
    model: str | None = typer.Option(None, "--model", metavar="MODEL", help="Only this model."),
    deployment: str | None = typer.Option(
        None, "--deployment", metavar="DEPLOYMENT", help="Only this deployment."
    ),
) -> None:
    """Take the role ROLE on everything, or on one model or deployment, from NAME."""
    resource_type, resource = _resource(model, deployment)
    info = project().store.access.revoke(name, role, resource_type=resource_type, resource=resource)
    console.print(
        f"{escape(info.name)} no longer holds {role}{escape(_where(resource_type, resource))} "
        f"({escape(_roles_text(info))})",
        soft_wrap=True,
    )


@users_app.command("disable")
def users_disable(name: str = typer.Argument(..., help="User or service account.")) -> None:
    """Disable NAME: none of its tokens authenticates until it is enabled again."""
    project().store.access.set_disabled(name, True)
    console.print(f"disabled {escape(name)}: its tokens are refused")


@users_app.command("enable")
def users_enable(name: str = typer.Argument(..., help="User or service account.")) -> None:
    """Enable a disabled NAME again (its unexpired, unrevoked tokens work again)."""
    project().store.access.set_disabled(name, False)
    console.print(f"enabled {escape(name)}")


@tokens_app.command("create")
def tokens_create(
    user: str = typer.Argument(..., help="The user or service account the token is for."),
    name: str = typer.Option("", "--name", metavar="NAME", help="What the token is for."),
    expires: str = typer.Option(
        "90d", "--expires", metavar="DURATION", help="Lifetime: 90d, 12h … or never."
    ),
) -> None:
    """Make an API token for USER and print it once: it is stored hashed, never shown again."""
    from opsloop.secops.identities import token_expiry  # noqa: PLC0415

    expires_at = token_expiry(expires)
    issued = project().store.access.issue_token(user, name=name, expires_at=expires_at)
    until = issued.info.expires_at
    err_console.print(
        f"token {issued.info.id} for {escape(user)}"
        + (f", expires {until:%Y-%m-%d %H:%M} UTC" if until is not None else ", never expires")
        + ". [bold yellow]Copy it now: it is not shown again.[/bold yellow]",
        soft_wrap=True,
    )
    # The token alone on standard output, so that it can be piped into a secret store.
    typer.echo(issued.token)


@tokens_app.command("list")
def tokens_list(
    user: str | None = typer.Argument(None, help="Only this user's tokens."),
) -> None:
    """List tokens by id, with the start of each (never the token)."""
    from datetime import UTC, datetime  # noqa: PLC0415

    tokens = project().store.access.list_tokens(user)
    if not tokens:
        console.print("no tokens yet: 'opsloop tokens create USER' makes one")
        return
    now = datetime.now(UTC)
    table = Table()
    for col in ("id", "user", "name", "token", "created", "expires", "last used", "state"):
        table.add_column(col)
    for t in tokens:
        state = t.state(now)
        style = {"active": "green", "expired": "yellow", "revoked": "red"}[state]
        table.add_row(
            str(t.id),
            escape(t.identity),
            escape(t.name) or "-",
            f"{t.prefix}…",
            ago(t.created_at),
            f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never",
            ago(t.last_used_at),
            f"[{style}]{state}[/{style}]",
        )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int = typer.Argument(..., help="The token's id.")) -> None:
    """Revoke a token: it is refused from the next request on."""
    info = project().store.access.revoke_token(token_id)
    console.print(f"revoked token {info.id} of {escape(info.identity)}")


def login(
    server: str = typer.Argument(..., help="The server's URL (http://HOST:PORT)."),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        metavar="FILE",
        help="Read the token from FILE (default: standard input).",
    ),
) -> None:
    """Check an API token against SERVER and save it for the CLI (mode 0600, in the user's
    config folder). The token is read from --token-file or standard input, never an
    argument."""
    # Lazy: httpx and the credentials file are for this command alone.
    import getpass  # noqa: PLC0415

    from opsloop.secops import credentials  # noqa: PLC0415

    if token_file is not None:
        try:
            text = token_file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"cannot read the token file {token_file}: {reason}") from None
    elif sys.stdin.isatty():
        text = getpass.getpass("API token: ")
    else:
        text = sys.stdin.read()
    cred, me = credentials.login(server, text)
    roles = ", ".join(me.get("roles", [])) or "no role"
    console.print(
        f"logged in to {escape(cred.server)} as {escape(cred.identity)} ({escape(roles)}); "
        f"token saved in {escape(str(credentials.credentials_path()))}",
        soft_wrap=True,
    )


def logout(server: str = typer.Argument(..., help="The server's URL.")) -> None:
    """Forget the token saved for SERVER."""
    from opsloop.secops.credentials import logout as forget  # noqa: PLC0415

    if forget(server):
        console.print(f"logged out of {escape(server)}")
    else:
        console.print(f"no token saved for {escape(server)}")


def status_line() -> str:
    """The line ``opsloop status`` prints about who the CLI acts as."""
    from opsloop.secops.credentials import access_status  # noqa: PLC0415

    return access_status()
