"""Service metrics: :class:`ServiceMetrics`, :func:`render_metrics`, :class:`MetricRow`, :class:`MetricsBuffer`.

:class:`ServiceMetrics` owns the Prometheus series the source document's dashboards query
(``ai_cache_requests_total``, ``ai_cache_hits_total``, ``ai_cache_response_time_ms``,
``ai_cache_seasonal_load_factor``, ``ai_cache_memory_usage_bytes``,
``ai_cache_memory_limit_bytes``) plus ``ai_cache_errors_total``, in a registry of its own.
With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before
the workers start: every process then writes its values there, and :func:`render_metrics`
adds them up (counters and histograms summed, memory gauges summed over live workers, the
load factor as their maximum).

:class:`MetricsBuffer` stores one row per request in ``ai_cache_performance_metrics``:
``metric_type`` is ``'hit'`` or ``'miss'`` and ``metric_value`` is the response time in
milliseconds (``response_time_ms`` holds it rounded to an integer); ``tier``,
``vendor_type`` and ``season`` are the columns ``0004_metrics.sql`` adds. ``record`` only
appends to memory; a daemon thread writes batches with ``COPY``.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import psycopg
import psycopg_pool
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest, multiprocess

from .tiers.postgres import _ENSURE_ORG, RECONNECT_TIMEOUT

if TYPE_CHECKING:
    from .scaling import ScalingEvent

log = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
RESPONSE_MS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
"""Histogram bounds in milliseconds: a memory hit (0.1 ms) to a slow origin answer (5 s)."""
NO_VENDOR = "none"
"""The ``vendor_type`` label of a request that named no vendor type."""
ORIGIN = "origin"
"""The ``tier`` label of a miss's response time (the origin answered)."""


def multiprocess_dir() -> str | None:
    """The folder of prometheus_client's multiprocess mode, or ``None`` in single-process mode."""
    return os.environ.get(MULTIPROC_DIR_ENV) or None


def render_metrics(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """The Prometheus text exposition and its content type.

    In multiprocess mode the values of every process in :func:`multiprocess_dir` are
    aggregated (``registry`` is not read); otherwise ``registry`` is rendered (default:
    prometheus_client's global ``REGISTRY``).
    """
    directory = multiprocess_dir()
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry or REGISTRY), CONTENT_TYPE_LATEST


class ServiceMetrics:
    """The service's Prometheus series, registered in ``registry`` (default: a new private one).

    In multiprocess mode, prometheus_client decides where values live when it is first
    imported: ``PROMETHEUS_MULTIPROC_DIR`` must be set before the process starts.
    """

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        series = {"registry": self.registry}
        self.requests = Counter("ai_cache_requests", "Queries answered, by market tier and primary vendor type.",
                                ("market_tier", "vendor_type"), **series)
        self.hits = Counter("ai_cache_hits", "Queries answered from a cache tier (memory, redis, postgres).",
                            ("tier", "market_tier", "vendor_type"), **series)
        self.response_time = Histogram("ai_cache_response_time_ms", "Response time in milliseconds, by the tier "
                                       "that answered ('origin' for a miss).", ("tier",),
                                       buckets=RESPONSE_MS_BUCKETS, **series)
        self.load_factor = Gauge("ai_cache_seasonal_load_factor", "Current traffic against the baseline.",
                                 multiprocess_mode="livemax", **series)
        self.memory_usage = Gauge("ai_cache_memory_usage_bytes", "Bytes held by the memory tier.",
                                  multiprocess_mode="livesum", **series)
        self.memory_limit = Gauge("ai_cache_memory_limit_bytes", "The memory tier's byte budget.",
                                  multiprocess_mode="livesum", **series)
        self.errors = Counter("ai_cache_errors", "Errors answered, by error code.", ("code",), **series)
        self.scaling_events = Counter("ai_cache_scaling_events", "Seasonal scaling plans applied, by season.",
                                      ("season",), **series)

    def observe_request(self, *, tier: str | None, market_tier: str, vendor_type: str | None,
                        response_ms: float) -> None:
        """Count one answered query; ``tier`` is ``memory|redis|postgres``, or ``None`` for a miss."""
        vendor = vendor_type or NO_VENDOR
        self.requests.labels(market_tier, vendor).inc()
        if tier is not None:
            self.hits.labels(tier, market_tier, vendor).inc()
        self.response_time.labels(tier or ORIGIN).observe(response_ms)

    def set_memory(self, used_bytes: int, limit_bytes: int) -> None:
        self.memory_usage.set(used_bytes)
        self.memory_limit.set(limit_bytes)

    def set_load_factor(self, factor: float) -> None:
        self.load_factor.set(factor)

    def count_error(self, code: str) -> None:
        self.errors.labels(code).inc()

    def count_scaling_event(self, event: "ScalingEvent") -> None:
        """One applied seasonal plan (a :class:`~wedcache.scaling.ScalingEvent`)."""
        self.scaling_events.labels(event.season).inc()

    def render(self) -> tuple[bytes, str]:
        """:func:`render_metrics` of this registry (of every process in multiprocess mode)."""
        return render_metrics(self.registry)

    def close(self) -> None:
        """In multiprocess mode, drop this process's live gauges (call when a worker stops)."""
        directory = multiprocess_dir()
        if directory:
            multiprocess.mark_process_dead(os.getpid(), directory)


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One answered request, as :class:`MetricsBuffer` stores it."""

    organization_id: str
    """The organization's UUID."""
    recorded_at: float
    """Epoch seconds, read from the cache's clock."""
    cache_key: str
    tier: str | None
    """``memory``, ``redis``, ``postgres``, or ``None`` for a miss."""
    hit: bool
    response_time_ms: float
    market_tier: str
    vendor_type: str | None
    """The request's primary (first) vendor type, or ``None``."""
    season: str


