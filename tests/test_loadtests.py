"""The Locust load tests: shapes follow the policy, bodies validate, a real headless run works.

The locustfile and shapes are imported in-process with ``LOCUST_SKIP_MONKEY_PATCH`` set only
for the import, so gevent does not patch the test session's sockets and threads; the real run
is a ``python -m locust`` subprocess against ``python -m wedcache serve`` on the test servers.
"""
from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path
from types import ModuleType

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from simulations.profiles import seasonal_multiplier, weekly_multiplier
from wedcache.apikeys import ApiKeyStore
from wedcache.config import load_settings
from wedcache.service import create_app
from wedcache.service_bench import server_env
from wedcache.services import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_SECONDS = 5


def _import_quietly(name: str) -> ModuleType:
    """Import ``name`` without Locust's gevent monkey patching (restoring the environment after)."""
    previous = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
    os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
    try:
        return importlib.import_module(name)
    finally:
        if previous is None:
            del os.environ["LOCUST_SKIP_MONKEY_PATCH"]
        else:
            os.environ["LOCUST_SKIP_MONKEY_PATCH"] = previous


shapes = _import_quietly("loadtests.shapes")
locustfile = _import_quietly("loadtests.locustfile")


def _day(d: date) -> int:
    return (d - shapes.YEAR_START).days


# --- shapes --------------------------------------------------------------------------------

def test_seasonal_users_follow_the_policy(policy):
    """A summer Saturday has more users than a winter Tuesday, by the policy's multipliers."""
    saturday, tuesday = date(2026, 6, 6), date(2026, 1, 13)
    assert saturday.weekday() == 5 and tuesday.weekday() == 1
    summer = shapes.seasonal_users(_day(saturday), 1000, policy)
    winter = shapes.seasonal_users(_day(tuesday), 1000, policy)
    assert summer > winter
    noon = datetime(2026, 6, 6, 12, tzinfo=timezone.utc)
    assert summer == round(1000 * seasonal_multiplier(noon, policy) * weekly_multiplier(noon))
    assert policy.seasons["summer"].traffic_multiplier > policy.seasons["winter"].traffic_multiplier


def test_peak_saturday_peaks_in_the_evening(policy):
    """The compressed Saturday follows the daily profile: the evening beats the small hours."""
    evening, night = (shapes.peak_saturday_users(h, 100, policy) for h in (20.0, 3.0))
    assert evening > night >= 1
    assert shapes.peak_saturday_users(24.0, 100, policy) is None


def test_step_users_increments_and_stops():
    counts = [shapes.step_users(t, 10, 5, 30.0, 3) for t in (0, 29.9, 30, 60, 89.9)]
    assert counts == [10, 10, 15, 20, 20]
    assert shapes.step_users(90, 10, 5, 30.0, 3) is None


@pytest.mark.parametrize("name", sorted(shapes.SHAPES))
def test_every_shape_stops_by_itself(name):
    """Each shape ticks users at start and ``None`` after its bounded run (default options)."""
    shape = shapes.shape_class(name)()
    shape.reset_time()
    users, rate = shape.tick()
    assert users >= 1 and rate >= 1
    shape.start_time = time.perf_counter() - 366 * 86_400  # far past any shape's end
    assert shape.tick() is None


def test_target_rps_paces_each_user_at_its_share():
    from types import SimpleNamespace

    assert locustfile.user_pacing(SimpleNamespace(target_rps=0.0, num_users=10)) is None
    assert locustfile.user_pacing(SimpleNamespace(target_rps=100.0, num_users=None)) is None  # a shape's run
    pace = locustfile.user_pacing(SimpleNamespace(target_rps=100.0, num_users=10))
    user = SimpleNamespace(_cp_last_run=time.perf_counter(), _cp_last_wait_time=0)  # as User.__init__ sets
    assert 0.09 < pace(user) <= 0.1  # 10 requests/s each: 0.1 s from one task's start to the next


