"""``wedcache tune scaling``: the policies, the HPA model, the cost model and a tiny comparison run."""
from __future__ import annotations

import json
import tomllib
from datetime import datetime, timezone

import numpy as np
import pytest
from typer.testing import CliRunner

from simulations.scenario import load_scenario
from wedcache.cli import app
from wedcache.policy import load_policy
from wedcache.tuning import costs
from wedcache.tuning.replicas import (DEFAULT_CALIBRATION, HpaLag, cpu_cores_needed, desired_replicas,
                                      hpa_replicas, plan_replicas)
from wedcache.tuning.scaling import (Observed, PredictivePolicy, ReactivePolicy, ScheduledPolicy, SeasonalPolicy,
                                     compare_policies, holt_winters_forecast, make_policies, without_ttl_adjustment,
                                     write_outputs)

POLICY = load_policy()


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=timezone.utc)


# --- policies --------------------------------------------------------------------------------------

def test_scheduled_scales_up_on_march_1st_and_down_on_november_1st():
    p = ScheduledPolicy(POLICY, 100.0)
    decide = lambda m, d, h=0: p.decide(Observed(at(m, d, h), [], 1.0))  # noqa: E731
    assert decide(2, 28, 23) == 1.0 and decide(3, 1, 0) == 3.0
    assert decide(7, 15) == 3.0 and decide(10, 31, 23) == 3.0
    assert decide(11, 1, 0) == 1.0 and decide(12, 24) == 1.0


def test_seasonal_follows_the_season_table():
    p = SeasonalPolicy(POLICY, 100.0)
    assert [p.decide(Observed(at(m, 15), [], 1.0)) for m in (1, 4, 7, 10)] == [1.0, 2.5, 3.0, 2.2]


def test_reactive_follows_the_threshold():
    p = ReactivePolicy(POLICY, 100.0)  # the seed's 0.8 / 2.0 / 0.5
    step = lambda load, scale: p.decide(Observed(at(1, 5), [load], scale))  # noqa: E731
    assert step(81, 1.0) == 2.0            # utilisation 0.81 > 0.8: x2
    assert step(79, 1.0) == 1.0            # below the threshold, above 0.4: hold
    assert step(250, 2.0) == 3.0           # x2 capped at max_scale 3
    assert step(70, 2.0) == 1.0            # 0.35 < 0.8 x 0.5: x0.5
    assert step(10, 1.0) == 1.0            # never below 1
    assert p.decide(Observed(at(1, 5), [], 2.0)) == 2.0


def test_predictive_scales_for_the_forecast_not_the_last_hour():
    calls = []

    def forecast(history, horizon, period):
        calls.append((len(history), horizon, period))
        return np.full(horizon, 200.0)  # 200 / (0.8 x 100) = 2.5

    p = PredictivePolicy(POLICY, 100.0, forecast=forecast)
    daily = [50.0] * 48
    assert p.decide(Observed(at(1, 3), daily, 1.0)) == 2.5
    assert calls == [(48, 24 + 6, 24)]
    p.decide(Observed(at(1, 3, 1), daily + [50.0], 2.5))
    assert len(calls) == 1  # refitted once a day only
    weekly = [50.0] * 24 * 14
    PredictivePolicy(POLICY, 100.0, forecast=forecast).decide(Observed(at(1, 15), weekly, 1.0))
    assert calls[-1][2] == 168
    early = PredictivePolicy(POLICY, 100.0, forecast=forecast)
    assert early.decide(Observed(at(1, 1), [90.0], 1.0)) == 2.0  # no history: reactive
    assert len(calls) == 2


def test_holt_winters_forecast_follows_a_daily_cycle():
    hours = np.arange(24 * 7)
    load = 100 + 50 * np.sin(2 * np.pi * hours / 24)
    ahead = holt_winters_forecast(load, 24, 24)
    expected = 100 + 50 * np.sin(2 * np.pi * np.arange(24 * 7, 24 * 8) / 24)
    assert np.max(np.abs(ahead - expected)) < 10


