"""Latency models, calibrations, the modeled tier (under the shared tier contract) and ``wedcache calibrate``."""
import json
from datetime import date

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

import test_tier_contract as contract
from simulations.clock import SimClock
from simulations.latency import GRID, OPS, TIERS, Calibration, LatencyModel, load_calibration
from simulations.tiers import ModeledTier
from wedcache.cli import app
from wedcache.entry import CacheEntry, Selector
from wedcache.errors import TierUnavailable
from wedcache.tiers import Tier, tier_from_url

TABLE = {0.01: 1.0, 0.25: 1.5, 0.5: 2.0, 0.9: 5.0, 0.99: 20.0, 0.999: 40.0}


def ms_quantiles(model: LatencyModel, probabilities, n: int = 100_000) -> np.ndarray:
    return np.quantile(model.draws(n), probabilities) * 1000


# --- LatencyModel ---------------------------------------------------------------------------

def test_draws_reproduce_the_table():
    model = LatencyModel(TABLE, seed=1)
    probabilities = [p for p in TABLE if p < 0.999]
    assert ms_quantiles(model, probabilities) == pytest.approx([TABLE[p] for p in probabilities], rel=0.03)
    assert ms_quantiles(model, [0.7])[0] == pytest.approx(2.0 + (0.2 / 0.4) * 3.0, rel=0.03)  # interpolated


def test_below_the_table_is_its_floor_and_above_it_a_tail():
    model = LatencyModel(TABLE, seed=2)
    assert model.quantile(0.0) == model.quantile(0.005) == pytest.approx(1.0)
    assert model.quantile(0.999) == pytest.approx(40.0)
    assert 40.0 < model.quantile(0.9995) < model.quantile(0.9999) < 200.0
    assert model.draws(200_000).max() * 1000 > 40.0


def test_lognormal_reproduces_median_and_p95():
    model = LatencyModel.lognormal(median_ms=2.0, p95_ms=6.0, seed=3)
    assert model.quantile(0.5) == pytest.approx(2.0) and model.quantile(0.95) == pytest.approx(6.0)
    assert ms_quantiles(model, [0.5, 0.95]) == pytest.approx([2.0, 6.0], rel=0.03)
    assert model.mean_ms == pytest.approx(model.draws(200_000).mean() * 1000, rel=0.02)


def test_draw_is_seconds_and_constant_is_constant():
    model = LatencyModel.constant(5.0)
    assert {model.draw() for _ in range(10_000)} == {0.005}
    assert model.mean_ms == pytest.approx(5.0) and model.quantile(0.99) == pytest.approx(5.0)


def test_same_seed_same_sequence():
    a, b, c = (LatencyModel(TABLE, seed=s) for s in (7, 7, 8))
    first = [a.draw() for _ in range(10_000)]
    assert first == [b.draw() for _ in range(10_000)]
    assert first != [c.draw() for _ in range(10_000)]
    assert np.array_equal(a.draws(100), b.draws(100))


def test_from_samples_round_trips_through_its_dict():
    seconds = np.random.default_rng(4).lognormal(np.log(0.0002), 0.4, 20_000)
    model = LatencyModel.from_samples(seconds)
    assert set(model.quantiles_ms) == set(GRID)
    assert model.quantile(0.5) == pytest.approx(np.median(seconds) * 1000, rel=1e-3)
    again = LatencyModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again.quantiles_ms == pytest.approx(model.quantiles_ms)
    assert model.to_dict()["p99.9"] == model.quantiles_ms[0.999]


@pytest.mark.parametrize("table, problem", [
    ({}, "empty"),
    ({0.5: 2.0, 0.9: 1.0}, "not monotone"),
    ({0.5: -1.0}, "negative"),
    ({0.5: float("inf")}, "not finite"),
    ({1.5: 1.0}, "outside"),
])
def test_bad_tables_are_refused_by_name(table, problem):
    with pytest.raises(ValueError, match=problem):
        LatencyModel(table)


def test_bad_inputs_are_refused_by_name():
    with pytest.raises(ValueError, match="'x50'"):
        LatencyModel.from_dict({"x50": 1.0})
    with pytest.raises(ValueError, match="samples"):
        LatencyModel.from_samples([])
    with pytest.raises(ValueError, match="median_ms"):
        LatencyModel.lognormal(5.0, 1.0)


