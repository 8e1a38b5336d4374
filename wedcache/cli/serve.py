"""``wedcache serve``: the HTTP service on uvicorn (:func:`wedcache.service.create_app`).

With ``--workers N`` (N > 1) each worker is a process with its own memory tier and its own
Prometheus values. So that ``GET /api/metrics`` reports the sum over every worker, whichever
one answers, prometheus_client's multiprocess mode needs ``PROMETHEUS_MULTIPROC_DIR`` set to
an empty folder before the workers start: unless the caller set one, ``serve`` creates a
temporary folder for the run and removes it when uvicorn exits.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator

import typer

from . import app


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(3000, min=1, max=65535, help="Port to listen on."),
          workers: int = typer.Option(1, min=1, max=64, help="Worker processes (each with its own memory tier)."),
          log_level: str = typer.Option("info", help="uvicorn log level.")) -> None:
    """Serve the cache API; finds or starts Redis and PostgreSQL, applies pending migrations.

    Ctrl-C (SIGINT) or SIGTERM drains in-flight requests, then flushes buffered metrics.
    With several workers, Prometheus values are shared through PROMETHEUS_MULTIPROC_DIR
    (a temporary folder unless set; an existing one should be empty).
    """
    from .. import services
    from ..service.server import run_uvicorn
    from ..redis_client import CLUSTER_NODES_ENV
    from ..services import DATABASE_ENV, REDIS_ENV

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:  # resolve the servers once, so every worker uses the same ones
        found = services.ensure_services(progress=lambda message: typer.echo(message, err=True))
    except services.ServiceError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    os.environ.pop(CLUSTER_NODES_ENV, None)  # the resolved URL below names the cluster, if there is one
    os.environ[REDIS_ENV], os.environ[DATABASE_ENV] = found.redis_url, found.database_url
    with multiprocess_metrics(workers):
        typer.echo(f"wedcache listening on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''})",
                   err=True)
        run_uvicorn("wedcache.service:create_app", host=host, port=port, workers=workers, log_level=log_level)


@contextmanager
def multiprocess_metrics(workers: int) -> Iterator[str | None]:
    """Make sure ``PROMETHEUS_MULTIPROC_DIR`` names a folder while several workers run; yields it.

    A folder the caller set is created if missing and kept; one made here is removed (and
    the variable unset) on exit. With one worker and nothing set, nothing changes.
    """
    from ..metrics import MULTIPROC_DIR_ENV  # here: other commands need not import prometheus_client

    given = os.environ.get(MULTIPROC_DIR_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        yield given
        return
    if workers < 2:
        yield None
        return
    directory = tempfile.mkdtemp(prefix="wedcache-prometheus-")
    os.environ[MULTIPROC_DIR_ENV] = directory
    typer.echo(f"prometheus multiprocess directory: {directory}", err=True)
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROC_DIR_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)
