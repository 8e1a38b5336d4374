"""Real servers: resolution order, throwaway servers that stop and come back, the CLI."""
from __future__ import annotations

import json

import psycopg
import pytest
import redis
from typer.testing import CliRunner

from wedcache import services as svc
from wedcache.cli import app

pytestmark = pytest.mark.integration


def test_services_answer(services):
    """Whatever the source, both URLs answer."""
    assert svc.redis_answers(services.redis_url)
    assert svc.postgres_answers(services.database_url)
    assert {services.redis_source, services.database_source} <= {"env", "default-port", "local"}


def test_session_database_is_its_own(database_url, services):
    """Tests get a database of their own, not the server's default one."""
    with psycopg.connect(database_url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
    assert name.startswith("wedcache_test_") and database_url != services.database_url


def test_env_urls_that_do_not_answer_are_passed_over(state_dir):
    """A set but silent AI_CACHE_* URL falls through to the next candidate."""
    dead = svc.free_port()
    env = {svc.REDIS_ENV: f"redis://127.0.0.1:{dead}/0",
           svc.DATABASE_ENV: f"postgresql://postgres@127.0.0.1:{dead}/postgres"}
    found = svc.ensure_services(state_dir, env=env)
    assert found.redis_source != "env" and found.database_source != "env"
    assert svc.redis_answers(found.redis_url) and svc.postgres_answers(found.database_url)


def test_env_urls_that_answer_are_used(services, state_dir):
    env = {svc.REDIS_ENV: services.redis_url, svc.DATABASE_ENV: services.database_url}
    found = svc.ensure_services(state_dir, env=env)
    assert (found.redis_source, found.database_source) == ("env", "env")
    assert (found.redis_url, found.database_url) == (services.redis_url, services.database_url)


def test_local_redis_comes_back_on_the_same_port(local_redis):
    """A stopped server refuses clients; restarted, the same client works again."""
    server = local_redis()
    client = redis.Redis.from_url(server.url, socket_timeout=1)
    client.set("k", "v")
    port = server.port
    server.stop()
    assert not server.is_running() and not svc.redis_answers(server.url)
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    server.start()
    assert server.port == port and client.ping()
    assert client.get("k") is None  # throwaway: nothing persists


def test_local_postgres_comes_back_on_the_same_port(local_postgres):
    """Data survives a stop and start; open connections break, new ones work."""
    server = local_postgres()
    conn = psycopg.connect(server.url, autocommit=True)
    conn.execute("CREATE TABLE answers (id int)")
    port = server.port
    server.stop()
    assert not server.is_running() and not svc.postgres_answers(server.url)
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    server.start()
    assert server.port == port
    with psycopg.connect(server.url) as again:
        assert again.execute("SELECT count(*) FROM answers").fetchone() == (0,)


def test_local_postgres_has_pgvector(local_postgres):
    with psycopg.connect(local_postgres().url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        assert conn.execute("SELECT '[1,2]'::vector <-> '[1,2]'::vector").fetchone() == (0.0,)


def test_cli_up_prints_the_export_line(services, state_dir):
    result = CliRunner().invoke(app, ["services", "up"], env={svc.STATE_DIR_ENV: str(state_dir)})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [svc.export_line(services)]
    assert result.stdout.startswith(f"export {svc.REDIS_ENV}=")


def _local_pids(state_dir) -> dict:
    report = svc.services_status(state_dir)
    return {kind: row["pid"] for kind in ("redis", "postgres") for row in report[kind]
            if row["source"] == "local" and row["answers"]}


def test_up_reuses_then_status_and_down_stop_only_ours(tmp_path, monkeypatch):
    """Throwaway servers are reused by a second run, reported by status, stopped by down."""
    for name in (svc.REDIS_ENV, svc.DATABASE_ENV):
        monkeypatch.delenv(name, raising=False)
    first = svc.ensure_services(tmp_path)
    pids = _local_pids(tmp_path)
    assert svc.ensure_services(tmp_path) == first and _local_pids(tmp_path) == pids
    assert len(pids) == [first.redis_source, first.database_source].count("local")
    runner = CliRunner()
    down = runner.invoke(app, ["services", "down", "--state-dir", str(tmp_path)])
    assert down.exit_code == 0 and down.stdout.count("stopped ") == len(pids)
    status = runner.invoke(app, ["services", "status", "--json", "--state-dir", str(tmp_path)])
    assert status.exit_code == 0 and json.loads(status.stdout)["state_dir"] == str(tmp_path.resolve())
    assert _local_pids(tmp_path) == {} and svc.stop_services(tmp_path) == []
