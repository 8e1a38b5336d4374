"""The report builder (:mod:`wedcache.reporting`) and the simulation report built on it."""
from __future__ import annotations

import copy
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from simulations.report import write_simulation_report
from wedcache.reporting import Report, fmt_bytes, fmt_ms, fmt_number, fmt_percent, fmt_usd, write_json

CHARTS = ("load_and_hit_rate", "latency_by_season", "hit_rate_by_market_tier", "hit_rate_by_vendor_type",
          "staleness", "cost")
WHY_SUMMER = "summer hit rate 71.0 % is below the 85.0 % target: expired entries dominate"
WHY_TIER_1 = "tier_1 p95 of 240 ms exceeds 150 ms because 12 % of requests reach the origin"
EXPLANATION = "Origin calls take 800 ms at the median, so every miss lands in the tail."


def _group(requests: int, hit_rate: float, p95: float) -> dict:
    return {"requests": requests, "hit_rate": hit_rate, "p95_ms": p95, "p50_ms": p95 / 10, "mean_ms": p95 / 4,
            "stale_hit_fraction": 0.01, "origin_cost_usd": requests * 0.0001}


def _check(name: str, target: float, actual: float, why: str = "") -> dict:
    return {"name": name, "target": target, "actual": actual, "passed": not why, "why": why}


@pytest.fixture
def summary() -> dict:
    return {
        "scenario": "june <b>peak</b>", "seed": 7, "sample_rate": 0.1, "backends": "modeled",
        "start_date": "2026-06-01", "days": 4.0, "requests": 1_200_000, "sampled_requests": 120_000,
        "wall_seconds": 3.2, "sim_requests_per_second": 37_500.0,
        "hit_rate": 0.882, "tier_hit_rate": {"memory": 0.6, "redis": 0.2, "postgres": 0.082},
        "stale_hit_fraction": 0.012, "latency_ms": {"mean": 95.0, "p50": 1.2, "p95": 640.0, "p99": 1500.0},
        "origin_calls": 141_600, "origin_cost_usd": 283.2, "cost_saved_usd": 2116.8, "coalesced": 420,
        "misses": {"cold": 0.05, "expired": 0.041, "evicted": 0.02, "coalesced": 0.007},
        "swr": {"grace_served": 0.03, "grace_served_stale_fraction": 0.1, "p95_ms": 640.0, "p95_ms_without": 900.0},
        "by_season": {"summer": _group(900_000, 0.71, 700.0), "fall": _group(300_000, 0.9, 90.0)},
        "by_market_tier": {"tier_1": _group(400_000, 0.88, 240.0), "tier_2": _group(400_000, 0.9, 120.0),
                           "tier_3": _group(400_000, 0.86, 300.0)},
        "by_vendor_type": {"venue": _group(500_000, 0.8, 500.0), "photographer": _group(700_000, 0.9, 80.0)},
        "sampling": {"rate": 0.1, "hit_rate_stderr": 0.003},
        "p95_analysis": {"target_ms": 100.0, "percentile": 95, "origin_share_over_target": 0.998,
                         "required_hit_rate": 0.95, "actual_hit_rate": 0.882, "expired_miss_share": 0.041,
                         "grace_seconds_needed": 1800.0, "explanation": EXPLANATION},
        "sla": {"passed": False, "checks": [
            _check("response_time.memory.p99.9", 1.0, 0.4),
            _check("end_to_end.p95", 100.0, 640.0, "p95 is 640 ms, above 100 ms"),
            _check("seasonal.summer.hit_rate", 0.85, 0.71, WHY_SUMMER),
            _check("market_tier.tier_1.response_time", 150.0, 240.0, WHY_TIER_1),
        ]},
        "targets": {"hit_rate_by_season": {"summer": 0.85, "fall": 0.8},
                    "hit_rate_by_market_tier": {"tier_1": 0.85, "tier_2": 0.8},
                    "response_time_ms_by_season": {"summer": 150.0},
                    "response_time_ms_by_market_tier": {"tier_1": 150.0}},
        "config": {"name": "june peak"},
    }


