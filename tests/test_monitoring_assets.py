"""The monitoring assets in ``deploy/``: Prometheus scrape config, alerting rules, Grafana dashboard.

Every PromQL expression (alert rules, dashboard targets, the dashboard's ``label_values``
variable) is parsed with ``promql-parser``; the metric names of its vector selectors must be
samples of the real app's ``GET /api/metrics`` (built like ``tests/test_service_metrics.py``:
real Redis and PostgreSQL, a :class:`ManualClock` in a winter no other test uses, after a
miss, a memory hit and an error so every family has samples), and the labels they match on
or group by must be labels wedcache exports (or Prometheus's ``job``/``instance``/``le``).
Thresholds are checked against the settings' defaults (``AI_CACHE_HIT_RATE_ALERT_THRESHOLD``,
``AI_CACHE_ALERT_THRESHOLD_MS``).
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

import promql_parser
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from wedcache.apikeys import ApiKeyStore
from wedcache.clock import ManualClock
from wedcache.config import Settings, load_settings
from wedcache.service import create_app
from wedcache.service.state import ServiceState

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS_YML = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD_JSON = DEPLOY / "grafana" / "dashboard.json"
PROVISIONING = DEPLOY / "grafana" / "provisioning"

START = datetime(2035, 1, 20, 12, tzinfo=timezone.utc)
PROMETHEUS_SERIES = {"up"}
"""Series Prometheus makes itself for every target (not in wedcache's exposition)."""
PROMETHEUS_LABELS = {"__name__", "job", "instance"}
"""Labels Prometheus attaches to every scraped series."""
SEED_ALERTS = {"WedcacheHitRateCritical": ("critical", "high"), "WedcacheResponseTimeHigh": ("critical", "high"),
               "WedcacheErrorRateHigh": ("critical", "high"), "WedcacheMemoryUsageHigh": ("critical", "high"),
               "WedcacheHitRateLow": ("warning", "medium"), "WedcacheUnusualTraffic": ("warning", "medium"),
               "WedcacheSeasonalScalingEvent": ("warning", "medium")}
"""The seed's high- and medium-priority alerts -> (severity, priority)."""
DURATION = re.compile(r"^(0|(\d+(ms|s|m|h|d|w|y))+)$")


# -- the real exposition ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(services, redis_url, migrated_database_url) -> dict[str, set[str]]:
    """Sample name -> its label names, from ``/api/metrics`` after a miss, a hit and an error."""
    settings = load_settings(redis_url=redis_url, database_url=migrated_database_url, origin_latency_median_ms=5,
                             origin_latency_p95_ms=10, memory_size_mb=16)
    clock = ManualClock(START)
    _, secret = ApiKeyStore(migrated_database_url).create(str(uuid.uuid4()), "premium", "member")
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"query": f"barn venues near lakes {uuid.uuid4().hex}",
            "weddingContext": {"location": "New York, NY", "vendorTypes": ["venue"]}}
    with TestClient(create_app(open_state=lambda: ServiceState.open(settings, clock=clock))) as client:
        for _ in range(2):  # a miss (origin), then a memory hit
            assert client.post("/api/ai-cache/query", headers=headers, json=body).status_code == 200
        assert client.post("/api/ai-cache/query", json=body).status_code == 401  # an error envelope
        response = client.get("/api/metrics")
    assert response.status_code == 200
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


# -- PromQL ---------------------------------------------------------------------------------------
def parse(expr: str):
    try:
        return promql_parser.parse(expr)
    except ValueError as error:
        pytest.fail(f"invalid PromQL ({error}):\n{expr}")


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """``(metric name, matched label names)`` of every vector selector in ``expr``."""
    found = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            name = node.name or next((m.value for m in matchers
                                      if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal), None)
            assert name, f"a selector without a literal metric name in {expr!r}"
            found.append((name, {m.name for m in matchers} - {"__name__"}))
    promql_parser.walk(parse(expr), visit)
    return found


def grouping_labels(expr: str) -> set[str]:
    """Label names of every ``by``/``without`` and ``on``/``ignoring``/``group_*`` clause."""
    labels: set[str] = set()

    def visit(node) -> None:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(node.modifier.labels)
        if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                labels.update(node.modifier.matching.labels)
            labels.update(node.modifier.group_labels or ())
    promql_parser.walk(parse(expr), visit)
    return labels


def check_against_exposition(expr: str, exported: dict[str, set[str]]) -> None:
    all_labels = set().union(*exported.values()) | PROMETHEUS_LABELS
    for name, matched in selectors(expr):
        if name in PROMETHEUS_SERIES:
            continue
        assert name in exported, f"{name} (in {expr!r}) is not exported by /api/metrics: {sorted(exported)}"
        assert matched <= exported[name] | PROMETHEUS_LABELS, f"{name} has no label {matched - exported[name]}"
    assert grouping_labels(expr) <= all_labels, f"unknown labels in {expr!r}"


