"""``wedcache gate``: thresholds, histogram estimates, compare, and real bounded gate runs.

The real runs serve ``python -m wedcache serve`` against the test servers (``AI_CACHE_*``
env = the ``redis_url`` / ``migrated_database_url`` fixtures) and load it with headless
Locust for a few seconds; one passing run is shared by several assertions.
"""
from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from wedcache.cli import app
from wedcache.gate import GateError, GateInputError
from wedcache.gate.checks import evaluate, histogram_quantile, policy_thresholds, read_thresholds
from wedcache.gate.capacity import step_rates
from wedcache.gate.run import resolve_profile, run_gate

runner = CliRunner()
CONTRACT_KEYS = {"passed", "profile", "rps", "users", "duration_s", "requests", "failures", "hit_rate",
                 "latency_ms", "checks"}


# --- checks ----------------------------------------------------------------------------------

def test_policy_thresholds_come_from_the_sla(policy):
    limits = policy_thresholds(policy)
    assert limits["hit_rate"] == policy.sla.hit_rate and limits["error_rate"] == policy.sla.error_rate
    assert limits["end_to_end.p95"] == policy.sla.response_time["end_to_end"].ms
    assert limits["response_time.memory.p95"] == policy.sla.response_time["memory"].ms


def test_a_toml_file_overrides_by_check_name_and_names_a_bad_key(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('hit_rate = 0.9\n[end_to_end]\np95 = 120\n')
    assert read_thresholds(good) == {"hit_rate": 0.9, "end_to_end.p95": 120.0}
    bad = tmp_path / "bad.toml"
    bad.write_text('"end_to_end.p42" = 1\n')
    with pytest.raises(GateInputError, match="end_to_end.p42"):
        read_thresholds(bad)


def test_checks_compare_in_their_direction_and_skip_unmeasured_ones():
    checks = evaluate({"hit_rate": 0.8, "end_to_end.p95": 100, "error_rate": 0.01, "response_time.redis.p95": 5},
                      {"hit_rate": 0.8, "end_to_end.p95": 101, "error_rate": 0.01, "response_time.redis.p95": None})
    assert [(c.name, c.passed) for c in checks] == [("hit_rate", True), ("end_to_end.p95", False),
                                                    ("error_rate", False)]


def test_histogram_quantile_interpolates_inside_the_bucket():
    buckets = [(1.0, 50.0), (5.0, 90.0), (10.0, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == 1.0
    assert histogram_quantile(0.95, buckets) == pytest.approx(7.5)  # halfway through (5, 10]
    assert histogram_quantile(0.95, [(1.0, 0.0), (float("inf"), 10.0)]) == 1.0  # +Inf: the last bound
    assert histogram_quantile(0.95, [(1.0, 0.0), (float("inf"), 0.0)]) is None


# --- compare ---------------------------------------------------------------------------------

def _gate_json(tmp_path, name: str, rps: float, p95: float, hit_rate: float = 0.8) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"rps": rps, "hit_rate": hit_rate, "latency_ms": {"p50": 2, "p95": p95, "p99": 30}}))
    return str(path)


def test_compare_names_each_regression_beyond_the_allowance(tmp_path):
    base, new = _gate_json(tmp_path, "base.json", 100, 10), _gate_json(tmp_path, "new.json", 80, 12)
    result = runner.invoke(app, ["gate", "compare", base, new, "--max-regression", "10%"])
    assert result.exit_code == 1
    regressions = [line for line in result.output.splitlines() if line.startswith("REGRESSION")]
    assert len(regressions) == 2 and "rps" in regressions[0] and "latency_ms.p95" in regressions[1]


def test_compare_within_the_allowance_passes(tmp_path):
    base, new = _gate_json(tmp_path, "base.json", 100, 10), _gate_json(tmp_path, "new.json", 95, 10.5)
    assert runner.invoke(app, ["gate", "compare", base, new]).exit_code == 0