# --- Calibration ----------------------------------------------------------------------------

def test_the_shipped_calibration_loads():
    cal = load_calibration()
    assert cal.source == "shipped defaults" and date.fromisoformat(cal.measured_at) and cal.notes
    assert {(t, op) for t in cal.models for op in cal.models[t]} == {(t, op) for t in TIERS for op in OPS}
    assert cal.model("memory", "get").quantile(0.5) < cal.model("redis", "get").quantile(0.5)


def test_calibration_save_load_round_trip(tmp_path):
    cal = Calibration({"redis": {"get": LatencyModel(TABLE), "set": LatencyModel.constant(0.2)}},
                      source="wedcache calibrate", measured_at="2026-06-06", notes="test")
    cal.save(tmp_path / "cal.json")
    loaded = load_calibration(tmp_path / "cal.json")
    assert loaded.to_dict() == cal.to_dict()
    assert json.loads((tmp_path / "cal.json").read_text())["tiers"]["redis"]["get"]["p50"] == 2.0


def test_calibration_models_are_seeded_copies():
    cal = load_calibration()
    assert np.array_equal(cal.model("redis", "get", 5).draws(50), cal.model("redis", "get", 5).draws(50))
    assert not np.array_equal(cal.model("redis", "get", 5).draws(50), cal.model("redis", "get", 6).draws(50))
    u_redis = cal.model("redis", "get", 5).draws(50)
    u_pg = cal.model("postgres", "get", 5).draws(50)
    assert not np.array_equal(np.argsort(u_redis), np.argsort(u_pg))  # independent streams per tier


def test_unknown_tier_or_operation_is_named():
    cal = load_calibration()
    with pytest.raises(ValueError, match="'nope'"):
        cal.model("nope", "get")
    with pytest.raises(ValueError, match="'scan'"):
        cal.model("redis", "scan")


def test_a_file_without_tiers_is_refused(tmp_path):
    (tmp_path / "bad.json").write_text('{"source": "x"}')
    with pytest.raises(ValueError, match="tiers"):
        load_calibration(tmp_path / "bad.json")


# --- ModeledTier under the shared contract -----------------------------------------------------

@pytest.fixture
def tier(clock):
    cal = load_calibration()
    made = ModeledTier("redis", clock, cal.model("redis", "get"), cal.model("redis", "set"))
    yield made
    made.close()


test_contract_round_trip = contract.test_round_trip_keeps_every_field
test_contract_set_replaces_and_delete_removes = contract.test_set_replaces_and_delete_removes
test_contract_expired_entries_are_returned = contract.test_expired_entries_are_returned_for_the_cache_to_judge
test_contract_invalidate = contract.test_invalidate_removes_exactly_what_the_selector_matches


# --- ModeledTier --------------------------------------------------------------------------------

def entry(key: str, now: float, ttl: float = 100.0, org: str = "org-a") -> CacheEntry:
    return CacheEntry(key, {"answer": key}, now, now + ttl, org)


def constant_tier(clock, **kwargs) -> ModeledTier:
    return ModeledTier("redis", clock, LatencyModel.constant(2.0), LatencyModel.constant(5.0), **kwargs)


def test_latency_is_charged_to_the_request_as_debt():
    clock = SimClock(0.0)
    tier = constant_tier(clock)
    tier.set(entry("a", clock.now()))
    for _ in range(3):
        assert tier.get("a").key == "a"
    assert tier.get("missing") is None
    assert clock.take_debt() == pytest.approx(0.005 + 4 * 0.002)
    tier.invalidate(Selector(org_id="org-a"))
    tier.delete("a")
    assert clock.take_debt() == pytest.approx(2 * 0.005) and clock.now() == 0.0


def test_stale_entries_are_kept_until_the_grace_runs_out():
    clock = SimClock(0.0)
    tier = constant_tier(clock, grace_seconds=5.0)
    tier.set(entry("a", clock.now(), ttl=10.0))
    clock.advance_to(14.0)
    assert tier.get("a").expires_at == 10.0
    clock.advance_to(15.0)
    assert tier.get("a") is None
    assert tier.stats() == {"entries": 0, "bytes": 0, "evictions": 0}


