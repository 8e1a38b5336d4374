"""``wedcache keys create|list|revoke``: the service's API keys (:mod:`wedcache.apikeys`)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import typer

from . import app
from .migrate import DatabaseUrl, _local_database_url

keys_app = typer.Typer(help="Create, list and revoke API keys (stored only as hashes).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _store(database_url: str | None):
    from ..apikeys import ApiKeyStore
    from ..migrations import apply_migrations

    url = database_url or _local_database_url()
    apply_migrations(url)
    return ApiKeyStore(url)


@keys_app.command("create")
def create(org: str = typer.Option(..., help="Organization: a UUID or a name (mapped to a stable UUID)."),
           plan: str = typer.Option("authenticated", help="authenticated | premium | enterprise"),
           role: str = typer.Option("member", help="member | admin (admin may act across organizations)."),
           label: Optional[str] = typer.Option(None, help="A note to tell keys apart."),
           database_url: DatabaseUrl = None) -> None:
    """Create a key and print its secret (shown only this once)."""
    from ..errors import InvalidInput

    try:
        key, secret = _store(database_url).create(org, plan, role, label)
    except InvalidInput as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"created key {key.id} for organization {key.organization_id} ({key.plan}, {key.role})", err=True)
    typer.echo(secret)


@keys_app.command("list")
def list_keys(org: Optional[str] = typer.Option(None, help="Only this organization's keys."),
              all_keys: bool = typer.Option(False, "--all", help="Include revoked keys."),
              database_url: DatabaseUrl = None) -> None:
    """List keys (id, prefix, organization, plan, role, created, revoked)."""
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "prefix", "organization", "plan", "role", "label", "created", "revoked")
    for key in _store(database_url).list(org, include_revoked=all_keys):
        table.add_row(key.id, key.prefix, key.organization_id, key.plan, key.role, key.label or "",
                      _when(key.created_at), _when(key.revoked_at))
    Console().print(table)


@keys_app.command("revoke")
def revoke(key: str = typer.Argument(..., help="The key's id (or its prefix, as listed)."),
           database_url: DatabaseUrl = None) -> None:
    """Revoke a key; it stops working at once here and within seconds in running services."""
    revoked = _store(database_url).revoke(key)
    if revoked is None:
        typer.echo(f"error: no key {key!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {revoked.id}")


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M") if epoch else ""
