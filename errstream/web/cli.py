"""``errstream web`` (serve the app) and ``errstream web token create|list|revoke``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from errstream_core.settings import get_settings

web_app = typer.Typer(help="The web app and REST API (triage issues in a browser).", invoke_without_command=True)
token_app = typer.Typer(help="API tokens (stored hashed, mode 0600, under ERRSTREAM_HOME).", no_args_is_help=True)
web_app.add_typer(token_app, name="token")
console = Console()


@web_app.callback()
def web(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="default ERRSTREAM_WEB_HOST (127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="default ERRSTREAM_WEB_PORT (8090)")] = None,
) -> None:
    """Serve the web app and the REST API (/api/v1, OpenAPI at /api/v1/openapi.json)."""
    if ctx.invoked_subcommand is not None:
        return
    from errstream.web.app import serve

    settings = get_settings()
    tokens = _store()
    if not tokens.list():
        console.print("[yellow]no API tokens yet:[/] create one with `errstream web token create --name you "
                      "--role admin` to log in")
    console.print(f"errstream web on http://{host or settings.web_host}:{port or settings.web_port}/")
    serve(settings, host, port)


def _store():  # type: ignore[no-untyped-def]
    from errstream.web.auth import TokenStore

    return TokenStore(get_settings().tokens_path)


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="viewer (read), member (+ actions) or admin (+ tokens)")] = "member",
    name: Annotated[str | None, typer.Option(help="who uses it; recorded on every change (default: login)")] = None,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from errstream.issue_cli import default_actor

    try:
        token = _store().create(name or default_actor(), role, created_by=default_actor())  # type: ignore[arg-type]
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    typer.echo(token)


@token_app.command("list")
def token_list() -> None:
    """Tokens by id, name and role (never their secrets)."""
    table = Table("id", "name", "role", "created at", "created by")
    for t in _store().list():
        table.add_row(t["id"], t["name"], t["role"], t.get("created_at", ""), t.get("created_by", ""))
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="the id from `token list`")]) -> None:
    """Revoke a token (browser sessions opened with it end too)."""
    if not _store().revoke(token_id):
        console.print(f"[red]error:[/red] no token {token_id}")
        raise typer.Exit(1)
    console.print(f"revoked {token_id}")
