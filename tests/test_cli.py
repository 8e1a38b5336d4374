"""The ``wedcache`` command: migrate and bench, run as a user would."""
import json

import pytest
from typer.testing import CliRunner

from conftest import scratch_database

from wedcache.bench import BENCH_KEYS
from wedcache.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_migrate_twice_is_a_no_op(services):
    with scratch_database(services.database_url, "wedcache_cli_migrate") as database_url:  # its own: never migrated
        first = runner.invoke(app, ["migrate", "--database-url", database_url])
        second = runner.invoke(app, ["migrate", "--database-url", database_url])
    assert first.exit_code == 0 and "applied 0001" in first.output
    assert second.exit_code == 0 and second.output.strip() == "up to date"


def test_migrate_reports_an_unreachable_database():
    result = runner.invoke(app, ["migrate", "--database-url", "postgresql://postgres@127.0.0.1:1/x?connect_timeout=1"])
    assert result.exit_code == 1 and "migrate failed" in result.output


def test_bench_writes_every_contract_key(services, tmp_path, monkeypatch):
    """A tiny run: the figures' meaning is for ``make bench``; here only their presence and sanity."""
    monkeypatch.setenv("AI_CACHE_REDIS_URL", services.redis_url)
    monkeypatch.setenv("AI_CACHE_DATABASE_URL", services.database_url)
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "--iterations", "100", "--repeats", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert set(BENCH_KEYS) <= set(figures)
    assert all(figures[k] > 0 for k in BENCH_KEYS)
    assert figures["payload_bytes"] > 1000
    assert "L3 PostgreSQL" in result.output and "raw redis-py GET" in result.output
