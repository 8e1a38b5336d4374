"""The ``wedcache`` command: one thin sub-command module per idea.

Each command parses arguments, calls a library function that returns a result, and prints
it. ``wedcache services``, ``migrate``, ``bench``, ``calibrate`` … are registered below.
"""
from __future__ import annotations

import typer

app = typer.Typer(help="wedcache: a tiered cache for AI answers, and the lab that measures it.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


def _register() -> None:
    from . import bench, bench_semantic, bench_service, cache, calibrate, chaos, gate, keys, migrate, serve, services, simulate, tune  # noqa: F401  (each adds its commands to ``app``)


_register()


@app.command()
def version() -> None:
    """Print wedcache's version."""
    from .. import __version__
    typer.echo(__version__)
