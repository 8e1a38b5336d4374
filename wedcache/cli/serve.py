"""``wedcache serve``: the HTTP service on uvicorn (:func:`wedcache.service.create_app`)."""
from __future__ import annotations

import logging
import os

import typer

from . import app


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(3000, min=1, max=65535, help="Port to listen on."),
          workers: int = typer.Option(1, min=1, max=64, help="Worker processes (each with its own memory tier)."),
          log_level: str = typer.Option("info", help="uvicorn log level.")) -> None:
    """Serve the cache API; finds or starts Redis and PostgreSQL, applies pending migrations.

    Ctrl-C (SIGINT) or SIGTERM drains in-flight requests, then flushes buffered metrics.
    """
    import uvicorn

    from .. import services
    from ..services import DATABASE_ENV, REDIS_ENV

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:  # resolve the servers once, so every worker uses the same ones
        found = services.ensure_services(progress=lambda message: typer.echo(message, err=True))
    except services.ServiceError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    os.environ[REDIS_ENV], os.environ[DATABASE_ENV] = found.redis_url, found.database_url
    typer.echo(f"wedcache listening on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''})", err=True)
    uvicorn.run("wedcache.service:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, timeout_graceful_shutdown=30, access_log=False)
