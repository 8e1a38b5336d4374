"""Scenario files (simulations.scenario) and trace files (simulations.trace)."""
from __future__ import annotations

import json
import tomllib
from datetime import date, datetime, timezone

import numpy as np
import pytest
import tomli_w

from simulations.scenario import (SCENARIO_DIR, ScenarioError, load_scenario, scenario_from_dict,
                                  scenario_path)
from simulations.trace import Trace, TraceError, load_trace, write_trace
from simulations.workload import DEFAULT_MARKET_MIX, DEFAULT_VENDOR_MIX, WorkloadSpec
from wedcache.errors import WedcacheError

SHIPPED = ("year", "peak-saturday", "off-season", "smoke")


def _minimal(**tables) -> dict:
    return {"run": {"start_date": date(2026, 6, 6), "days": 1}, **tables}


def _error(data: dict) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(data, name="test")
    return info.value


# --- scenarios ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_load_by_name_and_by_path(name):
    """Each shipped scenario loads by bare name and by path, named after its file."""
    scenario = load_scenario(name)
    assert scenario.name == name and scenario.source == SCENARIO_DIR / f"{name}.toml"
    assert load_scenario(SCENARIO_DIR / f"{name}.toml") == scenario
    assert scenario.description and scenario.run.sample_rate <= 1
    scenario.workload_spec(), scenario.policy()


def test_shipped_scenarios_hold_the_documented_figures():
    """The scenarios carry the figures the lab relies on (not the year's size, which is tuned)."""
    year, smoke = load_scenario("year"), load_scenario("smoke")
    assert year.run.start_date == date(2026, 1, 1) and year.cache.eviction == "tinylfu"
    assert year.cache.redis and year.cache.postgres and year.origin.concurrency == 64
    assert load_scenario("peak-saturday").run.start_date.weekday() == 5
    assert smoke.run.duration_seconds == 3600 and smoke.cache.eviction == "lru"
    assert (smoke.origin.latency_median_ms, smoke.origin.latency_p95_ms) == (50, 120)


def test_defaults_fill_every_key_but_the_start_and_duration():
    """Only [run] start_date and the duration are required; mixes default to the workload's."""
    scenario = scenario_from_dict(_minimal(), name="tiny")
    assert scenario.name == "tiny" and scenario.run.seed == 1 and scenario.run.sample_rate == 1.0
    assert scenario.queries.market_mix == DEFAULT_MARKET_MIX
    assert scenario.queries.vendor_mix == DEFAULT_VENDOR_MIX
    assert scenario.origin.latency_median_ms == 1200 and scenario.origin.concurrency is None
    assert scenario.cache.ttl_seconds is None and scenario.data_changes.rate_per_hour is None
    assert scenario_from_dict({**_minimal(), "name": "given"}).name == "given"


