"""``wedcache tune scaling``: compare seasonal scaling policies over a simulated year."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import WedcacheError
from .tune import tune_app

DEFAULT_POLICIES = "seasonal,scheduled,reactive,predictive,predictive@none"


def _start(value: Optional[str]) -> Optional[date]:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--start-date: expected YYYY-MM-DD, got {value!r}") from None


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"wedcache tune scaling: {exc}", err=True)
    return typer.Exit(2)


@tune_app.command("scaling")
def tune_scaling(
    scenario: Annotated[str, typer.Argument(help="A scenario file, or a shipped one's name (tune-scaling, year …).")],
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default reports/tune-scaling/<scenario>).")] = None,
    policies: Annotated[str, typer.Option(help="Comma-separated policies to compare; NAME@none keeps TTLs unadjusted "
                                               "(default NAME: the season's ttl_adjustment_factor).")] = DEFAULT_POLICIES,
    seed: Annotated[Optional[int], typer.Option(help="Override [run] seed.")] = None,
    sample_rate: Annotated[Optional[float], typer.Option(help="Override [run] sample_rate (0 < R <= 1).")] = None,
    start_date: Annotated[Optional[str], typer.Option(help="Override [run] start_date (YYYY-MM-DD).")] = None,
    days: Annotated[Optional[float], typer.Option(help="Override the run's length in days.")] = None,
    max_scale: Annotated[Optional[float], typer.Option(help="Largest memory scale (default: the policy's largest cache_size_multiplier).")] = None,
    calibration: Annotated[Optional[Path], typer.Option(help="A load test's gate.json (its server CPU per request), or a TOML [calibration] table: hit_cpu_ms, miss_cpu_ms, cores_per_replica.")] = None,
    hpa_up_lag: Annotated[int, typer.Option(help="Hours before the HPA's scale-up takes effect.")] = 0,
    hpa_down_window: Annotated[int, typer.Option(help="HPA scale-down stabilisation window, hours.")] = 1,
) -> None:
    """Compare seasonal, scheduled, reactive and predictive scaling on SLA hours, peak memory and cost."""
    from simulations.scenario import load_scenario
    from wedcache.tuning.replicas import DEFAULT_CALIBRATION, HpaLag
    from wedcache.tuning.scaling import compare_policies, conclusion, load_calibration_file, write_outputs

    try:
        if max_scale is not None and max_scale < 1:
            raise ValueError(f"--max-scale: must be >= 1, got {max_scale}")
        chosen = load_scenario(scenario).with_overrides(seed=seed, sample_rate=sample_rate, days=days,
                                                        start_date=_start(start_date))
        cal = load_calibration_file(calibration) if calibration else DEFAULT_CALIBRATION
        lag = HpaLag(hpa_up_lag, hpa_down_window)
        names = [n.strip() for n in policies.split(",") if n.strip()]
        result = compare_policies(chosen, names, max_scale=max_scale, calibration=cal, lag=lag, progress=typer.echo)
        files = write_outputs(result, out or Path("reports") / "tune-scaling" / chosen.name)
    except (WedcacheError, ValueError) as exc:
        raise _fail(exc) from None
    typer.echo(conclusion(result.summaries, result.recommended).replace("**", ""))
    typer.echo(f"report: {files['html']}  json: {files['json']}  recommended: {files['recommended']}")
