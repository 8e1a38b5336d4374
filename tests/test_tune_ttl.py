"""``wedcache tune ttl``: the sweep in simulation, its round trip, the choice, and ``--from-metrics``.

The simulated sweep runs a small scenario (``tune-ttl`` for one and a half days) on a small
grid; the re-simulation of the tuned policy must reproduce the predicted per-vendor hit
rate and stale fraction within one point.
"""
from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from simulations.scenario import load_scenario
from wedcache.cli import app
from wedcache.errors import InvalidInput
from wedcache.keys import organization_uuid
from wedcache.metrics import MetricRow, MetricsBuffer
from wedcache.policy import load_policy
from wedcache.tuning.ttl import (Grid, choose, pareto_frontier, parse_vendor_bounds, simulate_policy,
                                 staleness_bounds, with_vendors)
from wedcache.tuning.ttl_metrics import Requests, mixture_p95, replay

GRID_ARGS = ["--ttl-factors", "0.0625,0.25,1", "--swr-fractions", "0,0.1"]


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("tune-ttl").with_overrides(days=1.5)


@pytest.fixture(scope="module")
def tuned(scenario, tmp_path_factory):
    """The command run on the small scenario: its output folder and ``tuning.json``."""
    out = tmp_path_factory.mktemp("tune-ttl")
    path = out / "scenario.toml"
    import tomli_w
    path.write_text(tomli_w.dumps(scenario.to_dict()))
    result = CliRunner().invoke(app, ["tune", "ttl", str(path), "--out", str(out), "--max-stale", "0.05",
                                      "--max-stale-vendor", "venue=0.02", *GRID_ARGS])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "tuning.json").read_text())


def test_writes_the_policy_the_json_and_the_report(tuned):
    out, tuning = tuned
    for name in ("tuned-policy.toml", "tuning.json", "report.html", "report.md", "pareto.png", "before-after.png"):
        assert (out / name).stat().st_size > 0, name
    markdown = (out / "report.md").read_text()
    assert markdown.index("## Conclusion") < markdown.index("## Before and after")
    assert "venue:" in markdown.replace("**", "")
    venue = tuning["vendors"]["venue"]
    assert venue["max_stale"] == 0.02 and tuning["vendors"]["florist"]["max_stale"] == 0.05
    assert len(venue["points"]) == 1 + 6  # the seed and the grid


def test_tuned_values_go_into_the_policy_and_keep_the_change_rate(tuned):
    out, tuning = tuned
    seed, policy = load_policy(), load_policy(out / "tuned-policy.toml")
    for vendor, data in tuning["vendors"].items():
        mine = policy.vendors[vendor]
        assert mine.baseTtl == data["chosen"]["ttl_seconds"]
        assert mine.stale_while_revalidate_seconds == data["chosen"]["swr_seconds"]
        old = seed.vendors[vendor]
        assert mine.volatilityFactor / mine.baseTtl == pytest.approx(old.volatilityFactor / old.baseTtl)


def test_the_choice_is_the_best_hit_rate_within_the_bound(tuned):
    _, tuning = tuned
    for vendor, data in tuning["vendors"].items():
        feasible = [p for p in data["points"] if p["stale_hit_fraction"] <= data["max_stale"]]
        assert data["meets_bound"] == bool(feasible), vendor
        if feasible:
            assert data["chosen"]["hit_rate"] == max(p["hit_rate"] for p in feasible)
            assert data["chosen"]["stale_hit_fraction"] <= data["max_stale"]


def test_resimulating_the_tuned_policy_reproduces_the_prediction(tuned, scenario):
    out, tuning = tuned
    assert tuning["verification"]["passed"]
    summary = simulate_policy(scenario, load_policy(out / "tuned-policy.toml"))
    for vendor, data in tuning["vendors"].items():
        measured = summary["by_vendor_type"][vendor]
        assert measured["hit_rate"] == pytest.approx(data["chosen"]["hit_rate"], abs=0.01), vendor
        assert measured["stale_hit_fraction"] == pytest.approx(data["chosen"]["stale_hit_fraction"], abs=0.01), vendor


def test_longer_ttls_raise_both_hit_rate_and_staleness(tuned):
    _, tuning = tuned
    for vendor in ("photographer", "florist"):
        points = sorted((p for p in tuning["vendors"][vendor]["points"] if p["swr_fraction"] == 0),
                        key=lambda p: p["ttl_seconds"])
        assert [p["hit_rate"] for p in points] == sorted(p["hit_rate"] for p in points)
        assert points[-1]["stale_hit_fraction"] > points[0]["stale_hit_fraction"]


@pytest.mark.parametrize("args, option", [
    (["--max-stale", "1.5"], "--max-stale"),
    (["--max-stale-vendor", "castle=0.1"], "--max-stale-vendor"),
    (["--max-stale-vendor", "venue"], "--max-stale-vendor"),
    (["--ttl-factors", "0,1"], "--ttl-factors"),
    (["--ttl-factors", "a,b"], "--ttl-factors"),
    (["--swr-fractions", "-1"], "--swr-fractions"),
    (["--time-range", "2w", "--from-metrics", "--database-url", "postgresql://nobody@127.0.0.1:1/x"], "--time-range"),
])
def test_bad_options_exit_2_naming_the_option(args, option):
    extra = [] if "--from-metrics" in args else ["smoke"]
    result = CliRunner().invoke(app, ["tune", "ttl", *extra, *args])
    assert result.exit_code == 2 and option in result.output, result.output