def test_policies_name_their_ttl_mode():
    seasonal, none = make_policies(["predictive", "predictive@none"], POLICY, 100.0)
    assert (seasonal.label, seasonal.ttl, none.label, none.ttl) == ("predictive", "season", "predictive@none", "none")
    assert none.settings()["ttl_adjustment"] == "none"
    with pytest.raises(ValueError, match="--policies: unknown TTL mode 'short'"):
        make_policies(["reactive@short"], POLICY, 100.0)
    flat = without_ttl_adjustment(POLICY)
    assert {s.ttl_adjustment_factor for s in flat.seasons.values()} == {1.0}
    assert POLICY.seasons["summer"].ttl_adjustment_factor == 0.8  # the original is untouched


# --- HPA -------------------------------------------------------------------------------------------

def test_the_scenario_needs_more_replicas_in_peak_season():
    """tune-scaling's traffic (base 480 requests/s) is sized so the HPA leaves its floor: the summer
    evening peak needs several replicas, a winter night the minimum."""
    from simulations.profiles import rate_series

    scenario = load_scenario("tune-scaling")
    spec = scenario.workload_spec()
    hours = np.arange(0, spec.duration_seconds, 3600.0) + 1800
    load = rate_series(hours, spec, POLICY)
    plan = plan_replicas(load, np.full(load.size, 0.9), POLICY.replicas)
    assert plan.peak >= 5 and plan.replicas.min() == 2
    summer = slice(24 * 170, 24 * 200)
    assert plan.replicas[summer].mean() > plan.replicas[: 24 * 30].mean() + 1


def test_hpa_stays_within_bounds_and_follows_load():
    load = np.array([0, 10, 500, 1000, 2000, 5000, 100_000, 300, 0], float)
    plan = plan_replicas(load, np.full(load.size, 0.9), POLICY.replicas)
    assert plan.replicas.min() >= 2 and plan.replicas.max() <= 20
    assert plan.replicas[6] == 20 and plan.saturated[6]
    assert list(plan.replicas[:6]) == sorted(plan.replicas[:6])


def test_desired_replicas_formula():
    cores = cpu_cores_needed(np.array([1000.0]), np.array([0.5]), DEFAULT_CALIBRATION)
    assert cores[0] == pytest.approx(1000 * (0.5 * 2 + 0.5 * 4) / 1000)  # 3 cores
    assert desired_replicas(cores, DEFAULT_CALIBRATION, POLICY.replicas)[0] == 3  # ceil(3 / 1.4)


def test_hpa_scales_down_after_its_window():
    desired = np.array([2, 10, 2, 2, 2])
    assert list(hpa_replicas(desired, HpaLag(0, 1))) == [2, 10, 10, 2, 2]
    assert list(hpa_replicas(desired, HpaLag(1, 0))) == [2, 2, 10, 2, 2]


# --- costs -----------------------------------------------------------------------------------------

def test_costs_add_up():
    c = POLICY.costs
    b = costs.breakdown(8, 16, 100, 2, 1000, c)
    assert b.memory == pytest.approx(8 * c.memory_gb_hour)
    assert b.origin == pytest.approx(c.origin_per_1k)
    assert b.total == pytest.approx(sum(b.as_dict()[k] for k in ("memory", "redis", "postgres", "replicas", "origin")),
                                    abs=1e-3)
    hourly = costs.hourly_cost(8, 16, 100, 2, 1000, c)
    assert costs.monthly_cost(8, 16, 100, 2, 1000 * costs.HOURS_PER_MONTH, c) == pytest.approx(
        hourly * costs.HOURS_PER_MONTH)
    assert (b + b).total == pytest.approx(2 * b.total)
    with pytest.raises(ValueError, match="replicas"):
        costs.breakdown(1, 1, 1, -1, 0, c)


