"""``wedcache tune ttl | size | scaling | semantic`` and ``wedcache plan capacity``: tuning and capacity planning.

The groups are defined here; each command lives in its own module (``tune_ttl``,
``tune_size``, ``tune_scaling``, ``tune_semantic``, ``plan``), imported at the bottom so it can add itself.
"""
from __future__ import annotations

import typer

from . import app

tune_app = typer.Typer(help="Tune the policy: TTLs, memory sizes, seasonal scaling (in simulation), the semantic threshold (on labelled pairs).",
                       no_args_is_help=True)
plan_app = typer.Typer(help="Plan capacity: project growth to resources and cost.", no_args_is_help=True)
app.add_typer(tune_app, name="tune")
app.add_typer(plan_app, name="plan")

from . import plan, tune_scaling, tune_semantic, tune_size, tune_ttl  # noqa: E402,F401  (each adds its commands)