def _timeseries(days: int = 4) -> pd.DataFrame:
    hours = pd.date_range("2026-06-01", periods=24 * days, freq="h", tz="UTC")
    requests = np.full(len(hours), 1000)
    return pd.DataFrame({
        "hour": [h.isoformat() for h in hours], "requests": requests, "hits_memory": requests * 0.6,
        "hits_redis": requests * 0.2, "hits_postgres": requests * 0.08, "misses": requests * 0.12,
        "stale_hits": requests * 0.01, "p95_ms": 640.0, "memory_bytes": 1e6, "memory_entries": 500,
        "origin_cost_usd": 0.24})


def _written(paths: dict) -> tuple[str, str]:
    return paths["html"].read_text(encoding="utf-8"), paths["md"].read_text(encoding="utf-8")


# --- formatting -------------------------------------------------------------------------------

def test_formatters_read_well_and_show_missing_values_as_a_dash():
    assert fmt_number(1234567) == "1,234,567"
    assert fmt_number(np.int64(42)) == "42"
    assert fmt_number(1800.0) == "1,800"
    assert fmt_number(3.14159) == "3.14"
    assert fmt_number(0.001234) == "0.00123"
    assert fmt_number("text") == "text"
    assert fmt_number(True) == "yes"
    assert fmt_percent(0.873) == "87.3 %"
    assert fmt_ms(0.05) == "0.05 ms" and fmt_ms(12.34) == "12.3 ms" and fmt_ms(1250) == "1,250 ms"
    assert fmt_usd(1234.5) == "$1,234.50" and fmt_usd(0.0042) == "$0.0042"
    assert fmt_bytes(512e6) == "512 MB" and fmt_bytes(2.66e9) == "2.66 GB" and fmt_bytes(1.5e11) == "150 GB"
    assert fmt_bytes(800) == "800 B"
    for fmt in (fmt_number, fmt_percent, fmt_ms, fmt_bytes, fmt_usd):
        assert fmt(None) == fmt(math.nan) == fmt(pd.NA) == "—"


def test_write_json_writes_numpy_scalars_as_numbers(tmp_path):
    import json

    path = write_json(tmp_path / "out.json", {"n": np.int64(3), "x": np.float64(0.5), "when": date(2026, 6, 6)})
    assert json.loads(path.read_text()) == {"n": 3, "x": 0.5, "when": "2026-06-06"}


# --- Report -----------------------------------------------------------------------------------

def test_report_writes_html_and_markdown_with_every_block(tmp_path):
    report = Report("Load test", "subtitle line")
    report.heading("Results")
    report.paragraph("The cache is **fast**.")
    report.bullets(["one", "two"])
    report.table(["name", "value"], [["requests", 1234567], ["ratio", 0.5]], caption="Numbers")
    report.verdict(True, "all good")
    report.verdict(False, "one bad")
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    report.figure("curve", fig, "A curve")
    paths = report.write(tmp_path / "out")
    html_text, md = _written(paths)
    assert set(paths) == {"html", "md", "curve"} and paths["curve"] == tmp_path / "out" / "curve.png"
    assert paths["curve"].read_bytes().startswith(b"\x89PNG")
    assert html_text.startswith("<!DOCTYPE html>") and "<style>" in html_text
    assert "<h1>Load test</h1>" in html_text and "<h2>Results</h2>" in html_text
    assert "<strong>fast</strong>" in html_text and "<li>two</li>" in html_text
    assert "<td>1,234,567</td>" in html_text and "Numbers" in html_text
    assert 'class="verdict pass"' in html_text and 'class="verdict fail"' in html_text
    assert '<img src="curve.png" alt="A curve">' in html_text
    assert md.startswith("# Load test\n") and "## Results" in md and "The cache is **fast**." in md
    assert "- one\n- two" in md and "| requests | 1,234,567 |" in md
    assert "**PASS**: all good" in md and "**FAIL**: one bad" in md and "![A curve](curve.png)" in md


def test_report_escapes_html_but_keeps_markdown_plain(tmp_path):
    report = Report("<script>x</script>")
    report.paragraph("a < b & **c**")
    report.table(["col|umn"], [["<i>cell</i>"]])
    html_text, md = _written(report.write(tmp_path))
    assert "<script>" not in html_text and "&lt;script&gt;x&lt;/script&gt;" in html_text
    assert "a &lt; b &amp; <strong>c</strong>" in html_text and "&lt;i&gt;cell&lt;/i&gt;" in html_text
    assert "# <script>x</script>" in md and "col\\|umn" in md