# --- a tiny comparison -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    scenario = load_scenario("tune-scaling").with_overrides(start_date="2026-02-28", days=2, sample_rate=0.000125)
    return compare_policies(scenario, ["scheduled", "reactive", "predictive", "predictive@none"])


def test_comparison_runs_the_simulation_per_policy(tiny):
    by = {s["policy"]: s for s in tiny.summaries}
    assert set(by) == {"scheduled", "reactive", "predictive", "predictive@none"}
    scheduled = next(r for r in tiny.runs if r.name == "scheduled").hours
    assert list(scheduled["scale"][:24].unique()) == [1.0] and list(scheduled["scale"][24:].unique()) == [3.0]
    for s in tiny.summaries:
        assert s["hours"] == 48 and s["in_sla_hours"] + s["breach_hours"] == 48
        assert 2 <= s["peak_replicas"] <= 20
        assert s["cost_usd"]["total"] == pytest.approx(sum(
            s["cost_usd"][k] for k in ("memory", "redis", "postgres", "replicas", "origin")), abs=1e-2)
    assert by["scheduled"]["peak_memory_gb"] == pytest.approx(24.0)  # resources.peak_season's memory
    assert tiny.recommended["policy"] in by


def test_ttl_modes_set_the_caches_ttls_and_are_judged_on_staleness(tiny):
    runs = {r.name: r for r in tiny.runs}
    adjusted, flat = runs["predictive"].automator, runs["predictive@none"].automator
    assert flat.system.cache.ttl.policy.seasons["spring"].ttl_adjustment_factor == 1.0
    assert adjusted.system.cache.ttl.policy.seasons["spring"].ttl_adjustment_factor == 0.9
    assert {e.ttl_adjustment_factor for e in flat.events} == {1.0}
    assert {e.ttl_adjustment_factor for e in adjusted.events} <= {1.0, 0.9}  # winter, then spring on March 1st
    for s in tiny.summaries:
        assert 0 <= s["stale_hit_fraction"] < 1
    assert runs["predictive"].hours["stale_hits"].sum() <= runs["predictive"].hours["hits"].sum()


def test_outputs_and_cli(tiny, tmp_path):
    files = write_outputs(tiny, tmp_path)
    data = json.loads(files["json"].read_text())
    assert data["conclusion"].startswith("Recommended: ") and len(data["policies"]) == 4
    assert data["ttl_effect"].startswith("Seasonal TTL adjustment (predictive against predictive@none")
    assert "stale hits" in files["md"].read_text()
    assert tomllib.loads(files["recommended"].read_text())["scaling"]["policy"] == tiny.recommended["policy"]
    assert "meets the SLA in" in files["md"].read_text() and files["scaling"].stat().st_size > 0


@pytest.mark.parametrize("args, named", [(["--policies", "nope"], "--policies"),
                                         (["--start-date", "June"], "--start-date"),
                                         (["--max-scale", "0.5"], "--max-scale"),
                                         (["--sample-rate", "2"], "sample_rate")])
def test_cli_bad_input_exits_2_naming_the_option(args, named, tmp_path):
    result = CliRunner().invoke(app, ["tune", "scaling", "tune-scaling", "--days", "1", "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and named in result.output


def test_a_gate_run_calibrates_the_service_time(tmp_path):
    import json

    from wedcache.tuning.replicas import ServiceCalibration
    from wedcache.tuning.scaling import load_calibration_file

    gate = {"profile": "ci", "requests": 1000, "hit_rate": 0.8, "server_cpu_ms_per_request": 3.0}
    cal = ServiceCalibration.from_gate(gate)
    assert cal.miss_cpu_ms == pytest.approx(2 * cal.hit_cpu_ms)
    assert 0.8 * cal.hit_cpu_ms + 0.2 * cal.miss_cpu_ms == pytest.approx(3.0)  # the measured mix
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(gate))
    assert load_calibration_file(path) == cal
    path.write_text(json.dumps({"hit_rate": 0.8}))
    with pytest.raises(ValueError, match="server_cpu_ms_per_request"):
        load_calibration_file(path)
