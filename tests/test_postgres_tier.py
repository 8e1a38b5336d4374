"""The PostgreSQL tier against a real server: round trips, upserts, invalidation, access counts, outages."""
from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from wedcache.entry import CacheEntry, Selector
from wedcache.errors import TierUnavailable
from wedcache.tiers import tier_from_url
from wedcache.tiers.postgres import PostgresTier

pytestmark = pytest.mark.integration


@pytest.fixture
def tier(migrated_database_url, clock):
    tier = PostgresTier(migrated_database_url, clock=clock, flush_interval=3600)
    yield tier
    tier.close()


def make_entry(clock, org_id, key=None, ttl=3600.0, **fields) -> CacheEntry:
    now = clock.now()
    return CacheEntry(key or f"ai:{{{org_id}}}:general:{uuid.uuid4().hex}", fields.pop("value", {"answer": "ok"}),
                      now, now + ttl, org_id, **fields)


def row(url: str, key: str) -> tuple | None:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT access_count, last_accessed_at, ttl_seconds, vendor_type::text "
                            "FROM ai_cache_entries WHERE cache_key = %s", (key,)).fetchone()


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def test_tier_is_built_from_postgresql_urls(migrated_database_url):
    tier = tier_from_url(migrated_database_url)
    try:
        assert isinstance(tier, PostgresTier) and tier.name == "postgres"
    finally:
        tier.close()


def test_set_then_get_preserves_every_field(tier, clock, org_id, migrated_database_url):
    entry = make_entry(clock, org_id, value={"answer": "Barn venues in Napa", "items": [1, 2.5, None, "é"]},
                       cache_type="venue_search", query="barn venues in napa", wedding_id=str(uuid.uuid4()),
                       market_tier="tier_1", vendor_types=("venue", "florist"),
                       context={"location": "Napa", "guest_count": 120, "vendor_types": ["venue", "florist"]})
    tier.set(entry)
    assert tier.get(entry.key) == entry
    assert row(migrated_database_url, entry.key)[2:] == (3600, "venue")


def test_defaults_round_trip(tier, clock, org_id):
    entry = make_entry(clock, org_id, value=None)
    tier.set(entry)
    assert tier.get(entry.key) == entry


def test_times_are_kept_to_the_microsecond(tier, clock, org_id):
    entry = make_entry(clock, org_id)
    entry.created_at += 0.1234564
    tier.set(entry)
    assert tier.get(entry.key).created_at == pytest.approx(entry.created_at, abs=1e-6)


def test_missing_key_is_none(tier):
    assert tier.get("ai:{nobody}:general:missing") is None


def test_set_replaces_the_entry_under_its_key(tier, clock, org_id):
    first = make_entry(clock, org_id, market_tier="tier_1", vendor_types=("venue",))
    second = make_entry(clock, org_id, key=first.key, value={"answer": "new"}, ttl=60, cache_type="budget_estimate",
                        query="new question", wedding_id=str(uuid.uuid4()), vendor_types=("baker",))
    tier.set(first)
    tier.set(second)
    assert tier.get(first.key) == second
    assert tier.count(org_id) == 1


def test_delete_reports_whether_something_was_removed(tier, clock, org_id):
    entry = make_entry(clock, org_id)
    tier.set(entry)
    assert tier.delete(entry.key) is True
    assert tier.get(entry.key) is None
    assert tier.delete(entry.key) is False


def test_an_entry_is_stored_again_after_its_organization_row_was_deleted(tier, clock, org_id, migrated_database_url):
    entry = make_entry(clock, org_id, wedding_id=str(uuid.uuid4()))
    tier.set(entry)
    with psycopg.connect(migrated_database_url) as conn:
        conn.execute("DELETE FROM ai_cache_entries WHERE organization_id = %s", (org_id,))
        conn.execute("DELETE FROM weddings WHERE organization_id = %s", (org_id,))
        conn.execute("DELETE FROM organizations WHERE id = %s", (org_id,))
    tier.set(entry)
    assert tier.get(entry.key) == entry


