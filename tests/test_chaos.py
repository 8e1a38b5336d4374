"""The fault drill: its arithmetic (no servers) and one short drill on real servers."""
from __future__ import annotations

import importlib
import json

import pytest
from typer.testing import CliRunner

from wedcache.chaos.checks import drill_checks
from wedcache.gate.checks import Check
from wedcache.chaos.load import Sample, Workload
from wedcache.chaos.recovery import hit_rate_recovered_at, recovery_seconds, window
from wedcache.chaos.report import CHAOS_KEYS


def _samples(start: float, end: float, every: float, hit: bool, outcome: str = "200") -> list[Sample]:
    count = round((end - start) / every)
    return [Sample(start + i * every, outcome, "HIT-memory" if hit else "MISS") for i in range(count)]


# --- figures of a window ---------------------------------------------------------------------

def test_a_window_counts_hits_over_successful_answers_and_splits_errors():
    samples = [Sample(0.0, "200", "HIT-redis"), Sample(0.1, "200", "MISS"), Sample(0.2, "503"),
               Sample(0.3, "ReadError"), Sample(0.4, "429"), Sample(5.0, "200", "HIT-memory")]
    figures = window(samples, 0.0, 1.0)
    assert (figures.requests, figures.answered_ok, figures.hits) == (5, 2, 1)
    assert (figures.errors_5xx, figures.errors_other) == (1, 2)
    assert figures.hit_rate == 0.5


def test_an_empty_window_has_no_hit_rate():
    assert window([], 0.0, 1.0).hit_rate is None


# --- recovery times --------------------------------------------------------------------------

def test_the_hit_rate_recovers_where_a_rolling_window_holds_the_prior_rate_again():
    restart = 10.0
    samples = _samples(10.0, 13.0, 0.05, hit=False) + _samples(13.0, 20.0, 0.05, hit=True)
    at = hit_rate_recovered_at(samples, restart, prior=0.9, span=1.0, tolerance=0.05)
    # the first window [t, t+1) with >= 85 % hits starts once at most 15 % of it lies before 13 s
    assert at == pytest.approx(12.9, abs=0.11)


def test_a_hit_rate_that_never_dropped_recovers_at_the_restart():
    samples = _samples(0.0, 20.0, 0.05, hit=True)
    assert hit_rate_recovered_at(samples, 10.0, prior=1.0) == pytest.approx(10.0)


def test_a_hit_rate_that_never_comes_back_has_no_recovery():
    samples = _samples(10.0, 20.0, 0.05, hit=False)
    assert hit_rate_recovered_at(samples, 10.0, prior=0.9) is None


def test_too_few_answers_in_a_window_do_not_count_as_recovered():
    samples = _samples(10.0, 20.0, 1.0, hit=True)  # one answer per second
    assert hit_rate_recovered_at(samples, 10.0, prior=0.9, span=1.0, min_samples=5) is None


def test_recovery_is_the_later_of_the_hit_rate_and_the_tier_being_back():
    assert recovery_seconds(10.0, hit_rate_at=10.5, ready_at=14.0) == pytest.approx(4.0)
    assert recovery_seconds(10.0, hit_rate_at=13.0, ready_at=11.0) == pytest.approx(3.0)
    assert recovery_seconds(10.0, hit_rate_at=None, ready_at=11.0) is None
    assert recovery_seconds(10.0, hit_rate_at=12.0, ready_at=None) is None


# --- checks and workload ----------------------------------------------------------------------

def test_the_checks_name_their_targets_and_an_unmeasured_figure_fails():
    figures = {"errors_5xx": 0, "recovery_seconds_redis": 3.2, "recovery_seconds_postgres": None,
               "rows_lost": 0, "stampede_origin_calls": 2}
    checks = {c.name: c for c in drill_checks(figures)}
    assert checks["errors_5xx"].passed and checks["recovery_seconds_redis"].passed
    assert not checks["recovery_seconds_postgres"].passed
    assert checks["recovery_seconds_postgres"].describe() == \
        "recovery_seconds_postgres: actual not measured, target <= 10"
    assert not checks["stampede_origin_calls"].passed
    assert checks["stampede_origin_calls"].as_dict() == {"name": "stampede_origin_calls", "op": "==", "target": 1,
                                                         "actual": 2, "passed": False}
    assert Check("rows_lost", "==", 0, 0).passed


def test_every_tenth_request_asks_a_new_query_and_the_others_cycle_the_catalogue():
    workload = Workload(size=3, fresh_every=10)
    bodies = [workload.body(n)["query"] for n in range(20)]
    catalogue = {body["query"] for body in workload.catalogue()}
    assert bodies[9] not in catalogue and bodies[19] not in catalogue and bodies[9] != bodies[19]
    assert {b for i, b in enumerate(bodies) if i % 10 != 9} == catalogue


# --- one short drill on real servers -------------------------------------------------------------

@pytest.fixture(scope="module")
def short_drill(tmp_path_factory):
    """``wedcache chaos run --short`` once: its exit code, output and ``chaos.json``."""
    from wedcache.cli import app

    importlib.import_module("wedcache.cli.chaos")  # registers `chaos` on the app (idempotent)

    out = tmp_path_factory.mktemp("chaos")
    result = CliRunner().invoke(app, ["chaos", "run", "--short", "--out", str(out)])
    assert result.exit_code in (0, 1), result.output
    return result, json.loads((out / "chaos.json").read_text()), out


def test_the_short_drill_writes_the_contract_fields_and_its_report(short_drill):
    result, chaos, out = short_drill
    assert set(chaos) == {*CHAOS_KEYS, "checks"}
    assert chaos["requests"] > 500 and chaos["rows_before"] > 0
    assert 0.8 <= chaos["hit_rate_before"] <= 1.0  # every tenth query is new
    assert {c["name"] for c in chaos["checks"]} == {"errors_5xx", "recovery_seconds_redis",
                                                    "recovery_seconds_postgres", "rows_lost", "stampede_origin_calls"}
    assert all((out / name).exists() for name in ("report.html", "report.md", "timeline.png", "details.json"))
    failed = [c["name"] for c in chaos["checks"] if not c["passed"]]
    assert result.exit_code == (1 if failed else 0)
    assert [line.split(":")[0] for line in result.output.splitlines() if line.startswith("FAILED ")] == \
        [f"FAILED {name}" for name in failed]


def _check(chaos: dict, name: str) -> dict:
    return next(c for c in chaos["checks"] if c["name"] == name)


def test_no_request_gets_a_5xx_while_the_origin_can_answer(short_drill):
    _, chaos, out = short_drill
    failures = json.loads((out / "details.json").read_text())["failures"]
    assert _check(chaos, "errors_5xx")["passed"], [f for f in failures if f["outcome"].startswith("5")]


@pytest.mark.parametrize("tier", ["redis", "postgres"])
def test_the_service_recovers_within_10_s_of_a_restart(short_drill, tier):
    assert _check(short_drill[1], f"recovery_seconds_{tier}")["passed"]


def test_no_stored_row_is_lost(short_drill):
    chaos = short_drill[1]
    assert _check(chaos, "rows_lost")["passed"] and chaos["rows_after"] >= chaos["rows_before"]


def test_a_stampede_across_both_replicas_costs_one_origin_call(short_drill):
    assert short_drill[1]["stampede_origin_calls"] == 1