def test_a_scenario_with_a_fixed_ttl_is_refused(tmp_path):
    path = tmp_path / "fixed.toml"
    path.write_text('[run]\nstart_date = 2026-01-13\ndays = 1\n[cache]\nttl_seconds = 600\n')
    result = CliRunner().invoke(app, ["tune", "ttl", str(path), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "cache.ttl_seconds" in result.output


def test_choice_rule_and_frontier():
    points = [{"hit_rate": h, "stale_hit_fraction": s, "ttl_seconds": t}
              for h, s, t in ((0.5, 0.01, 100), (0.7, 0.04, 200), (0.7, 0.03, 300), (0.9, 0.2, 400))]
    assert choose(points, 0.05) == (points[2], True)
    assert choose(points, 0.001) == (points[0], False)
    assert pareto_frontier(points) == [points[0], points[2], points[3]]
    assert staleness_bounds(0.05, {"venue": 0.02})["venue"] == 0.02
    assert parse_vendor_bounds(["venue=0.02", "florist = 0.1"]) == {"venue": 0.02, "florist": 0.1}
    with pytest.raises(InvalidInput, match="--max-stale"):
        staleness_bounds(-0.1)
    with pytest.raises(InvalidInput, match="--ttl-factors"):
        Grid(ttl_factors=())


def test_with_vendors_changes_only_the_named_vendor():
    seed = load_policy()
    policy = with_vendors(seed, {"venue": (3600, 60.0)})
    assert (policy.vendors["venue"].baseTtl, policy.vendors["venue"].stale_while_revalidate_seconds) == (3600, 60.0)
    assert policy.vendors["florist"] == seed.vendors["florist"]


def test_replay_is_a_ttl_cache_with_a_grace_window():
    times = [0.0, 50.0, 120.0, 260.0, 300.0, 0.0, 400.0]
    req = Requests(["a"] * 5 + ["b"] * 2, times, [1.0] * 7, np.zeros(7, bool), np.ones(7))
    hits, ages = replay(req, 100.0, 0.0)
    assert hits.tolist() == [False, True, False, False, True, False, False]
    assert ages[1] == 50.0 and ages[4] == 40.0
    hits, _ = replay(req, 100.0, 30.0)  # 120 is 20 s past expiry: served, and refreshed
    assert hits.tolist() == [False, True, True, False, True, False, False]


def test_mixture_p95_follows_the_hit_rate():
    hit, miss = np.full(100, 1.0), np.full(100, 1000.0)
    assert mixture_p95(hit, miss, 0.99) == 1.0
    assert mixture_p95(hit, miss, 0.5) == 1000.0
    assert mixture_p95(hit, np.empty(0), 0.0) is None


def _record_requests(database_url: str, start: float) -> None:
    """Two keys of two vendor types, asked every 10 minutes for a day (all recorded as misses)."""
    org = organization_uuid(f"tune-ttl-{uuid.uuid4()}")
    buffer = MetricsBuffer(database_url, flush_interval=60)
    try:
        for step in range(144):
            for vendor in ("venue", "florist"):
                buffer.record(MetricRow(org, start + 1 + step * 600.0, f"{{{org}}}:tune-ttl:{vendor}", None, False,
                                        50.0, "tier_3", vendor, "winter"))
        buffer.flush()
    finally:
        buffer.close()


def test_from_metrics_tunes_from_recorded_rows(migrated_database_url, tmp_path):
    start = 1_046_649_600.0  # 2003-03-03: no other test records rows then
    _record_requests(migrated_database_url, start)
    from wedcache.tuning.ttl_metrics import tune_from_metrics

    tuning = tune_from_metrics(migrated_database_url, tmp_path, time_range="24h", now=start + 86_400,
                               grid=Grid((0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0), (0.0,)))
    assert set(tuning["vendors"]) == {"venue", "florist"} and tuning["rows"] == 288
    assert tuning["calibration"]["venue"]["recorded_hit_rate"] == 0.0
    for data in tuning["vendors"].values():
        assert data["meets_bound"] and data["chosen"]["stale_hit_fraction"] <= 0.05
        ttls = sorted(p["ttl_seconds"] for p in data["points"] if p["stale_hit_fraction"] <= 0.05)
        assert data["chosen"]["ttl_seconds"] == ttls[-1]  # every 10 minutes: a longer TTL always hits more
    policy = load_policy(tmp_path / "tuned-policy.toml")
    assert policy.vendors["venue"].baseTtl == tuning["vendors"]["venue"]["chosen"]["ttl_seconds"]
    assert (tmp_path / "report.md").read_text().startswith("# TTL tuning")