# -- invalidation ---------------------------------------------------------------------------
@pytest.fixture
def stored(tier, clock, org_id):
    """Entries of two organizations, tagged so each selector field picks a different subset."""
    other, w1, w2, w3, token = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), \
        uuid.uuid4().hex
    specs = [
        (org_id, w1, "venue_search", "tier_1", ("venue", "florist"), "barn venue in napa"),
        (org_id, w1, "vendor_recommendation", "tier_2", ("florist",), "florist in napa"),
        (org_id, w2, "budget_estimate", "tier_3", ("caterer", "baker"), "barn 50% off deals"),
        (org_id, None, "general", "tier_1", (), "barn 500 off deals"),
        (org_id, w2, "venue_search", "tier_3", ("photographer",), "rustic a_b decor"),
        (org_id, None, "chat_response", "tier_2", ("venue",), "rustic axb decor"),
        (org_id, w1, "content_generation", "tier_1", ("officiant",), "carn\\val night"),
        (other, None, "venue_search", "tier_1", ("venue", "florist"), "barn venue in napa"),
        (other, w3, "budget_estimate", "tier_2", ("baker",), "carn thing"),
    ]
    entries = [make_entry(clock, org, wedding_id=wedding, cache_type=ctype, market_tier=mtier, vendor_types=vendors,
                          query=f"{query} #{token}") for org, wedding, ctype, mtier, vendors, query in specs]
    for entry in entries:
        tier.set(entry)
    return {"entries": entries, "org": org_id, "other": other, "w1": w1, "w2": w2, "token": token}


SELECTORS = {
    "organization": lambda s: {},
    "wedding": lambda s: {"scope": "wedding", "wedding_id": s["w1"]},
    "vendor types overlap": lambda s: {"vendor_types": ["florist", "baker"]},
    "market tiers": lambda s: {"market_tiers": ["tier_1", "tier_2"]},
    "cache types": lambda s: {"cache_types": ["venue_search", "general"]},
    "patterns": lambda s: {"patterns": ["barn venue*", "?lorist in *"]},
    "pattern with % and _": lambda s: {"patterns": ["*50% off*", "*a_b*"]},
    "pattern with a backslash": lambda s: {"patterns": ["carn\\val*"]},
    "pattern with a [set]": lambda s: {"patterns": ["[bc]arn *", "rustic a[!_]b*"]},
    "fields combined": lambda s: {"vendor_types": ["venue", "baker"], "market_tiers": ["tier_1", "tier_3"],
                                  "cache_types": ["venue_search", "budget_estimate"]},
    "global pattern": lambda s: {"scope": "global", "org_id": None, "patterns": [f"barn venue* #{s['token']}"]},
    "global vendor types and pattern": lambda s: {"scope": "global", "org_id": None, "vendor_types": ["baker"],
                                                  "patterns": [f"* #{s['token']}"]},
}


@pytest.mark.parametrize("name", sorted(SELECTORS))
def test_invalidate_removes_exactly_what_the_selector_matches(tier, stored, name):
    selector = Selector.build(**{"org_id": stored["org"], **SELECTORS[name](stored)})
    expected = {e.key for e in stored["entries"] if selector.matches(e)}
    assert 0 < len(expected) < len(stored["entries"])
    assert tier.invalidate(selector) == len(expected)
    remaining = {e.key for e in stored["entries"] if tier.get(e.key) is not None}
    assert remaining == {e.key for e in stored["entries"]} - expected


def test_invalidate_with_an_empty_set_pattern_removes_nothing(tier, stored):
    assert tier.invalidate(Selector.build(org_id=stored["org"], patterns=["[z-a]*"])) == 0
    assert tier.count(stored["org"]) == 7


def test_global_invalidation_spans_every_organization(tier, stored):
    assert tier.invalidate(Selector.build(scope="global")) >= len(stored["entries"])
    assert tier.count() == 0


# -- access counts, expiry, stats ---------------------------------------------------------------
def test_hits_are_counted_in_memory_and_flushed_in_one_batch(tier, clock, org_id, migrated_database_url):
    first, second = make_entry(clock, org_id), make_entry(clock, org_id)
    tier.set(first)
    tier.set(second)
    for _ in range(3):
        tier.get(first.key)
    clock.advance(90)
    tier.get(second.key)
    assert row(migrated_database_url, first.key)[0] == 0  # no UPDATE per read
    assert tier.flush_access_counts() == 2
    assert row(migrated_database_url, first.key)[:2] == (3, utc(clock.now() - 90))
    assert row(migrated_database_url, second.key)[:2] == (1, utc(clock.now()))
    assert tier.flush_access_counts() == 0


