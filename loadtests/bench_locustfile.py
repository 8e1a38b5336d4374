"""Locust scenario of ``wedcache bench-service``: one hot query, as fast as the server answers.

Each :class:`HotQueryUser` posts :data:`wedcache.service_bench.HOT_QUERY` with the API key
from ``WEDCACHE_BENCH_API_KEY`` and no wait, so after the first request every answer of the
real service is a memory hit (the bare app ignores the key). Every answer's latency (ms,
Locust's clock) is kept by its ``X-Cache`` header (``none`` without one, ``error`` for a
failure); at exit, Locust's totals and those latencies go to the JSON file named by
``WEDCACHE_BENCH_SAMPLES``. Run by :func:`wedcache.service_bench.locust_round`, or by hand::

    WEDCACHE_BENCH_API_KEY=wc_... locust -f loadtests/bench_locustfile.py --headless \\
        --host http://127.0.0.1:3000 --users 32 --spawn-rate 320 --run-time 10s
"""
from __future__ import annotations

import json
import os
from collections import defaultdict

from locust import FastHttpUser, constant, events, task

from wedcache.service_bench import API_KEY_ENV, HOT_QUERY, QUERY_PATH, SAMPLES_ENV

BODY = json.dumps(HOT_QUERY).encode()
HEADERS = {"Content-Type": "application/json", "X-API-Key": os.environ.get(API_KEY_ENV, "")}
latencies_ms: dict[str, list[float]] = defaultdict(list)


class HotQueryUser(FastHttpUser):
    """Posts the hot query back to back."""

    wait_time = constant(0)

    @task
    def hot_query(self) -> None:
        self.client.post(QUERY_PATH, data=BODY, headers=HEADERS, name="hot query")


@events.request.add_listener
def record(response_time: float, response, exception, **_) -> None:
    label = "error" if exception is not None else (response.headers.get("X-Cache") or "none")
    latencies_ms[label].append(response_time)


@events.quitting.add_listener
def write_samples(environment, **_) -> None:
    path = os.environ.get(SAMPLES_ENV)
    if not path:
        return
    total = environment.stats.total
    samples = {"rps": total.total_rps, "requests": total.num_requests, "failures": total.num_failures,
               "cpu_warning": bool(environment.runner and environment.runner.cpu_warning_emitted),
               "latencies_ms": latencies_ms}
    with open(path, "w") as out:
        json.dump(samples, out)