@pytest.mark.parametrize("data, field, words", [
    (_minimal(cache={"memroy_mb": 1}), "cache.memroy_mb", "unknown key"),
    (_minimal(bogus={}), "bogus", "unknown key"),
    (_minimal(cache={"memory_mb": "512"}), "cache.memory_mb", "expected a number"),
    (_minimal(cache={"memory_mb": 0}), "cache.memory_mb", "must be > 0"),
    (_minimal(traffic={"seasonal": 1}), "traffic.seasonal", "expected true or false"),
    (_minimal(queries={"distinct": 10.5}), "queries.distinct", "expected an integer"),
    (_minimal(cache={"eviction": "fifo"}), "cache.eviction", "'lru' or 'tinylfu'"),
    (_minimal(queries={"market_mix": {"tier_9": 1.0}}), "queries.market_mix.tier_9", "unknown key"),
    (_minimal(queries={"vendor_mix": {"dj": 1.0}}), "queries.vendor_mix.dj", "unknown key"),
    (_minimal(queries={"market_mix": {"tier_1": 0.0}}), "queries.market_mix", "not all be zero"),
    (_minimal(origin={"latency_median_ms": 300, "latency_p95_ms": 200}), "origin.latency_p95_ms", ">="),
    ({"run": {"start_date": date(2026, 6, 6), "days": 1, "duration_seconds": 60}}, "run.days", "not both"),
    ({"run": {"start_date": date(2026, 6, 6)}}, "run.duration_seconds", "required"),
    ({"run": {"days": 1}}, "run.start_date", "required"),
    ({"run": {"start_date": "June", "days": 1}}, "run.start_date", "expected a date"),
    (_minimal(run={"start_date": date(2026, 6, 6), "days": 1, "sample_rate": 1.5}), "run.sample_rate", "<= 1"),
    (_minimal(sla={"hit_rate": 1.5}), "sla.hit_rate", "<= 1"),
    (_minimal(queries={"paraphrase_variants": 4}), "queries.paraphrase_variants", "<= 3"),
    (_minimal(queries={"paraphrase_variants": 1.5}), "queries.paraphrase_variants", "expected an integer"),
    (_minimal(queries={"near_miss_share": 1.0}), "queries.near_miss_share", "< 1"),
    (_minimal(cache={"semantic": "yes"}), "cache.semantic", "expected true or false"),
    (_minimal(cache={"semantic_threshold": 1.5}), "cache.semantic_threshold", "<= 1"),
    (_minimal(cache={"semantc": True}), "cache.semantc", "unknown key"),
    (_minimal(sla={"response_time": {"end_to_end": {"msec": 150}}}), "sla.response_time.end_to_end.msec",
     "unknown key"),
])
def test_bad_scenarios_name_the_key_path(data, field, words):
    """Unknown keys, wrong types, bad values and bad mixes name the dotted path."""
    error = _error(data)
    assert isinstance(error, WedcacheError)
    assert error.field == field and words in str(error)
    assert str(error).startswith(f"scenario test: {field}: ")