def test_counts_add_up_across_flushes_and_close_flushes(migrated_database_url, clock, org_id):
    tier = PostgresTier(migrated_database_url, clock=clock, flush_interval=3600)
    entry = make_entry(clock, org_id)
    tier.set(entry)
    tier.get(entry.key)
    tier.flush_access_counts()
    clock.advance(5)
    tier.get(entry.key)
    tier.close()
    assert row(migrated_database_url, entry.key)[:2] == (2, utc(clock.now()))


def test_the_background_thread_flushes_counts(migrated_database_url, clock, org_id):
    tier = PostgresTier(migrated_database_url, clock=clock, flush_interval=0.05)
    try:
        entry = make_entry(clock, org_id)
        tier.set(entry)
        tier.get(entry.key)
        deadline = time.monotonic() + 10
        while row(migrated_database_url, entry.key)[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert row(migrated_database_url, entry.key)[0] == 1
    finally:
        tier.close()


def test_expired_entries_are_returned_until_purged(tier, clock, org_id):
    expired, fresh = make_entry(clock, org_id, ttl=60), make_entry(clock, org_id, ttl=3600)
    tier.set(expired)
    tier.set(fresh)
    clock.advance(120)
    assert tier.get(expired.key) == expired  # freshness is the caller's decision
    assert tier.purge_expired(clock.now()) >= 1
    assert tier.get(expired.key) is None
    assert tier.get(fresh.key) == fresh


def test_stats_count_entries_and_bytes(tier, clock, org_id):
    tier.set(make_entry(clock, org_id))
    stats = tier.stats()
    assert stats["entries"] >= 1 and stats["bytes"] > 0


# -- failures --------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_a_down_server_raises_tier_unavailable_without_hanging(clock, org_id):
    started = time.monotonic()
    tier = PostgresTier("postgresql://postgres@127.0.0.1:1/postgres", timeout_ms=100, clock=clock)
    try:
        with pytest.raises(TierUnavailable):
            tier.get("ai:{x}:general:k")
        with pytest.raises(TierUnavailable):
            tier.set(make_entry(clock, org_id))
        with pytest.raises(TierUnavailable):
            tier.invalidate(Selector.build(org_id=org_id))
    finally:
        tier.close()
    assert time.monotonic() - started < 10  # the pool's own 30 s checkout timeout is not used


def test_a_statement_over_the_timeout_raises_tier_unavailable(migrated_database_url, clock, org_id):
    tier = PostgresTier(migrated_database_url, timeout_ms=100, clock=clock)
    entry = make_entry(clock, org_id)
    try:
        tier.set(entry)
        with psycopg.connect(migrated_database_url) as locker:
            locker.execute("SELECT 1 FROM ai_cache_entries WHERE cache_key = %s FOR UPDATE", (entry.key,))
            with pytest.raises(TierUnavailable):
                tier.set(entry)  # waits for the row lock until statement_timeout
        tier.set(entry)
        assert tier.get(entry.key) == entry
    finally:
        tier.close()


class TcpProxy:
    """Forwards a local port to PostgreSQL; :meth:`stop` drops every connection, :meth:`start` listens again."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.target = (parts.hostname, parts.port or 5432)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = urlunsplit(parts._replace(netloc=parts.netloc.replace(f"{parts.hostname}:{parts.port}",
                                                                         f"127.0.0.1:{self.port}")))
        self._sockets: list[socket.socket] = []

    def start(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()

    def stop(self) -> None:
        for sock in [self._server, *self._sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass


@pytest.mark.timeout(60)
def test_the_tier_recovers_when_the_server_comes_back(migrated_database_url, clock, org_id):
    proxy = TcpProxy(migrated_database_url)
    assert proxy.url != migrated_database_url
    proxy.start()
    tier = PostgresTier(proxy.url, clock=clock, flush_interval=3600)
    entry = make_entry(clock, org_id)
    try:
        tier.set(entry)
        proxy.stop()
        with pytest.raises(TierUnavailable):
            tier.get(entry.key)
        proxy.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                assert tier.get(entry.key) == entry
                break
            except TierUnavailable:
                assert time.monotonic() < deadline, "the tier did not reconnect"
                time.sleep(0.1)
    finally:
        tier.close()
        proxy.stop()
