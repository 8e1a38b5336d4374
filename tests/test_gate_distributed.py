"""``wedcache gate run --distributed N``: a Locust master and N workers against a fleet of replicas.

Unit tests cover the merging of the replicas' histograms, the master's and workers' command
lines, the workers' own user streams and the bounded process handling; the real run serves
two replicas behind the fleet's balancer, loads them with two Locust workers for a few
seconds and reads the contract back from ``gate.json`` and Locust's CSVs.
"""
from __future__ import annotations

import csv
import json
import sys

import psutil
import pytest
from typer.testing import CliRunner

from wedcache.cli import app
from wedcache.gate import GateError
from wedcache.gate import run as gate_run
from wedcache.gate.checks import histogram_quantile
from wedcache.gate.measure import answered, merge_buckets, read_worker_requests
from wedcache.gate.run import locust_command, resolve_profile, run_processes, worker_command, workload

runner = CliRunner()
INF = float("inf")
LOOSE = ("hit_rate = 0.0\n[end_to_end]\np95 = 10000\np99 = 10000\n"
         "[response_time.memory]\np95 = 10000\n[response_time.redis]\np95 = 10000\n"
         "[response_time.postgres]\np95 = 10000\n")
"""What the short run must hold: the ci error rate (latency and hit rate of a few seconds on a busy box
are not what it tests)."""


# --- merging the replicas' figures -----------------------------------------------------------

def test_merged_buckets_sum_each_tier_and_bound_over_the_replicas():
    one = {"memory": {1.0: 8.0, 5.0: 10.0, INF: 10.0}, "origin": {100.0: 2.0, INF: 3.0}}
    two = {"memory": {1.0: 2.0, 5.0: 10.0, INF: 10.0}, "redis": {5.0: 4.0, INF: 4.0}}
    merged = merge_buckets([one, two])
    assert merged == {"memory": {1.0: 10.0, 5.0: 20.0, INF: 20.0}, "origin": {100.0: 2.0, INF: 3.0},
                      "redis": {5.0: 4.0, INF: 4.0}}
    assert [answered(b) for b in (one, two)] == [13, 14] and answered(merged) == 27
    assert merge_buckets([one]) == one and merge_buckets([]) == {}


def test_the_merged_p95_is_the_quantile_of_all_observations_not_a_mean_of_p95s():
    fast = {"memory": {1.0: 100.0, 10.0: 100.0, INF: 100.0}}
    slow = {"memory": {1.0: 0.0, 10.0: 100.0, INF: 100.0}}
    merged = merge_buckets([fast, slow])["memory"]
    assert histogram_quantile(0.95, list(merged.items())) == pytest.approx(1.0 + 9.0 * 0.9)
    assert gate_run.tier_p95({"memory": merged}) == {"memory": pytest.approx(9.1)}


def test_worker_requests_are_read_in_worker_order_and_a_missing_file_is_named(tmp_path):
    path = tmp_path / "gate_workers.csv"
    path.write_text("Worker,Request Count,Failure Count\n1,30,0\n0,25,1\n")
    assert read_worker_requests(path) == [25, 30]
    with pytest.raises(GateError, match="per-worker CSV"):
        read_worker_requests(tmp_path / "none_workers.csv")


# --- Locust's processes ----------------------------------------------------------------------

def test_the_master_expects_its_workers_and_the_workers_get_the_workload_arguments(tmp_path):
    profile = resolve_profile("ci", locust_workers=3, replicas=2, distinct=500, rate=30.0)
    master = locust_command("http://127.0.0.1:1", profile, tmp_path / "gate", master_port=5599)
    assert "--master" in master and master[master.index("--expect-workers") + 1] == "3"
    assert master[master.index("--master-bind-port") + 1] == "5599" and "--csv" in master
    worker = worker_command(profile, 5599)
    assert "--worker" in worker and worker[worker.index("--master-port") + 1] == "5599"
    for flag, value in (("--distinct", "500"), ("--users", "8"), ("--target-rps", "30.0")):
        assert worker[worker.index(flag) + 1] == value == master[master.index(flag) + 1]
    assert "--master" not in locust_command("http://127.0.0.1:1", profile, tmp_path / "gate")