def test_shape_selection():
    assert locustfile.requested_shape(["locust", "--shape", "step"], {}) == "step"
    assert locustfile.requested_shape(["locust", "--shape=seasonal"], {"WEDCACHE_LOAD_SHAPE": "step"}) == "seasonal"
    assert locustfile.requested_shape(["locust"], {"WEDCACHE_LOAD_SHAPE": "peak-saturday"}) == "peak-saturday"
    assert locustfile.requested_shape(["locust"], {}) is None
    assert shapes.shape_class(None) is None and shapes.shape_class("none") is None
    with pytest.raises(ValueError, match="unknown load shape"):
        shapes.shape_class("yearly")


def test_credentials_need_a_key_off_loopback():
    assert locustfile.is_loopback("http://127.0.0.1:3000") and locustfile.is_loopback("http://localhost")
    assert locustfile.is_loopback("http://[::1]:8080") and not locustfile.is_loopback("https://api.example.com")
    assert locustfile.resolve_api_key("https://api.example.com", {"WEDCACHE_API_KEY": "wc_x"}) == "wc_x"
    with pytest.raises(ValueError, match="WEDCACHE_API_KEY"):
        locustfile.resolve_api_key("https://api.example.com", {})


# --- bodies against the service --------------------------------------------------------------

@pytest.fixture(scope="module")
def secret(migrated_database_url) -> str:
    return ApiKeyStore(migrated_database_url).create(f"locust-test-{uuid.uuid4().hex[:8]}", "enterprise")[1]


def test_user_bodies_validate_against_the_service(redis_url, migrated_database_url, secret):
    """Bodies from the users' own generator are accepted by every endpoint they hit."""
    traffic = locustfile.Traffic(distinct=500, seed=3)
    rng = traffic.user_rng()
    settings = load_settings(redis_url=redis_url, database_url=migrated_database_url,
                             origin_latency_median_ms=0, origin_latency_p95_ms=0)
    headers = {"X-API-Key": secret}
    with TestClient(create_app(settings)) as client:
        for _ in range(5):
            answer = client.post(locustfile.QUERY_PATH, json=traffic.query_body(rng), headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Cache"] in locustfile.CACHE_LABELS
        for _ in range(4):
            body = traffic.invalidate_body(rng)
            answer = client.request("DELETE", locustfile.INVALIDATE_PATH, json=body, headers=headers)
            assert answer.status_code == 200, (body, answer.text)
        for path in (locustfile.STATISTICS_PATH, locustfile.SCALING_PATH):
            assert client.get(path, headers=headers).status_code == 200


def test_traffic_draws_by_popularity():
    traffic = locustfile.Traffic(distinct=1000, seed=1)
    rng = traffic.user_rng()
    ids = np.array([traffic.pick(rng) for _ in range(2000)])
    assert np.mean(ids < 10) > 0.2  # Zipf: the ten most popular queries get a large share


# --- a real headless run ---------------------------------------------------------------------

def _wait_healthy(url: str, server: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, f"wedcache serve exited with {server.returncode}"
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"wedcache serve did not answer /healthz on {url} within {seconds:.0f} s")


def _stop(server: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(server.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    server.wait(15)


def _stats(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open() as rows:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(rows)}


def test_headless_run_against_a_served_app(redis_url, migrated_database_url, secret, tmp_path):
    """Locust runs the users against ``wedcache serve``: queries succeed, CACHE rows per tier."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in server_env(redis_url, migrated_database_url).items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    server = subprocess.Popen([sys.executable, "-m", "wedcache", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1", "--log-level", "warning"], env=env, cwd=REPO_ROOT,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        _wait_healthy(url, server)
        command = [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless", "-u", "4", "-r", "4",
                   "-t", f"{RUN_SECONDS}s", "--host", url, "--csv", str(tmp_path / "run"), "--only-summary",
                   "--think-time", "0", "0.05", "--distinct", "200", "--loglevel", "WARNING"]
        done = subprocess.run(command, env={**env, "WEDCACHE_API_KEY": secret}, cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=RUN_SECONDS + 60)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        _stop(server)
    stats = _stats(tmp_path / "run_stats.csv")
    query = stats[("POST", "POST /api/ai-cache/query")]
    assert int(query["Request Count"]) > 0 and query["Failure Count"] == "0"
    assert ("CACHE", "MISS") in stats
    assert any(kind == "CACHE" and name.startswith("HIT-") for kind, name in stats), sorted(stats)