_COLUMNS = ("organization_id", "metric_type", "metric_value", "recorded_at", "cache_key", "response_time_ms",
            "market_tier", "tier", "vendor_type", "season")
_COPY = f"COPY ai_cache_performance_metrics ({', '.join(_COLUMNS)}) FROM STDIN"
_RETRYABLE = (psycopg.OperationalError, OSError)
"""The database is down, slow or restarting (pool timeouts included): keep the rows and retry."""
_REJECTED = (psycopg.Error, TypeError, ValueError, OverflowError)
"""Any other database error, or a row that cannot be converted: retrying would fail again, so drop the batch."""


def _copy_values(row: MetricRow) -> tuple:
    """``row`` in ``_COLUMNS`` order."""
    return (row.organization_id, "hit" if row.hit else "miss", row.response_time_ms,
            datetime.fromtimestamp(row.recorded_at, timezone.utc), row.cache_key, round(row.response_time_ms),
            row.market_tier, row.tier, row.vendor_type, row.season)


class MetricsBuffer:
    """Buffers :class:`MetricRow` s in memory and writes them to PostgreSQL in batches.

    A daemon thread writes when ``batch_size`` rows are waiting or every ``flush_interval``
    seconds. Each batch is one transaction: the organizations it references (inserted if
    missing), then one ``COPY``. While the database is down, at most ``max_rows`` rows are
    kept (the oldest are dropped and counted in :attr:`dropped`) and a warning is logged
    once per outage; nothing is raised.

    :param database: a ``psycopg_pool.ConnectionPool`` (left open by :meth:`close`), or a
        ``postgresql://`` URL for a pool of the buffer's own.
    :param batch_size: most rows per ``COPY``; this many waiting rows wake the writer.
    :param flush_interval: seconds between writes of whatever is waiting.
    :param max_rows: most rows kept in memory.
    :param timeout: seconds a write waits for a pool connection.
    """

    def __init__(self, database: psycopg_pool.ConnectionPool | str, *, batch_size: int = 500,
                 flush_interval: float = 1.0, max_rows: int = 100_000, timeout: float = 2.0):
        if batch_size < 1 or max_rows < 1:
            raise ValueError("batch_size and max_rows must be at least 1")
        self.batch_size, self.max_rows, self.timeout = batch_size, max_rows, timeout
        self._owns_pool = isinstance(database, str)
        self._pool = _open_pool(database, timeout) if self._owns_pool else database
        self._rows: deque[MetricRow] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake, self._stopping = threading.Event(), threading.Event()
        self.written = 0
        """Rows written so far."""
        self.batches = 0
        """``COPY`` batches written so far."""
        self.dropped = 0
        """Rows dropped so far (buffer full, or rejected by the database)."""
        self._failing = self._dropping = False
        self._writer = threading.Thread(target=self._run, args=(flush_interval,), name="wedcache-metrics-flush",
                                        daemon=True)
        self._writer.start()

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        return len(self._rows)

    def record(self, row: MetricRow) -> None:
        """Buffer ``row`` (O(1); never touches the database, never raises)."""
        with self._lock:
            full = len(self._rows) >= self.max_rows
            if full:
                self._rows.popleft()
                self.dropped += 1
            self._rows.append(row)
            waiting = len(self._rows)
        if full and not self._dropping:
            self._dropping = True
            log.warning("metrics buffer full (%d rows): dropping the oldest until the database answers", self.max_rows)
        if waiting >= self.batch_size:
            self._wake.set()

    def flush(self) -> int:
        """Write every waiting row now, ``batch_size`` at a time; returns how many were written.

        On a database error the unwritten rows stay buffered and a warning is logged.
        """
        with self._flush_lock:
            before = self.written
            while batch := self._take():
                if not self._write(batch):
                    break
            return self.written - before

    def close(self) -> None:
        """Stop the writer, write what is waiting (if the database answers), close an owned pool."""
        self._stopping.set()
        self._wake.set()
        self._writer.join()
        self.flush()
        if self._owns_pool:
            self._pool.close()

    # -- internals ---------------------------------------------------------------------
    def _run(self, interval: float) -> None:
        while True:
            self._wake.wait(interval)
            if self._stopping.is_set():
                return
            self._wake.clear()
            self.flush()
            if self._failing:
                self._stopping.wait(interval)  # no retry storm while the database is down

    def _take(self) -> list[MetricRow]:
        with self._lock:
            return [self._rows.popleft() for _ in range(min(self.batch_size, len(self._rows)))]

    def _restore(self, batch: list[MetricRow]) -> None:
        """Put an unwritten batch back in front, keeping at most ``max_rows`` (the newest)."""
        with self._lock:
            self._rows.extendleft(reversed(batch))
            excess = max(0, len(self._rows) - self.max_rows)
            for _ in range(excess):
                self._rows.popleft()
            self.dropped += excess

    def _write(self, batch: list[MetricRow]) -> bool:
        """Write one batch; ``False`` when the database is unavailable (the batch is restored)."""
        try:
            self._copy(batch)
        except _RETRYABLE as error:
            self._restore(batch)
            if not self._failing:
                log.warning("metrics database unavailable (%s): keeping up to %d rows in memory", error,
                            self.max_rows)
            self._failing = True
            return False
        except _REJECTED as error:
            with self._lock:
                self.dropped += len(batch)
            log.error("a batch of %d metric rows could not be written and was dropped: %s", len(batch), error)
            return True
        self.written += len(batch)
        self.batches += 1
        if self._failing or self._dropping:
            log.info("metrics database answers again (%d rows dropped so far)", self.dropped)
        self._failing = self._dropping = False
        return True

    def _copy(self, batch: list[MetricRow]) -> None:
        organizations = sorted({row.organization_id for row in batch})  # sorted: rows lock in one order
        with self._pool.connection(self.timeout) as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(_ENSURE_ORG, [(org,) for org in organizations])
            with cursor.copy(_COPY) as copy:
                for row in batch:
                    copy.write_row(_copy_values(row))


def _open_pool(url: str, timeout: float) -> psycopg_pool.ConnectionPool:
    kwargs = {"connect_timeout": 2, "application_name": "wedcache-metrics", "options": "-c statement_timeout=30000"}
    return psycopg_pool.ConnectionPool(url, kwargs=kwargs, min_size=1, max_size=2, open=True, timeout=timeout,
                                       reconnect_timeout=RECONNECT_TIMEOUT, name="wedcache-metrics")
