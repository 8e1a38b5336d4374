"""``wedcache tune ttl``: the TTL (and stale-while-revalidate window) per vendor type.

From a scenario in simulation (:func:`wedcache.tuning.ttl.tune_ttl`) or, with
``--from-metrics``, from the metric rows the service recorded
(:func:`wedcache.tuning.ttl_metrics.tune_from_metrics`). Both write ``tuned-policy.toml``,
``tuning.json`` and the report to ``--out``. Bad input exits 2 naming the option.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InvalidInput, WedcacheError
from .tune import tune_app


def _numbers(option: str, text: Optional[str]) -> Optional[tuple[float, ...]]:
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidInput(option, f"expected comma-separated numbers, e.g. 0.25,0.5,1 (got {text!r})") from None


def _grid(ttl_factors: Optional[str], swr_fractions: Optional[str]):
    from ..tuning.ttl import Grid

    given = {"ttl_factors": _numbers("--ttl-factors", ttl_factors),
             "swr_fractions": _numbers("--swr-fractions", swr_fractions)}
    return Grid(**{key: value for key, value in given.items() if value is not None})


def _run(scenario: Optional[str], from_metrics: bool, out: Optional[Path], options: dict) -> tuple[Path, dict]:
    """The output folder and ``tuning.json`` of the chosen source."""
    from ..policy import load_policy

    policy_file = options.pop("policy")
    options["policy"] = load_policy(policy_file) if policy_file else None
    time_range, database_url = options.pop("time_range"), options.pop("database_url")
    if from_metrics:
        if scenario is not None:
            raise InvalidInput("--from-metrics", "give a scenario or --from-metrics, not both")
        from ..tuning.ttl_metrics import tune_from_metrics
        folder = out or Path("reports/tune-ttl/metrics")
        return folder, tune_from_metrics(database_url, folder, time_range=time_range, **options)
    if scenario is None:
        raise InvalidInput("SCENARIO", "required (a scenario file or a shipped name), or --from-metrics")
    from simulations.scenario import load_scenario
    from ..tuning.ttl import tune_ttl

    chosen = load_scenario(scenario)
    folder = out or Path("reports/tune-ttl") / chosen.name
    return folder, tune_ttl(chosen, folder, **options)


@tune_app.command("ttl")
def tune_ttl_command(
    scenario: Annotated[Optional[str], typer.Argument(help="A scenario file, or the name of a shipped one.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default reports/tune-ttl/<scenario>).")] = None,
    max_stale: Annotated[float, typer.Option(help="Largest stale-hit fraction allowed, every vendor type.")] = 0.05,
    max_stale_vendor: Annotated[Optional[list[str]], typer.Option(
        help="A vendor type's own bound, VENDOR=FRACTION (repeatable), e.g. venue=0.02.")] = None,
    ttl_factors: Annotated[Optional[str], typer.Option(
        help="Multiples of the seed's baseTtl to sweep, comma-separated (default 1/32 to 2 by √2).")] = None,
    swr_fractions: Annotated[Optional[str], typer.Option(
        help="Stale-while-revalidate windows as fractions of the TTL (default 0,0.1,0.25).")] = None,
    policy: Annotated[Optional[Path], typer.Option(help="The seed policy file (default: the shipped one).")] = None,
    from_metrics: Annotated[bool, typer.Option(help="Tune from the service's recorded metric rows instead.")] = False,
    time_range: Annotated[str, typer.Option(help="With --from-metrics: 1h, 24h, 7d or 30d.")] = "7d",
    database_url: Annotated[Optional[str], typer.Option(
        help="With --from-metrics: the PostgreSQL URL (default: found as everywhere, AI_CACHE_DATABASE_URL).")] = None,
) -> None:
    """Sweep TTL and stale-while-revalidate per vendor type; write the tuned policy, tuning.json and a report."""
    from ..tuning.ttl import parse_vendor_bounds

    try:
        options = {"max_stale": max_stale, "max_stale_vendor": parse_vendor_bounds(max_stale_vendor or []),
                   "grid": _grid(ttl_factors, swr_fractions), "policy": policy, "time_range": time_range,
                   "database_url": database_url, "progress": lambda message: typer.echo(message, err=True)}
        folder, result = _run(scenario, from_metrics, out, options)
    except (WedcacheError, ValueError) as exc:
        typer.echo(f"wedcache tune ttl: {exc}", err=True)
        raise typer.Exit(2) from None
    _print(folder, result)


def _print(folder: Path, result: dict) -> None:
    from ..tuning.ttl import conclusion

    for vendor, data in result["vendors"].items():
        typer.echo(conclusion(vendor, data).replace("**", ""))
    check = result.get("verification")
    if check is not None:
        typer.echo(f"re-simulated: worst difference {check['worst_points']:.2f} points "
                   f"({'within' if check['passed'] else 'OUTSIDE'} {check['tolerance_points']:g})")
    typer.echo(f"written to {folder}: {', '.join(result['files'].values())}")