def test_compare_bad_input_exits_2_naming_it(tmp_path):
    base = _gate_json(tmp_path, "base.json", 100, 10)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"rps": 1, "hit_rate": 1}))
    result = runner.invoke(app, ["gate", "compare", base, str(broken)])
    assert result.exit_code == 2 and "latency_ms.p50" in result.output
    result = runner.invoke(app, ["gate", "compare", base, base, "--max-regression", "ten"])
    assert result.exit_code == 2 and "--max-regression" in result.output


# --- real runs -------------------------------------------------------------------------------

@pytest.fixture
def test_servers(monkeypatch, redis_url, migrated_database_url):
    monkeypatch.setenv("AI_CACHE_REDIS_URL", redis_url)
    monkeypatch.setenv("AI_CACHE_DATABASE_URL", migrated_database_url)
    return redis_url, migrated_database_url


@pytest.fixture(scope="module")
def passing_run(tmp_path_factory, redis_url, migrated_database_url):
    out = tmp_path_factory.mktemp("gate")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AI_CACHE_REDIS_URL", redis_url)
        mp.setenv("AI_CACHE_DATABASE_URL", migrated_database_url)
        result = runner.invoke(app, ["gate", "run", "--profile", "ci", "--duration", "8", "--rate", "40",
                                     "--out", str(out)])
    return result, out


@pytest.mark.integration
def test_a_ci_run_passes_and_writes_the_contract(passing_run):
    result, out = passing_run
    assert result.exit_code == 0, result.output
    gate = json.loads((out / "gate.json").read_text())
    assert CONTRACT_KEYS <= gate.keys() and set(gate["latency_ms"]) == {"p50", "p95", "p99"}
    assert gate["passed"] and gate["profile"] == "ci" and gate["requests"] > 0 and gate["failures"] == 0
    names = {c["name"] for c in gate["checks"]}
    assert {"hit_rate", "end_to_end.p95", "end_to_end.p99", "error_rate", "response_time.memory.p95"} <= names
    assert all({"name", "target", "actual", "passed"} <= c.keys() for c in gate["checks"])
    assert gate["server_statistics"]["totalQueries"] > 0
    assert 0 < gate["server_cpu_ms_per_request"] < 1000  # the server's processes, measured with psutil


@pytest.mark.integration
def test_a_rate_runs_at_constant_throughput_with_its_check(passing_run):
    _, out = passing_run
    gate = json.loads((out / "gate.json").read_text())
    throughput = next(c for c in gate["checks"] if c["name"] == "throughput")
    assert throughput["target"] == pytest.approx(0.95 * 40) and throughput["passed"]
    assert gate["rate"]["requested"] == 40 and 30 < gate["rps"] < 50  # paced, not flat out


@pytest.mark.integration
def test_the_report_has_the_checks_and_a_plot(passing_run):
    _, out = passing_run
    assert "end_to_end.p95" in (out / "report.md").read_text() and (out / "latency.png").stat().st_size > 0
    assert "latency.png" in (out / "report.html").read_text()
    assert "POST /api/ai-cache/query" in (out / "gate_stats.csv").read_text()  # Locust's own tables are kept


