"""``wedcache plan capacity``: growth projected to resources and cost, against the seed's table."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from simulations.scenario import scenario_from_dict
from wedcache.cli import app
from wedcache.policy import load_policy
from types import SimpleNamespace

import numpy as np
from scipy.stats import poisson

from wedcache.tuning.capacity import (CapacityInputError, Growth, compare_allocation, erlang_c, grown_scenario,
                                      peak_figures, postgres_connections, project_capacity, replica_distances,
                                      write_capacity)
from wedcache.tuning.mrc import stack_distances

SMALL_YEAR = {"name": "small-year", "run": {"start_date": "2026-01-01", "days": 365, "seed": 3, "sample_rate": 0.01},
              "traffic": {"base_qps": 0.1}, "queries": {"distinct": 10_000, "organizations": 10},
              "cache": {"memory_entries": 10_000, "memory_mb": 8}}
RESOURCES = {"memory", "redis_memory", "postgres_connections", "cpu_cores"}


@pytest.fixture(scope="module")
def plan():
    return project_capacity(scenario_from_dict(SMALL_YEAR), Growth(users=3.0, queries=5.0))


def test_the_grown_scenario_scales_users_and_queries():
    base = scenario_from_dict(SMALL_YEAR)
    grown = grown_scenario(base, Growth(3.0, 5.0), 0.002)
    assert (grown.queries.distinct, grown.queries.organizations) == (30_000, 30)
    assert grown.traffic.base_qps == pytest.approx(0.5)
    assert grown.run.sample_rate == 0.002


def test_growth_raises_qps_and_every_resource_season_by_season(plan):
    base, grown = plan["baseline"]["seasons"], plan["grown"]["seasons"]
    assert list(grown) == ["winter", "spring", "summer", "fall"]
    for season in grown:
        b, g = base[season], grown[season]
        assert g["peak_minute_qps"] == pytest.approx(5 * b["peak_minute_qps"]) and g["peak_qps"] > b["peak_qps"]
        assert g["memory_bytes"] > b["memory_bytes"] and g["redis_bytes"] > b["redis_bytes"]
        assert g["postgres_load_erlangs"] > b["postgres_load_erlangs"]
        assert g["postgres_connections"] >= b["postgres_connections"]
        assert g["replicas"] >= b["replicas"] and g["cpu_cores"] >= b["cpu_cores"]
        assert g["monthly_cost"]["total"] > b["monthly_cost"]["total"]
    assert grown["summer"]["peak_qps"] > grown["winter"]["peak_qps"]


def test_memory_is_per_replica_times_replicas(plan):
    for run in ("baseline", "grown"):
        for f in plan[run]["seasons"].values():
            assert f["memory_bytes"] == pytest.approx(f["memory_per_replica_bytes"] * f["replicas"])
            assert f["replicas"] >= 2 and f["memory_per_replica_bytes"] > 0


def test_peak_qps_is_the_busiest_seconds_99th_percentile():
    rates = np.full(3 * 60, 100.0)
    rates[60 + 17] = 400.0  # one busy minute in the second hour
    peaks = peak_figures(rates, np.array([0, 1, 2]))
    assert peaks["peak_minute_qps"] == 400.0
    assert peaks["peak_qps"] == poisson.ppf(0.99, 400.0) > 440
    assert peaks["burst"].tolist() == pytest.approx([1.0, 400 / 105, 1.0])
    assert peak_figures(rates, np.array([0]))["peak_qps"] == poisson.ppf(0.99, 100.0)


def fake_records(n=4000, objects=200, seed=1):
    rng = np.random.default_rng(seed)
    ids = (rng.zipf(1.3, n) % objects).astype(np.int64)
    return SimpleNamespace(object_id=ids, t=np.arange(n, dtype=float), created=np.zeros(n),
                           code=np.zeros(n, np.int8))


def test_one_replica_sees_the_whole_stream():
    rec = fake_records()
    assert replica_distances(rec, 1).tolist() == stack_distances(rec.object_id).tolist()


def test_a_random_balancer_gives_each_replica_the_whole_key_space():
    """More replicas: each sees fewer requests of the same objects, so more first sightings
    (each replica warms its own copy) and a request whose replica saw only an older entry misses."""
    rec = fake_records()
    one, four = replica_distances(rec, 1), replica_distances(rec, 4)
    assert np.isinf(four).sum() > np.isinf(one).sum()
    rec.created[:] = rec.t - 0.5  # every hit served an entry written just before it: no replica holds it
    assert np.isinf(replica_distances(rec, 4)).all()


def test_the_comparison_names_each_resource_against_the_right_row(plan):
    rows = plan["grown"]["comparison"]
    assert {r["resource"] for r in rows} == RESOURCES
    assert {r["allocation"] for r in rows if r["season"] == "winter"} == {"production"}
    assert {r["allocation"] for r in rows if r["season"] == "summer"} == {"peak_season"}
    assert {r["verdict"] for r in rows} <= {"short", "fits", "generous"}
    # a tiny deployment's needs sit far below the seed's table
    assert all(r["verdict"] == "generous" for r in rows if r["resource"] in ("memory", "redis_memory"))


def test_short_and_generous_follow_the_allocation():
    figures = {"summer": {"memory_bytes": 30e9, "redis_bytes": 10e9, "postgres_connections": 200, "cpu_cores": 40}}
    verdicts = {r["resource"]: r["verdict"] for r in compare_allocation(figures, load_policy())}
    assert verdicts == {"memory": "short", "redis_memory": "generous", "postgres_connections": "fits",
                        "cpu_cores": "short"}


def test_postgres_connections_follow_littles_law_and_erlang_c():
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: a request waits with probability rho
    small = postgres_connections(1000, 0.3, 0.3, 2, 1.0, 2.0)
    large = postgres_connections(50_000, 0.3, 0.3, 2, 1.0, 2.0)
    assert small["postgres_load_erlangs"] == pytest.approx(0.9)
    assert large["postgres_connections"] > small["postgres_connections"] >= 2


def test_the_files_carry_the_plan_and_a_conclusion_first(plan, tmp_path):
    files = write_capacity(plan, tmp_path)
    data = json.loads((tmp_path / "capacity.json").read_text())
    assert {"scenario", "growth", "baseline", "grown", "seed_allocation", "seed_allocation_cost", "method",
            "conclusion"} <= set(data)
    summer = data["grown"]["seasons"]["summer"]
    assert {"peak_qps", "peak_minute_qps", "peak_hour_qps", "memory_bytes", "memory_per_replica_bytes",
            "redis_bytes", "postgres_connections", "replicas", "cpu_cores", "monthly_cost",
            "target_reachable"} <= set(summer)
    assert set(summer["monthly_cost"]) == {"memory", "redis", "postgres", "replicas", "origin", "total"}
    md = files["md"].read_text()
    assert md.index(data["conclusion"][0]) < md.index("## Baseline")
    assert files["resources"].stat().st_size > 0 and files["cost"].stat().st_size > 0


@pytest.mark.parametrize("args, option", [(["--growth-users", "0"], "--growth-users"),
                                          (["--growth-queries", "-2"], "--growth-queries"),
                                          (["--sample-rate", "0"], "--sample-rate"),
                                          (["--pg-query-ms", "0"], "--pg-query-ms")])
def test_bad_options_exit_2_naming_the_option(args, option):
    result = CliRunner().invoke(app, ["plan", "capacity", *args])
    assert result.exit_code == 2
    assert option in result.output


def test_growth_rejects_nonsense():
    with pytest.raises(CapacityInputError, match="--growth-queries"):
        Growth(users=3.0, queries=float("nan"))


def test_the_command_writes_the_plan(tmp_path):
    scenario = tmp_path / "edge.toml"
    scenario.write_text('[run]\nstart_date = 2026-02-27\ndays = 3\nsample_rate = 0.05\n'
                        '[traffic]\nbase_qps = 0.5\n[queries]\ndistinct = 5000\norganizations = 5\n')
    result = CliRunner().invoke(app, ["plan", "capacity", str(scenario), "--out", str(tmp_path / "out"),
                                      "--growth-users", "2", "--growth-queries", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "capacity.json").read_text())
    assert list(data["grown"]["seasons"]) == ["winter", "spring"]
    assert data["conclusion"][0] in result.output
    assert (tmp_path / "out" / "report.html").is_file()