def test_max_entries_evicts_the_oldest_inserted():
    clock = SimClock(0.0)
    tier = constant_tier(clock, max_entries=3)
    entries = [entry(k, 0.0) for k in "abcde"]
    for e in entries:
        tier.set(e)
    assert [k for k in "abcde" if tier.get(k) is not None] == ["c", "d", "e"]
    assert tier.stats() == {"entries": 3, "bytes": sum(e.size for e in entries[2:]), "evictions": 2}
    tier.set(entries[2])  # re-set: "c" becomes the newest
    tier.set(entry("f", 0.0))
    assert tier.get("d") is None and tier.get("c") is not None


def test_invalidate_walks_only_the_selected_organization():
    clock = SimClock(0.0)
    tier = constant_tier(clock)
    for key, org in (("a", "org-a"), ("b", "org-a"), ("c", "org-b")):
        tier.set(entry(key, 0.0, org=org))
    assert tier.invalidate(Selector(org_id="org-a")) == 2
    assert tier.invalidate(Selector(scope="global")) == 1
    assert tier.stats()["entries"] == 0


def test_a_failing_tier_raises_tier_unavailable_until_restored():
    clock = SimClock(0.0)
    tier = constant_tier(clock)
    tier.set(entry("a", 0.0))
    clock.take_debt()
    tier.fail(True, after_seconds=0.05)
    for call in (lambda: tier.get("a"), lambda: tier.set(entry("b", 0.0)), lambda: tier.delete("a"),
                 lambda: tier.invalidate(Selector(org_id="org-a")), tier.stats):
        with pytest.raises(TierUnavailable) as raised:
            call()
        assert raised.value.tier == "redis"
    assert clock.take_debt() == pytest.approx(5 * 0.05)
    tier.fail(False)
    assert tier.get("a").key == "a" and not tier.failing


def test_modeled_urls_build_calibrated_tiers():
    clock, cal = SimClock(0.0), load_calibration()
    tier = tier_from_url("modeled://redis?grace_seconds=600&max_entries=10", clock=clock, calibration=cal, seed=3)
    assert isinstance(tier, Tier) and isinstance(tier, ModeledTier)
    assert (tier.name, tier.grace_seconds, tier.max_entries) == ("redis", 600.0, 10)
    assert tier.get_latency.quantiles_ms == cal.models["redis"]["get"].quantiles_ms
    assert tier.set_latency.quantiles_ms == cal.models["redis"]["set"].quantiles_ms
    tier.get("nothing")
    assert clock.take_debt() > 0
    pg = tier_from_url("modeled://postgres", clock=clock)
    assert pg.name == "postgres" and pg.grace_seconds == 0.0 and pg.max_entries is None


def test_modeled_urls_name_their_mistakes():
    with pytest.raises(ValueError, match="'nope'"):
        tier_from_url("modeled://nope", clock=SimClock(0.0))
    with pytest.raises(ValueError, match="'ttl'"):
        tier_from_url("modeled://redis?ttl=5", clock=SimClock(0.0))


# --- wedcache calibrate -------------------------------------------------------------------------

@pytest.mark.integration
def test_calibrate_measures_real_servers_and_writes_a_loadable_file(services, tmp_path, monkeypatch):
    from simulations.calibrate import CALIBRATION_ORG, DATABASE
    from wedcache.services import with_database

    monkeypatch.setenv("AI_CACHE_REDIS_URL", services.redis_url)
    monkeypatch.setenv("AI_CACHE_DATABASE_URL", services.database_url)
    out = tmp_path / "calibration.json"
    result = CliRunner().invoke(app, ["calibrate", "--samples", "30", "--entries", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    cal = load_calibration(out)
    assert cal.source == "wedcache calibrate" and cal.measured_at == date.today().isoformat()
    assert all(cal.model(t, op).quantile(0.5) > 0 for t in TIERS for op in OPS)
    assert "postgres" in result.output and "p99" in result.output and "written to" in result.output
    with psycopg.connect(with_database(services.database_url, DATABASE)) as conn:
        left = conn.execute("SELECT count(*) FROM ai_cache_entries WHERE organization_id = %s",
                            (CALIBRATION_ORG,)).fetchone()[0]
    assert left == 0
