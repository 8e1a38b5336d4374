"""The fleet (two real ``wedcache serve`` replicas) and its loopback balancer."""
from __future__ import annotations

import socket
import threading

import httpx
import pytest

from wedcache.balancer import Balancer
from wedcache.fleet import fleet
from wedcache.service_bench import HOT_QUERY, QUERY_PATH, bench_key
from wedcache.services import free_port


# --- the balancer alone (plain TCP echo backends) ---------------------------------------------

class _Echo:
    """A TCP server on a free port that answers each line with ``<name>:<line>``."""

    def __init__(self, name: str):
        self.name = name
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            for line in stream:
                stream.write(f"{self.name}:".encode() + line)
                stream.flush()

    def close(self) -> None:
        self.sock.close()


def _ask(port: int, lines: list[str]) -> list[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn, conn.makefile("rwb") as stream:
        answers = []
        for line in lines:
            stream.write(line.encode() + b"\n")
            stream.flush()
            answers.append(stream.readline().decode().strip())
        return answers


@pytest.fixture
def echoes():
    servers = [_Echo("a"), _Echo("b")]
    yield servers
    for server in servers:
        server.close()


def test_connections_alternate_and_each_stays_pinned(echoes):
    with Balancer([e.port for e in echoes]) as balancer:
        first, second = _ask(balancer.port, ["x", "y"]), _ask(balancer.port, ["x", "y"])
    assert first == ["a:x", "a:y"] and second == ["b:x", "b:y"]
    assert balancer.connections == {0: 1, 1: 1}


def test_a_refusing_backend_is_skipped(echoes):
    dead = free_port()
    with Balancer([dead, echoes[1].port]) as balancer:
        answers = [_ask(balancer.port, ["q"])[0] for _ in range(4)]
    assert answers == ["b:q"] * 4


def test_a_backend_marked_down_gets_no_new_connection_until_marked_up(echoes):
    with Balancer([e.port for e in echoes]) as balancer:
        balancer.mark_down(0)
        down = {_ask(balancer.port, ["q"])[0] for _ in range(3)}
        balancer.mark_up(0)
        up = {_ask(balancer.port, ["q"])[0] for _ in range(2)}
    assert down == {"b:q"} and up == {"a:q", "b:q"}


def test_no_backend_accepting_closes_the_connection():
    with Balancer([free_port()]) as balancer:
        with socket.create_connection(("127.0.0.1", balancer.port), timeout=5) as conn:
            assert conn.recv(10) == b""
    assert balancer.refused == 1


def test_an_unknown_backend_index_is_named():
    with pytest.raises(IndexError, match="backend index 3"):
        Balancer([1, 2]).mark_down(3)


# --- the fleet (real replicas) -----------------------------------------------------------------

def _query(url: str, secret: str) -> httpx.Response:
    return httpx.post(url + QUERY_PATH, json=HOT_QUERY, headers={"X-API-Key": secret}, timeout=30.0)


def test_two_replicas_behind_the_balancer_survive_a_killed_replica(redis_url, migrated_database_url):
    _, secret = bench_key(migrated_database_url)
    with fleet(redis_url, migrated_database_url, replicas=2, workers=1) as running:
        assert len(running.replica_urls) == 2 and len(set(running.pids)) == 2
        for url in running.replica_urls:
            assert httpx.get(url + "/healthz", timeout=5).json() == {"status": "ok"}
        for _ in range(4):  # each on a new connection
            assert _query(running.url, secret).status_code == 200
        assert running.balancer.connections == {0: 2, 1: 2}

        running.kill(0)
        with pytest.raises(httpx.ConnectError):
            httpx.get(running.replica_urls[0] + "/healthz", timeout=2)
        answers = [_query(running.url, secret) for _ in range(4)]
        assert [a.status_code for a in answers] == [200] * 4
        assert all(a.headers["X-Cache"].startswith("HIT-") for a in answers)

        running.restart(0)
        assert httpx.get(running.replica_urls[0] + "/healthz", timeout=5).status_code == 200
        before = running.balancer.connections[0]
        assert all(_query(running.url, secret).status_code == 200 for _ in range(2))
        assert running.balancer.connections[0] == before + 1