def test_each_worker_draws_its_own_user_stream_and_stream_0_is_the_warm_ups():
    traffic, again = workload(resolve_profile("ci")), workload(resolve_profile("ci"))
    draws = {stream: [traffic.pick(traffic.user_rng(stream)) for _ in range(20)] for stream in (0, 1, 2)}
    assert draws[1] != draws[2] and draws[0] != draws[1]
    assert [again.pick(again.user_rng(0)) for _ in range(20)] == draws[0]  # runs repeat


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _spy(monkeypatch) -> list:
    started = []
    popen = gate_run.subprocess.Popen

    def recording(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(gate_run.subprocess, "Popen", recording)
    return started


def test_a_failing_process_is_a_gate_error_and_every_process_is_killed(tmp_path, monkeypatch):
    started = _spy(monkeypatch)
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('no master here'); sys.exit(3)"]
    sleeping = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(GateError, match=r"failed \(3\)[\s\S]*no master here"):
        run_processes([failing, sleeping], {}, tmp_path, timeout_s=30)
    assert len(started) == 2 and not any(_alive(p.pid) for p in started)


def test_processes_that_outlast_the_timeout_are_killed(tmp_path, monkeypatch):
    started = _spy(monkeypatch)
    sleeping = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(GateError, match="did not stop within 0.5 s"):
        run_processes([sleeping, sleeping], {}, tmp_path, timeout_s=0.5)
    assert not any(_alive(p.pid) for p in started)


def test_a_master_whose_workers_never_come_is_a_gate_error(tmp_path, monkeypatch):
    monkeypatch.setattr(gate_run, "WORKERS_CONNECT_S", 2)
    monkeypatch.setattr(gate_run, "worker_command", lambda profile, port: [sys.executable, "-c", "pass"])
    profile = resolve_profile("ci", locust_workers=2, duration_s=2)
    with pytest.raises(GateError, match="Locust failed"):
        gate_run.run_distributed("http://127.0.0.1:9", profile, tmp_path / "gate", gate_run.locust_env("secret"))


# --- a real distributed run ------------------------------------------------------------------

def _aggregated(csv_path) -> int:
    rows = list(csv.DictReader(csv_path.open(newline="")))
    return int(next(r for r in rows if r["Name"] == "Aggregated")["Request Count"])


def _run(tmp_path, monkeypatch, redis_url, database_url, *args: str):
    monkeypatch.setenv("AI_CACHE_REDIS_URL", redis_url)
    monkeypatch.setenv("AI_CACHE_DATABASE_URL", database_url)
    out = tmp_path / "out"
    result = runner.invoke(app, ["gate", "run", "--distributed", "2", "--replicas", "2", "--out", str(out), *args])
    return result, out


@pytest.mark.integration
def test_a_short_distributed_run_spreads_over_both_replicas_and_adds_up(tmp_path, monkeypatch, redis_url,
                                                                      migrated_database_url):
    loose = tmp_path / "loose.toml"
    loose.write_text(LOOSE)
    result, out = _run(tmp_path, monkeypatch, redis_url, migrated_database_url, "--duration", "6", "--rate", "30",
                       "--users", "6", "--workers", "1", "--warm", "30", "--thresholds", str(loose))
    assert result.exit_code == 0, result.output
    assert "queries per replica" in result.output
    gate = json.loads((out / "gate.json").read_text())
    assert gate["passed"] and gate["failures"] == 0 and gate["requests"] > 0
    distributed = gate["distributed"]
    assert distributed["locust_workers"] == 2 and distributed["replicas"] == 2
    assert len(distributed["replica_queries"]) == 2 and all(n > 0 for n in distributed["replica_queries"])
    assert len(distributed["worker_requests"]) == 2 and all(n > 0 for n in distributed["worker_requests"])
    # what the workers reported is what the master's CSV counts, entry for entry
    assert sum(distributed["worker_requests"]) == _aggregated(out / "gate_stats.csv")
    assert (out / "gate_workers.csv").exists()
    # the replicas answered the queries the users sent (a request cut off at the stop is the server's only)
    queries = gate["x_cache"]
    assert sum(queries.values()) <= sum(distributed["replica_queries"]) <= sum(queries.values()) * 1.1 + 6
    assert gate["server_statistics"]["totalQueries"] > 0 and gate["server_cpu_ms_per_request"] > 0
    assert set(gate["tier_p95_ms"]) <= {"memory", "redis", "postgres", "origin"}


@pytest.mark.slow
@pytest.mark.integration
def test_a_longer_distributed_run_passes_the_ci_profile(tmp_path, monkeypatch, redis_url, migrated_database_url):
    result, out = _run(tmp_path, monkeypatch, redis_url, migrated_database_url, "--duration", "20",
                       "--users", "20", "--rate", "80")
    assert result.exit_code == 0, result.output
    gate = json.loads((out / "gate.json").read_text())
    assert gate["profile"] == "ci" and gate["distributed"]["locust_workers"] == 2
    assert min(gate["distributed"]["replica_queries"]) > 0.25 * sum(gate["distributed"]["replica_queries"])
