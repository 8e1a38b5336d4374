"""``wedcache bench-service``: the summary's arithmetic, and one short real run (slow).

The real run serves the service and the bare app with uvicorn on loopback against the test
servers and loads each with headless Locust for a few seconds; it checks the contract keys
of ``service.json`` and that every measured answer of the service was a cache hit, never a
speed (that is the benchmark's job).
"""
from __future__ import annotations

import json

import pytest

from wedcache.service_bench import SERVICE_BENCH_KEYS, Round, run_service_bench, summarize


def round_of(rps: float, hits_ms: list[float], label: str = "HIT-memory") -> Round:
    return Round(rps=rps, requests=len(hits_ms), failures=0, cpu_warning=False, latencies_ms={label: hits_ms})


def test_throughput_from_saturated_rounds_and_latency_from_light_ones():
    saturated, bare, light = round_of(400.0, [50.0] * 20), round_of(800.0, [30.0] * 20, "none"), \
        round_of(300.0, [float(i) for i in range(1, 21)])
    result = summarize([(saturated, bare, light)] * 3, warmup={})
    assert result["ratio"] == 0.5 and result["service_rps"] == 400.0 and result["bare_rps"] == 800.0
    assert result["hit_p50_ms"] == 11.0 and result["hit_p95_ms"] == 19.0  # nearest rank over 1..20 ms
    assert result["hit_p95_ms_saturated"] == 50.0
    assert result["x_cache"] == {"HIT-memory": 120}
    assert set(SERVICE_BENCH_KEYS) <= result.keys()


def test_a_round_without_hits_is_an_error_not_a_zero():
    with pytest.raises(RuntimeError, match="no hit"):
        summarize([(round_of(1.0, [5.0], "MISS"), round_of(1.0, [5.0], "none"), round_of(1.0, [5.0], "MISS"))], {})


@pytest.mark.slow
@pytest.mark.integration
def test_a_short_real_run_writes_the_contract(redis_url, migrated_database_url, tmp_path):
    out = tmp_path / "service.json"
    result = run_service_bench(redis_url, migrated_database_url, workers=1, users=4, seconds=2, rounds=1,
                               latency_users=1, out=out)
    written = json.loads(out.read_text())
    assert set(SERVICE_BENCH_KEYS) <= written.keys() and written["ratio"] == result["ratio"]
    assert result["failures"] == {"service": 0, "bare": 0}
    assert set(result["x_cache"]) == {"HIT-memory"}  # warmed: every measured answer is a memory hit


def test_served_connections_get_tcp_nodelay_even_on_a_protocol_0_socket():
    """uvicorn's --workers binds ``socket.socket(AF_INET)`` (proto 0): asyncio then leaves
    Nagle on; the service's protocol turns it off on each connection itself."""
    import socket
    from types import SimpleNamespace

    from wedcache.service.server import no_delay

    listener = socket.socket(socket.AF_INET)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    served, _ = listener.accept()
    try:
        assert served.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        no_delay(SimpleNamespace(get_extra_info=lambda name: served if name == "socket" else None))
        assert served.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        for s in (served, client, listener):
            s.close()