def threshold(expr: str, op: str) -> float:
    """The number compared by the one ``<selector expression> op <number>`` in ``expr``."""
    numbers = []

    def visit(node) -> None:
        if (isinstance(node, promql_parser.BinaryExpr) and str(node.op) == op
                and isinstance(node.rhs, promql_parser.NumberLiteral)):
            numbers.append(node.rhs.val)
    promql_parser.walk(parse(expr), visit)
    assert len(numbers) == 1, f"{len(numbers)} comparisons {op} a number in {expr!r}"
    return numbers[0]


# -- the files ------------------------------------------------------------------------------------
def load_yaml(path: Path):
    with path.open() as stream:
        return yaml.safe_load(stream)


def rules() -> list[dict]:
    return [rule for group in load_yaml(ALERTS_YML)["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD_JSON.read_text())
    exprs = [target["expr"] for panel in board["panels"] for target in panel.get("targets", ())]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
            assert match, variable["definition"]
            exprs.append(match[1])
    return exprs


def test_prometheus_yml_is_the_seeds_scrape_config_with_the_rules():
    config = load_yaml(PROMETHEUS_YML)
    assert config["global"]["scrape_interval"] == "15s"
    [job] = config["scrape_configs"]
    assert job["job_name"] == "ai-cache" and job["scrape_interval"] == "5s"
    assert job["metrics_path"] == "/api/metrics"
    assert job["static_configs"] == [{"targets": ["localhost:3000"]}]  # `wedcache serve`'s default port
    assert config["rule_files"] == ["alerts.yml"] and (PROMETHEUS_YML.parent / "alerts.yml").is_file()


def test_alerts_yml_has_the_seeds_alerts_with_for_labels_and_annotations():
    config = load_yaml(ALERTS_YML)
    assert set(config) == {"groups"}
    for group in config["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    assert set(SEED_ALERTS) <= set(names)
    for rule in rules():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert DURATION.match(rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["labels"]["priority"] in {"high", "medium"}
        if rule["alert"] in SEED_ALERTS:
            assert (rule["labels"]["severity"], rule["labels"]["priority"]) == SEED_ALERTS[rule["alert"]]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"]
        for text in annotations.values():
            assert text.count("{{") == text.count("}}"), text


def test_alert_thresholds_are_the_settings_defaults():
    defaults = Settings.model_fields
    by_name = {rule["alert"]: rule["expr"] for rule in rules()}
    assert defaults["hit_rate_alert_threshold"].default == 0.8
    assert threshold(by_name["WedcacheHitRateCritical"], "<") == defaults["hit_rate_alert_threshold"].default
    assert threshold(by_name["WedcacheResponseTimeHigh"], ">") == defaults["alert_threshold_ms"].default == 100
    assert threshold(by_name["WedcacheHitRateLow"], "<") == 0.85
    assert threshold(by_name["WedcacheHitRateLow"], ">=") == 0.8
    assert threshold(by_name["WedcacheErrorRateHigh"], ">") == 0.02
    assert threshold(by_name["WedcacheMemoryUsageHigh"], ">") == 0.9


def test_dashboard_json_has_the_seeds_four_queries_and_per_tier_panels():
    board = json.loads(DASHBOARD_JSON.read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 30
    panels = [panel for panel in board["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["targets"] and all(target["expr"] and target["refId"] for target in panel["targets"])
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
    titles = {panel["title"]: panel for panel in panels}
    assert {"Cache hit rate", "Average response time", "Seasonal load factor", "Memory usage",
            "Hit rate by tier", "Latency by tier"} <= set(titles)
    for title in ("Hit rate by tier", "Latency by tier"):
        assert all("tier" in grouping_labels(target["expr"]) for target in titles[title]["targets"])
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert {"datasource", "instance"} <= variables


def test_grafana_provisioning_files_are_valid_yaml():
    [datasource] = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus"
    [provider] = load_yaml(PROVISIONING / "dashboards" / "wedcache.yml")["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


@pytest.mark.integration
def test_every_alert_expression_parses_and_names_exported_series(exported):
    assert {"ai_cache_hits_total", "ai_cache_requests_total", "ai_cache_response_time_ms_bucket",
            "ai_cache_errors_total", "ai_cache_memory_usage_bytes"} <= set(exported)  # the fixture's samples
    for rule in rules():
        check_against_exposition(rule["expr"], exported)


@pytest.mark.integration
def test_every_dashboard_target_parses_and_names_exported_series(exported):
    for expr in dashboard_exprs():
        check_against_exposition(expr, exported)


def test_the_checks_catch_unknown_series_and_labels_and_bad_promql():
    exported = {"ai_cache_hits_total": {"tier"}, "ai_cache_requests_total": {"market_tier"}}
    check_against_exposition('sum by (tier) (rate(ai_cache_hits_total{tier="memory"}[5m]))', exported)
    for bad in ("rate(ai_cache_hit_total[5m])", 'ai_cache_requests_total{tier="memory"}',
                "sum by (teir) (ai_cache_hits_total)"):
        with pytest.raises(AssertionError):
            check_against_exposition(bad, exported)
    with pytest.raises(pytest.fail.Exception):
        parse("rate(ai_cache_hits_total[5m]")
    with pytest.raises(AssertionError):
        selectors('{__name__=~"ai_cache_.*"}')
