"""What a gate run measured: Locust's stats CSV and the server's Prometheus histogram.

:func:`read_locust_stats` turns ``<prefix>_stats.csv`` into :class:`LocustStats`: the query
endpoint's row (end-to-end latency percentiles, Locust's clock), the HTTP totals (``CACHE``
rows are the locustfile's per-``X-Cache`` entries, not requests, so they are left out of the
totals) and the ``CACHE`` counts (hit rate). :func:`tier_buckets` reads the
``ai_cache_response_time_ms`` histogram from ``/api/metrics`` text with prometheus_client's
parser; :func:`bucket_delta` subtracts a snapshot taken before the load so warm-up requests
do not count. Against several replicas, :func:`merge_buckets` sums their deltas (each replica
with several workers already sums its own) and :func:`answered` counts what one replica served.
:func:`read_worker_requests` reads the locustfile's ``<prefix>_workers.csv`` of a distributed
run (what each Locust worker reported to the master).
"""
from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .errors import GateError

QUERY_ROW = "POST /api/ai-cache/query"
WORKERS_CSV_SUFFIX = "_workers.csv"
"""The locustfile's per-worker table, next to Locust's ``_stats.csv`` (same prefix)."""
CACHE_TYPE = "CACHE"
HISTOGRAM = "ai_cache_response_time_ms"
Buckets = dict[str, dict[float, float]]
"""Per tier label: upper bound -> cumulative count."""


@dataclass
class LocustStats:
    requests: int
    failures: int
    rps: float
    latency_ms: dict[str, float]
    """p50/p95/p99 of the query endpoint."""
    query_requests: int
    x_cache: dict[str, int] = field(default_factory=dict)
    csv_files: dict[str, str] = field(default_factory=dict)
    """Locust's CSV files of the run (name -> text), kept with the gate's outputs."""
    worker_requests: list[int] = field(default_factory=list)
    """Entries (requests and ``CACHE`` entries, as the ``Aggregated`` row counts them) each Locust
    worker reported, by worker index; empty for a single Locust process."""
    total_entries: int = 0
    """The ``Aggregated`` row's count: what ``worker_requests`` add up to."""

    @property
    def hit_rate(self) -> float:
        answered = sum(self.x_cache.values())
        hits = sum(n for label, n in self.x_cache.items() if label.startswith("HIT-"))
        return hits / answered if answered else 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def read_locust_stats(path: Path) -> LocustStats:
    """The figures of Locust's ``*_stats.csv``; :class:`GateError` when it is missing or empty."""
    try:
        rows = list(csv.DictReader(Path(path).open(newline="")))
    except OSError as error:
        raise GateError(f"Locust wrote no stats CSV ({path}): {error}") from None
    http = [r for r in rows if r["Type"] != CACHE_TYPE and r["Name"] != "Aggregated"]
    query = next((r for r in http if r["Name"] == QUERY_ROW), None)
    if query is None or int(query["Request Count"]) == 0:
        raise GateError(f"Locust sent no {QUERY_ROW} request (see {path})")
    return LocustStats(requests=sum(int(r["Request Count"]) for r in http),
                       failures=sum(int(r["Failure Count"]) for r in http),
                       rps=sum(float(r["Requests/s"]) for r in http),
                       latency_ms={p: float(query[f"{p[1:]}%"]) for p in ("p50", "p95", "p99")},
                       query_requests=int(query["Request Count"]),
                       x_cache={r["Name"]: int(r["Request Count"]) for r in rows if r["Type"] == CACHE_TYPE},
                       total_entries=sum(int(r["Request Count"]) for r in rows if r["Name"] == "Aggregated"))


def read_worker_requests(path: Path) -> list[int]:
    """``Request Count`` per worker (ordered by worker index) from ``<prefix>_workers.csv``;
    :class:`GateError` when the master wrote none."""
    try:
        rows = list(csv.DictReader(Path(path).open(newline="")))
    except OSError as error:
        raise GateError(f"the Locust master wrote no per-worker CSV ({path}): {error}") from None
    return [int(r["Request Count"]) for r in sorted(rows, key=lambda r: int(r["Worker"]))]


def tier_buckets(metrics_text: str) -> Buckets:
    """The cumulative buckets of :data:`HISTOGRAM` per ``tier`` label."""
    buckets: Buckets = defaultdict(dict)
    for family in text_string_to_metric_families(metrics_text):
        if family.name != HISTOGRAM:
            continue
        for sample in family.samples:
            if sample.name == f"{HISTOGRAM}_bucket":
                buckets[sample.labels["tier"]][float(sample.labels["le"])] = sample.value
    return dict(buckets)


def bucket_delta(after: Buckets, before: Buckets) -> Buckets:
    """``after - before`` bucket by bucket (observations made between the two scrapes)."""
    return {tier: {le: n - before.get(tier, {}).get(le, 0.0) for le, n in bounds.items()}
            for tier, bounds in after.items()}


def merge_buckets(per_replica: list[Buckets]) -> Buckets:
    """The sum of several replicas' buckets, tier by tier and bound by bound (a tier or bound
    only some replicas have counts 0 on the others)."""
    merged: Buckets = defaultdict(lambda: defaultdict(float))
    for buckets in per_replica:
        for tier, bounds in buckets.items():
            for le, n in bounds.items():
                merged[tier][le] += n
    return {tier: dict(bounds) for tier, bounds in merged.items()}


def answered(buckets: Buckets) -> int:
    """Queries observed in ``buckets``: every tier's ``+Inf`` count (hits and origin answers)."""
    return int(sum(bounds.get(float("inf"), 0.0) for bounds in buckets.values()))