def test_report_rejects_bad_input():
    report = Report("r")
    with pytest.raises(ValueError):
        report.heading("h", level=1)
    with pytest.raises(ValueError):
        report.table(["a", "b"], [[1]])
    with pytest.raises(ValueError):
        report.figure("../escape", Figure(), "no")
    report.figure("chart", Figure(), "yes")
    with pytest.raises(ValueError):
        report.figure("chart", Figure(), "twice")


# --- simulation report ------------------------------------------------------------------------

def test_simulation_report_writes_every_file(summary, tmp_path):
    paths = write_simulation_report(summary, _timeseries(), tmp_path)
    assert {"html", "md", *CHARTS} <= set(paths)
    for name in CHARTS:
        assert (tmp_path / f"{name}.png").is_file()
    assert paths["html"].is_file() and paths["md"].is_file()


def test_simulation_report_names_failed_checks_and_why(summary, tmp_path):
    html_text, md = _written(write_simulation_report(summary, _timeseries(), tmp_path))
    failing = html_text.split("Which SLA checks fail and why")[1].split("<h2>")[0]
    for name, why in (("seasonal.summer.hit_rate", WHY_SUMMER), ("market_tier.tier_1.response_time", WHY_TIER_1)):
        assert name in failing and why in failing and why in md
    assert "response_time.memory.p99.9" not in failing
    assert "3 of 4 checks fail" in html_text


def test_simulation_report_explains_p95_against_hit_rate(summary, tmp_path):
    _, md = _written(write_simulation_report(summary, _timeseries(), tmp_path))
    assert EXPLANATION in md
    assert ("With origin latency over 100 ms for 99.8 % of calls, p95 < 100 ms needs a hit rate of at least "
            "95.0 %; this run reached 88.2 %.") in md
    assert "grace window of 1,800 s would cover them" in md


def test_simulation_report_says_when_no_grace_window_is_enough(summary, tmp_path):
    summary["p95_analysis"]["grace_seconds_needed"] = None
    _, md = _written(write_simulation_report(summary, _timeseries(), tmp_path))
    assert "no stale-while-revalidate grace window, however long, would close the gap" in md


def test_simulation_report_escapes_the_scenario_name(summary, tmp_path):
    html_text, md = _written(write_simulation_report(summary, _timeseries(), tmp_path))
    assert "<b>peak</b>" not in html_text and "Simulation: june &lt;b&gt;peak&lt;/b&gt;" in html_text
    assert "# Simulation: june <b>peak</b>" in md


def test_simulation_report_shows_targets_and_all_pass(summary, tmp_path):
    summary["sla"] = {"passed": True, "checks": [_check("hit_rate", 0.8, 0.88)]}
    html_text, md = _written(write_simulation_report(summary, _timeseries(days=2), tmp_path))
    assert 'class="verdict pass"' in html_text and "All 1 SLA checks pass." in md
    assert "hit-rate target" in md and "| summer | 900,000 | 71.0 % | 85.0 % |" in md


def test_simulation_report_survives_an_empty_timeseries(summary, tmp_path):
    paths = write_simulation_report(summary, pd.DataFrame(), tmp_path)
    _, md = _written(paths)
    assert "No load_and_hit_rate.png chart" in md and "No cost.png chart" in md
    assert "latency_by_season" in paths and "load_and_hit_rate" not in paths


def test_simulation_report_survives_missing_seasons_nulls_and_zero_requests(summary, tmp_path):
    thin = copy.deepcopy(summary)
    thin.update(requests=0, hit_rate=None, by_season={}, by_vendor_type={"venue": {"requests": 0, "hit_rate": None}},
                latency_ms={"mean": None}, swr=None, misses={})
    thin["p95_analysis"].update(required_hit_rate=None, actual_hit_rate=None)
    timeseries = _timeseries(days=1).assign(requests=0, hits_memory=0, stale_hits=None)
    paths = write_simulation_report(thin, timeseries, tmp_path)
    _, md = _written(paths)
    assert "No latency_by_season.png chart" in md and "No hit_rate_by_vendor_type.png chart" in md
    assert "cost" in paths and "hit_rate_by_market_tier" in paths


def test_simulation_report_survives_an_empty_summary(tmp_path):
    paths = write_simulation_report({}, pd.DataFrame(columns=["hour", "requests"]), tmp_path)
    html_text, _ = _written(paths)
    assert "Simulation: unnamed" in html_text and set(paths) == {"html", "md"}