def test_a_file_error_names_the_file(tmp_path):
    """Errors from a file name it; a missing file lists the shipped scenarios."""
    path = tmp_path / "bad.toml"
    path.write_text('[run]\nstart_date = 2026-01-01\ndays = 1\n[cache]\nmemory_mb = -1\n')
    with pytest.raises(ScenarioError, match=r"^scenario bad.toml: cache.memory_mb: must be > 0$"):
        load_scenario(path)
    path.write_text("[run\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="smoke"):
        scenario_path("no-such-scenario")


def test_overrides_replace_run_values_and_are_validated():
    """with_overrides applies the CLI flags, keeps the rest and checks the result."""
    smoke = load_scenario("smoke")
    changed = smoke.with_overrides(seed=9, sample_rate=0.5, start_date="2026-07-04", days=2)
    assert (changed.run.seed, changed.run.sample_rate, changed.run.start_date) == (9, 0.5, date(2026, 7, 4))
    assert changed.days == 2 and changed.run.duration_seconds == 2 * 86_400
    assert (changed.cache, changed.queries, changed.source) == (smoke.cache, smoke.queries, smoke.source)
    assert smoke.with_overrides() == smoke
    with pytest.raises(ScenarioError) as info:
        smoke.with_overrides(sample_rate=0)
    assert info.value.field == "run.sample_rate" and "smoke.toml" in str(info.value)


@pytest.mark.parametrize("name", SHIPPED)
def test_to_dict_round_trips_through_json_and_toml(name):
    """to_dict is JSON-able, a valid scenario file, and reads back to an equal scenario."""
    scenario = load_scenario(name)
    data = json.loads(json.dumps(scenario.to_dict()))
    assert scenario_from_dict(data, source=scenario.source) == scenario
    again = scenario_from_dict(tomllib.loads(tomli_w.dumps(scenario.to_dict())), source=scenario.source)
    assert again == scenario


def test_round_trip_keeps_optional_values_and_sla():
    """Optional cache values, data change rates and SLA overrides survive the round trip."""
    scenario = scenario_from_dict(_minimal(
        cache={"ttl_seconds": 600, "jitter": 0.05, "stale_while_revalidate_seconds": 30, "calibration": "cal.json"},
        data_changes={"rate_per_hour": 0.5}, sla={"hit_rate": 0.8}), name="full")
    assert scenario_from_dict(scenario.to_dict()) == scenario


def test_semantic_keys_round_trip_and_are_left_out_when_off():
    """Paraphrases and semantic matching survive the round trip and reach the workload spec;
    at their defaults (off) ``to_dict`` leaves them out, so older configs read the same."""
    scenario = scenario_from_dict(_minimal(queries={"paraphrase_variants": 2, "near_miss_share": 0.05},
                                           cache={"semantic": True, "semantic_threshold": 0.8}), name="sem")
    assert scenario_from_dict(scenario.to_dict()) == scenario
    spec = scenario.workload_spec()
    assert (spec.paraphrase_variants, spec.near_miss_share) == (2, 0.05)
    assert (scenario.cache.semantic, scenario.cache.semantic_threshold) == (True, 0.8)
    off = scenario_from_dict(_minimal(), name="off").to_dict()
    assert not {"paraphrase_variants", "near_miss_share"} & set(off["queries"])
    assert not {"semantic", "semantic_threshold"} & set(off["cache"])


def test_workload_spec_matches_the_scenario():
    """workload_spec carries the calendar, traffic, queries and change rate across."""
    scenario = scenario_from_dict(_minimal(
        traffic={"base_qps": 3, "weekly": False, "arrivals": "uniform"},
        queries={"distinct": 50, "zipf_alpha": 0.7, "organizations": 4, "market_mix": {"tier_1": 1.0}},
        data_changes={"rate_per_hour": 0.25}))
    assert scenario.workload_spec() == WorkloadSpec(
        start=datetime(2026, 6, 6, tzinfo=timezone.utc), duration_seconds=86_400, base_qps=3.0,
        seasonal=True, weekly=False, daily=True, arrivals="uniform", distinct=50, zipf_alpha=0.7,
        organizations=4, market_mix={"tier_1": 1.0}, vendor_mix=DEFAULT_VENDOR_MIX,
        data_change_rate_per_hour=0.25)


def test_policy_applies_sla_and_jitter_overrides(policy):
    """policy() merges the SLA overrides and the jitter into the base policy, nothing else."""
    scenario = scenario_from_dict(_minimal(
        cache={"jitter": 0.2}, sla={"hit_rate": 0.8, "response_time": {"end_to_end": {"ms": 150}}}))
    tuned = scenario.policy(policy)
    assert tuned.sla.hit_rate == 0.8 and tuned.jitter == 0.2
    assert tuned.sla.response_time["end_to_end"].ms == 150
    assert tuned.sla.response_time["end_to_end"].percentile == policy.sla.response_time["end_to_end"].percentile
    assert tuned.vendors == policy.vendors and tuned.seasons == policy.seasons
    assert scenario_from_dict(_minimal()).policy(policy) == policy


def test_policy_rejects_overrides_the_base_cannot_take(policy):
    """An override that passed against the shipped policy is still checked against the base."""
    scenario = scenario_from_dict(_minimal(sla={"response_time": {"end_to_end": {"ms": 150}}}), name="x")
    base = policy.model_copy(update={"sla": policy.sla.model_copy(update={"response_time": {}})})
    with pytest.raises(ScenarioError) as info:
        scenario.policy(base)
    assert info.value.field.startswith("sla.response_time.end_to_end")


# --- traces ---------------------------------------------------------------------------------

def test_trace_round_trip_with_only_the_required_columns(tmp_path):
    """timestamp and key alone: ids by first appearance, defaults for the rest."""
    keys = ["venues in Napa", "florists in Boise", "venues in Napa", 'a "quoted", key']
    path = write_trace(tmp_path / "t.csv", [100.0, 100.25, 101.125, 107.0], keys)
    trace = load_trace(path)
    assert isinstance(trace, Trace) and len(trace) == 4 and trace.n_objects == 3
    assert trace.times.tolist() == [0.0, 0.25, 1.125, 7.0] and trace.first_timestamp == 100.0
    assert trace.ids.dtype == np.int64 and [trace.keys[i] for i in trace.ids] == keys
    assert trace.sizes is None and trace.org_ids == ["trace"] * 3
    assert trace.vendor_types == ["other"] * 3 and trace.market_tiers == ["tier_3"] * 3


def test_trace_round_trip_with_every_column(tmp_path):
    """Optional columns give per-object values; sizes are the last one seen."""
    times = np.array([0.0, 1.5, 2.0, 1e9 + 0.123456])
    path = write_trace(tmp_path / "t.csv", times, ["a", "b", "a", "c"], sizes=[10, 20, 30, 40],
                       org_ids=["o1", "o2", "o1", "o3"], vendor_types=["venue", "florist", "venue", "baker"],
                       market_tiers=["tier_1", "tier_2", "tier_1", "tier_3"])
    trace = load_trace(path)
    assert trace.times.tolist() == times.tolist() and trace.keys == ["a", "b", "c"]
    assert trace.sizes.dtype == np.int64 and trace.sizes.tolist() == [30, 20, 40]
    assert trace.org_ids == ["o1", "o2", "o3"] and trace.vendor_types == ["venue", "florist", "baker"]
    assert trace.market_tiers == ["tier_1", "tier_2", "tier_3"]


def test_an_unsorted_trace_is_sorted_stably(tmp_path):
    """Rows out of time order are sorted; equal timestamps keep their file order."""
    path = tmp_path / "t.csv"
    path.write_text("timestamp,key\n5,late\n1,first\n3,tie-a\n3,tie-b\n\n2,second\n")
    trace = load_trace(path)
    assert trace.times.tolist() == [0, 1, 2, 2, 4]
    assert [trace.keys[i] for i in trace.ids] == ["first", "second", "tie-a", "tie-b", "late"]
    assert trace.ids.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("text, field, line, words", [
    ("time,key\n1,a\n", "timestamp", None, "missing column"),
    ("timestamp,query\n1,a\n", "key", None, "missing column"),
    ("timestamp,key,vendortype\n1,a,venue\n", "vendortype", None, "unknown column"),
    ("timestamp,key\n1,a\nsoon,b\n", "timestamp", 3, "expected a number"),
    ("timestamp,key\n1,a\n2,b\n-3,c\n", "timestamp", 4, "must be >= 0"),
    ("timestamp,key\n1,a\n\n,b\n", "timestamp", 4, "empty cell"),
    ("timestamp,key\n1,a\n2,\n", "key", 3, "non-empty key"),
    ("timestamp,key,vendor_type\n1,a,venue\n2,b,dj\n", "vendor_type", 3, "expected one of"),
    ("timestamp,key,market_tier\n1,a,tier_4\n", "market_tier", 2, "expected one of"),
    ("timestamp,key,size_bytes\n1,a,12\n2,b,1.5\n", "size_bytes", 3, "whole number"),
    ("timestamp,key\n1,a\n2,b,extra\n", "", 3, "fields"),
    ("timestamp,key\n", "timestamp", None, "no requests"),
    ("", "", None, "empty file"),
])
def test_bad_traces_name_the_column_and_line(tmp_path, text, field, line, words):
    """Each defect raises TraceError with its column, first bad line and file name."""
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as info:
        load_trace(path)
    error = info.value
    assert isinstance(error, WedcacheError) and (error.field, error.line) == (field, line)
    assert words in str(error) and str(error).startswith("trace bad.csv")
    if line:
        assert f"line {line}" in str(error)


def test_write_trace_checks_lengths(tmp_path):
    """Every per-request column must match the number of timestamps."""
    with pytest.raises(TraceError, match="sizes|size_bytes"):
        write_trace(tmp_path / "t.csv", [0.0, 1.0], ["a", "b"], sizes=[1])
