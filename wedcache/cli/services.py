"""``wedcache services up | status | down``: the Redis and PostgreSQL servers the cache uses.

``up`` prints progress to stderr and, as the last line of stdout, an ``export`` line, so
``eval "$(wedcache services up)"`` points the shell at the servers.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app
from .. import services as lib

services_app = typer.Typer(help="Find or start real Redis and PostgreSQL servers (throwaway ones when none answer).",
                           no_args_is_help=True)
app.add_typer(services_app, name="services")

StateDir = Annotated[Optional[Path], typer.Option(
    "--state-dir", envvar=lib.STATE_DIR_ENV, help="Folder of the throwaway servers [default: ./.wedcache].")]


def _say(message: str) -> None:
    typer.echo(message, err=True)


RedisCluster = Annotated[Optional[int], typer.Option(
    "--redis-cluster", min=1, metavar="MASTERS",
    help="Make Redis a cluster: the AI_CACHE_REDIS_URL cluster when it answers, else a throwaway "
         "loopback cluster of MASTERS masters under <state dir>/redis-cluster.")]


@services_app.command()
def up(state_dir: StateDir = None, redis_cluster: RedisCluster = None) -> None:
    """Use AI_CACHE_* URLs or default ports when they answer, else start throwaway servers."""
    try:
        found = lib.ensure_services(state_dir, progress=_say, redis_cluster=redis_cluster)
    except lib.ServiceError as error:
        _say(f"error: {error}")
        raise typer.Exit(1)
    typer.echo(lib.export_line(found))


@services_app.command()
def status(state_dir: StateDir = None,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show each candidate server, in resolution order, and whether it answers."""
    report = lib.services_status(state_dir)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"wedcache services (state folder {report['state_dir']})")
    for column in ("service", "source", "url", "answers", "pid", "log"):
        table.add_column(column, overflow="fold")
    for kind in ("redis", "redis-cluster", "postgres"):
        for row in report.get(kind, []):
            table.add_row(kind, row["source"], row["url"], "yes" if row["answers"] else "no",
                          str(row.get("pid") or ""), row.get("log", ""))
    Console().print(table)


@services_app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop the throwaway servers this project started (never anyone else's)."""
    try:
        stopped = lib.stop_services(state_dir)
    except lib.ServiceError as error:
        _say(f"error: {error}")
        raise typer.Exit(1)
    for line in stopped:
        typer.echo(f"stopped {line}")
    if not stopped:
        typer.echo("no throwaway server was running")