@pytest.mark.integration
def test_a_slow_origin_fails_the_latency_checks(test_servers, tmp_path):
    result = runner.invoke(app, ["gate", "run", "--duration", "4", "--users", "4", "--warm", "0",
                                 "--origin-ms", "400", "600", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED")]
    assert any(line.startswith("FAILED end_to_end.p95") for line in failed)
    assert "target" in result.output.strip().splitlines()[-1]
    gate = json.loads((tmp_path / "out" / "gate.json").read_text())
    assert gate["origin_ms"] == [400, 600] and gate["latency_ms"]["p95"] > 250


@pytest.mark.slow
@pytest.mark.integration
def test_an_impossible_threshold_fails_with_the_check_on_the_last_line(test_servers, tmp_path):
    limits = tmp_path / "limits.toml"
    limits.write_text("hit_rate = 1.01\n")
    result = runner.invoke(app, ["gate", "run", "--duration", "4", "--users", "4", "--thresholds", str(limits),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert "hit_rate" in last and "1.01" in last
    assert json.loads((tmp_path / "out" / "gate.json").read_text())["passed"] is False


def test_a_bad_threshold_file_exits_2_naming_the_key(tmp_path):
    limits = tmp_path / "limits.toml"
    limits.write_text("hitrate = 0.5\n")
    result = runner.invoke(app, ["gate", "run", "--thresholds", str(limits)])
    assert result.exit_code == 2 and "hitrate" in result.output


@pytest.mark.integration
def test_a_server_that_cannot_start_is_a_gate_error(test_servers):
    profile = resolve_profile("ci", duration_s=2)
    with pytest.raises(GateError, match="could not be done"):
        run_gate(*test_servers, profile, profile.thresholds, serve_argv=(sys.executable, "-c", "raise SystemExit(3)"))


@pytest.mark.integration
def test_a_server_that_never_starts_exits_2(test_servers, monkeypatch):
    monkeypatch.setenv("AI_CACHE_MAX_ENTRIES", "lots")  # the server refuses to start; the gate process does not read it
    result = runner.invoke(app, ["gate", "run", "--duration", "2"])
    assert result.exit_code == 2 and "could not be done" in result.output


# --- capacity --------------------------------------------------------------------------------

def test_capacity_steps_and_their_bad_options():
    assert step_rates(20, 30, 3) == [20, 50, 80]
    for args, option in (((0, 10, 3), "--start"), ((10, 0, 3), "--step"), ((10, 10, 0), "--steps")):
        with pytest.raises(GateInputError, match=option):
            step_rates(*args)
    result = runner.invoke(app, ["gate", "capacity", "--step", "-5"])
    assert result.exit_code == 2 and "--step" in result.output


def _step(rate: float, passed: bool):
    from wedcache.gate.checks import Check
    from wedcache.gate.measure import LocustStats
    from wedcache.gate.run import GateResult

    stats = LocustStats(100, 0, rate, {"p50": 1.0, "p95": 2.0, "p99": 3.0}, 90, {"HIT-memory": 80, "MISS": 10})
    checks = [Check("end_to_end.p95", "<=", 2.5 if passed else 1.0, 2.0)]
    return GateResult(resolve_profile("ci", rate=rate), stats, {}, checks, {}, 0)


def test_capacity_is_the_last_passing_step_and_names_what_limited_the_next():
    from wedcache.gate.capacity import CapacityResult, describe

    result = CapacityResult(resolve_profile("ci"), [_step(20, True), _step(40, True), _step(60, False)])
    assert result.capacity_rps == 40 and result.limited_by == ["end_to_end.p95"]
    assert describe(result).startswith("capacity 40 requests/s") and "end_to_end.p95" in describe(result)
    assert CapacityResult(resolve_profile("ci"), [_step(20, False)]).capacity_rps is None


@pytest.mark.integration
def test_a_capacity_run_steps_up_and_writes_its_files(test_servers, tmp_path):
    out, loose = tmp_path / "capacity", tmp_path / "loose.toml"
    # Stepping is what is tested: 5-s steps on a fresh server are too short for the ci profile's
    # hit rate and tier latencies on a busy box, so only throughput (and errors) must hold.
    loose.write_text("hit_rate = 0.0\n[end_to_end]\np95 = 10000\np99 = 10000\n"
                     "[response_time.memory]\np95 = 10000\n[response_time.redis]\np95 = 10000\n"
                     "[response_time.postgres]\np95 = 10000\n")
    result = runner.invoke(app, ["gate", "capacity", "--start", "20", "--step", "20", "--steps", "2",
                                 "--step-duration", "5", "--thresholds", str(loose), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "capacity.json").read_text())
    assert [s["rate"] for s in data["steps"]] == [20, 40] and data["capacity_rps"] == 40
    assert all(s["passed"] and any(c["name"] == "throughput" for c in s["checks"]) for s in data["steps"])
    assert (out / "capacity.png").stat().st_size > 0 and "capacity 40" in (out / "report.md").read_text()
