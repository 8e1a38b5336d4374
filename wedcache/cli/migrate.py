"""``wedcache migrate``: apply the PostgreSQL schema (:mod:`wedcache.migrations`)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import app

DatabaseUrl = Annotated[Optional[str], typer.Option(
    "--database-url", envvar="AI_CACHE_DATABASE_URL",
    help="PostgreSQL URL [default: the server `wedcache services up` finds or starts].")]


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Apply pending schema migrations; print each one applied, or "up to date"."""
    import psycopg

    from ..migrations import apply_migrations

    try:
        applied = apply_migrations(database_url or _local_database_url())
    except psycopg.Error as error:
        typer.echo(f"error: migrate failed: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo("\n".join(f"applied {version}" for version in applied) if applied else "up to date")


def _local_database_url() -> str:
    from .. import services

    try:
        return services.ensure_services(progress=lambda message: typer.echo(message, err=True)).database_url
    except services.ServiceError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
