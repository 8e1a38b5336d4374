"""The simulation engine: the real cache in simulated time, without a process per request.

SimPy owns time. One driver process walks the requests of a :mod:`~simulations.sources`
source in time order; before a request it yields to SimPy only when a SimPy event is due
first (``env.peek()``), otherwise it just sets the clock — a lean event loop, so a year of
traffic runs in minutes. The sparse events are SimPy's: origin completions (one timeout per
computation, not per request), the hourly tick (seasonal scaling, memory samples).

Per request the driver calls :meth:`TieredCache.lookup <wedcache.cache.TieredCache.lookup>`
(the real read path: tiers, promotion, freshness, stale-while-revalidate). On a miss it
starts a computation on the origin — or, if one for that object is under way, the request
waits for it (single-flight, as ``get_or_compute`` does) — and on completion stores the
entry with the cache's own TTL policy (:meth:`~wedcache.cache.TieredCache.make_entry`,
:meth:`~wedcache.cache.TieredCache.store`). The origin is an M/G/c queue when the scenario
limits its concurrency (each computation takes the earliest free slot, first come first served).

A request's latency is the memory lookup's modeled time, plus what modeled tiers charged
to the clock (:class:`~simulations.clock.SimClock` debt), plus, on a miss, the wait for the
computation and the write-through. In a live run lookups and stores are timed instead.

With a semantic matcher (``[cache] semantic``; :attr:`System.semantic <simulations.model.System.semantic>`)
an exact miss first asks it for a near match, as :meth:`TieredCache.get_or_compute
<wedcache.cache.TieredCache.get_or_compute>` does: a match whose entry is fresh in some tier
is a hit (a *semantic* hit, noted per request with the matched object), else the origin
answers and the stored entry's vector is remembered. Vectors and entities are computed once
per object in :meth:`Engine.prepare` (one batch embedding), so a lookup only searches the
index. Without a matcher none of this runs: the miss handler is the exact one.
"""
from __future__ import annotations

import gc
import heapq
import time
from array import array
from math import nan
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import simpy

from wedcache.answering import infer_cache_type
from wedcache.context import parse_context
from wedcache.keys import cache_key, organization_uuid
from wedcache.origin import compose_answer

from .model import System
from .sampling import splitmix64

HIT_CODES = {"memory": 0, "redis": 1, "postgres": 2}
MISS_COLD, MISS_EXPIRED, MISS_EVICTED, COALESCED = 4, 5, 6, 7
"""Request outcomes besides hits: a first request, an entry that had expired, an entry
evicted before it expired, a wait for a computation already under way."""
HOUR = 3600.0


@dataclass(slots=True)
class Fill:
    """A computation under way for one object, and who waits for it."""

    object_id: int
    waiters: list = field(default_factory=list)
    """``(request index, arrival)`` of requests waiting for the answer."""
    stale_waiters: list = field(default_factory=list)
    """``(request index, arrival)`` of requests served stale meanwhile (for the counterfactual)."""


@dataclass
class Records:
    """Everything a run observed, per request (numpy arrays in arrival order) and per event."""

    t: np.ndarray
    object_id: np.ndarray
    code: np.ndarray
    latency_ms: np.ndarray
    created: np.ndarray
    """``created_at`` (seconds from start) of the entry a hit served; NaN otherwise."""
    grace: np.ndarray
    """Served inside the stale-while-revalidate grace window."""
    latency_without_grace_ms: np.ndarray
    overdue_seconds: np.ndarray
    """For each miss on an expired entry: how long after its expiry the request came."""
    origin_call_times: np.ndarray
    memory_samples: list[tuple[float, int, int]]
    setup_seconds: float
    loop_seconds: float
    stale: np.ndarray | None = None
    """Hits whose source data changed after the entry was stored (set by the caller, which
    knows the data changes)."""
    semantic: np.ndarray | None = None
    """With semantic matching: per request, the object whose entry a semantic hit served
    (-1 for every other request); ``None`` without it."""


class _Recorder:
    """Collects per-request outcomes in Python lists, turned into arrays batch by batch."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.lower_hits: list[tuple[int, int]] = []
        """``(request index, hit code)`` of hits below the memory tier (the rest are memory's)."""
        self.waits: list[tuple[int, float]] = []
        """``(request index, seconds)`` waited for a computation and its write-through."""
        self.debts: list[tuple[int, float]] = []
        """``(request index, seconds)`` charged by modeled (or timed live) tiers; most hits have none."""
        self.alt_waits: list[tuple[int, float]] = []
        self.grace: list[int] = []
        self.overdue: list[float] = []
        self.origin_calls: list[float] = []
        self.memory: list[tuple[float, int, int]] = []
        self.semantic: list[tuple[int, int]] = []
        """``(request index, matched object)`` of semantic hits."""

    def keep(self, times: np.ndarray, ids: np.ndarray, served: array, epoch: float) -> None:
        """One batch: ``served`` holds, per request, the ``created_at`` of the entry a hit served
        or minus the outcome code of a miss (one append of an unboxed double per request: the hot
        loop; numpy reads the buffer as it is)."""
        served = np.frombuffer(served, np.float64) if len(served) else np.empty(0)
        missed = served < 0
        code = np.where(missed, -served, HIT_CODES["memory"]).astype(np.int8)
        self.parts.append((times, ids, code, np.where(missed, nan, served - epoch)))

    def records(self, memory_draws: Callable[[int], np.ndarray] | None, setup: float, loop: float) -> Records:
        columns = list(zip(*self.parts)) if self.parts else [[np.empty(0)]] * 4
        t, ids, code, created = (np.concatenate(c) for c in columns)
        for index, hit_code in self.lower_hits:
            code[index] = hit_code
        latency = memory_draws(t.size) if memory_draws is not None else np.zeros(t.size)
        _add(latency, self.debts)
        _add(latency, self.waits)
        grace = np.zeros(t.size, bool)
        grace[np.asarray(self.grace, np.int64)] = True
        without = latency.copy()
        without[grace] = 0.0
        _add(without, self.alt_waits)
        return Records(t, ids.astype(np.int64), code, latency * 1000, created, grace, without * 1000,
                       np.asarray(self.overdue), np.asarray(self.origin_calls), self.memory, setup, loop)

    def semantic_matches(self, n: int) -> np.ndarray:
        """Per request, the object a semantic hit served, else -1."""
        matched = np.full(n, -1, np.int64)
        if self.semantic:
            index, objects = np.asarray(self.semantic, np.int64).T
            matched[index] = objects
        return matched


def _add(latency: np.ndarray, waits: list[tuple[int, float]]) -> None:
    if waits:
        index, seconds = np.asarray(waits).T
        np.add.at(latency, index.astype(np.int64), seconds)


class Engine:
    """Runs one simulation of ``system`` under the requests of ``source``.

    :param progress: called after each batch with ``(simulated seconds done, total)``.
    """

    def __init__(self, system: System, source: Any, progress: Callable[[float, float], None] | None = None):
        self.system, self.source, self.progress = system, source, progress
        self.env = simpy.Environment()
        self.cache, self.clock, self.origin = system.cache, system.clock, system.origin
        self.keys: list[str | None] = [None] * source.n_objects
        self.contexts: list[Any] = [None] * source.n_objects
        self.templates: list[Any] = [None] * source.n_objects
        """Per object: its cache key, its context, and the entry its answer makes (see :meth:`prepare`)."""
        self.inflight: dict[int, Fill] = {}
        self.last_expiry = array("d", [nan]) * source.n_objects
        """Per object: when its last stored answer expires (seconds from the start; NaN before the
        first). Unboxed doubles: a fill overwrites one in place instead of freeing a float."""
        self.instant = self.origin.instant and not system.live
        self.due = float("inf")
        """Time of the next SimPy event (cached ``env.peek()``; the driver yields at it)."""
        concurrency = system.origin_concurrency
        self.slots = [0.0] * concurrency if concurrency else None
        self.rec = _Recorder()
        self.allow_stale = any(self.cache.ttl.grace_seconds((v,)) > 0 for v in self.cache.policy.vendors)
        self.matcher = system.semantic
        self.asked: dict[int, tuple] = {}
        """With a matcher, per object: ``(organization, query, cache type, prepared)`` (see :meth:`prepare`)."""
        self.key_objects: dict[str, int] = {}
        """With a matcher: the object of each key (what a semantic hit served)."""

    # -- running -------------------------------------------------------------------------
    def run(self) -> Records:
        started = time.perf_counter()
        self.prepare()
        setup = time.perf_counter() - started
        self.env.process(self._drive())
        self.env.process(self._hourly())
        gc.disable()  # entries are acyclic; the collector would only rescan the cache
        try:
            self.env.run()
        finally:
            gc.enable()
        loop = time.perf_counter() - started - setup
        draws = self.system.memory_latency.draws if self.system.memory_latency is not None else None
        records = self.rec.records(draws, setup, loop)
        if self.matcher is not None:
            records.semantic = self.rec.semantic_matches(records.t.size)
        return records

    def prepare(self) -> None:
        """Build, once per object the (sampled) run can ask for, its cache key and the entry
        the origin's answer makes (through the cache: :meth:`~wedcache.cache.TieredCache.make_entry`);
        a fill stores that template renewed with the current time and TTL. With a matcher, also
        what it needs per object (:meth:`_prepare_semantic`)."""
        asked = []
        for object_id in self.source.object_ids().tolist():
            org, query, context, size = self.source.describe(object_id)
            org_uuid, ctx = organization_uuid(org), parse_context(context)
            cache_type = infer_cache_type(ctx)
            key = cache_key(org_uuid, query, ctx, cache_type)
            template = self.cache.make_entry(key, org_uuid, query, ctx,
                                             compose_answer(query, ctx, self.origin.model), cache_type)
            if size:
                template._size = size
            template.size  # noqa: B018  (measured once here; every renewed copy keeps it)
            self.keys[object_id], self.contexts[object_id], self.templates[object_id] = key, ctx, template
            if self.matcher is not None:
                asked.append((object_id, org_uuid, query, ctx, cache_type))
        if asked:
            self._prepare_semantic(asked)

    def _prepare_semantic(self, asked: list[tuple]) -> None:
        """Embed every object's question in one batch and read its entities, once: lookups
        and stores then reuse them (:class:`~wedcache.semantic.matcher.Prepared`)."""
        from wedcache.semantic.matcher import Prepared

        matcher = self.matcher
        vectors = matcher.embedder.embed([query for _, _, query, _, _ in asked])
        for (object_id, org, query, ctx, cache_type), vector in zip(asked, vectors):
            prepared = Prepared(vector, matcher.extractor.extract(query, ctx))
            self.asked[object_id] = (org, query, cache_type, prepared)
            self.key_objects[self.keys[object_id]] = object_id

    def _drive(self):
        """The hot loop: every line runs once per simulated request. A fresh memory hit is
        served inline (:meth:`TieredCache.memory_reader <wedcache.cache.TieredCache.memory_reader>`:
        the tier's ``get`` and the freshness test, nothing else); every other request goes
        through the rest of the cache's lookup. A request's index (for the few records kept per
        index) is ``base + len(served)``, computed only when needed."""
        env, clock, keys, rec = self.env, self.clock, self.keys, self.rec
        reader = self.cache.memory_reader(inline=not self.system.live)
        get, rest, allow_stale, epoch, miss = reader.get, self._lookup(reader.rest), self.allow_stale, clock.epoch, self._misses()
        debts, lower_hits, base = rec.debts, rec.lower_hits, 0
        due = self.due = env.peek()
        for times, ids in self.source.batches():
            served, slow = array("d"), 0  # see _Recorder.keep; slow: requests that were not inline hits
            serve = served.append
            for t, q in zip(times.tolist(), ids.tolist()):
                if t >= due:
                    yield env.timeout(t - env.now)
                    due = self.due = env.peek()
                key = keys[q]  # every id has a key: prepare()
                entry = get(key)
                if entry is not None and entry.expires_at > epoch + t:
                    serve(entry.created_at)
                    continue
                slow += 1
                clock.t = t
                found = rest(key, None, allow_stale, entry)
                if found is None:
                    serve(-miss(q, t, base + len(served)))
                    due = self.due  # a computation may have been scheduled
                else:
                    entry, tier = found
                    serve(entry.created_at)
                    if tier != "memory":
                        lower_hits.append((base + len(served) - 1, HIT_CODES[tier]))
                    if allow_stale and entry.expires_at <= epoch + t:  # served in the grace window
                        self._revalidate(q, t, base + len(served) - 1)
                        due = self.due
                if clock.debt:
                    debts.append((base + len(served) - 1, clock.debt))
                    clock.debt = 0.0
            reader.counters.hits += len(served) - slow
            base += len(served)
            rec.keep(times, ids, served, epoch)
            if self.progress is not None and len(times):
                self.progress(float(times[-1]), self.source.duration_seconds)

    def _lookup(self, rest: Callable) -> Callable:
        """The reader's ``rest`` of the lookup, timed on the wall clock in a live run (charged as debt)."""
        if not self.system.live:
            return rest
        clock, perf = self.clock, time.perf_counter

        def timed(key: str, max_age: float | None, allow_stale: bool, in_memory: Any):
            started = perf()
            try:
                return rest(key, max_age, allow_stale, in_memory)
            finally:
                clock.debt += perf() - started
        return timed

    def _hourly(self):
        """Every simulated hour: seasonal scaling, then a memory sample."""
        env, automator, memory = self.env, self.system.automator, self.system.memory
        while env.now <= self.source.duration_seconds:
            self.clock.t = max(self.clock.t, env.now)
            automator.tick()
            stats = memory.stats()
            self.rec.memory.append((env.now, stats["bytes"], stats["entries"]))
            yield env.timeout(HOUR)

    # -- misses and computations -----------------------------------------------------------
    def _misses(self) -> Callable[[int, float, int], int]:
        """The hot loop's miss handler: ``miss(q, t, index)`` is the outcome of request ``index``
        (object ``q`` at ``t``), which missed; it starts or joins the computation of the answer.

        A closure over everything it reads, so a miss costs one call before the cache's own:
        with an instant origin the answer is stored at once (what :meth:`_store_answer` does,
        inline), and the request waits only for the write-through (debt, if modeled tiers charge)."""
        inflight, last_expiry, overdue, calls = self.inflight, self.last_expiry, self.rec.overdue, self.rec.origin_calls
        templates, contexts, epoch = self.templates, self.contexts, self.clock.epoch
        store, entry_ttl, instant, compute = self.cache.store, self.cache.entry_ttl, self.instant, self._compute

        def miss(q: int, t: float, index: int) -> int:
            fill = inflight.get(q) if inflight else None  # empty while the origin is instant
            if fill is not None:
                fill.waiters.append((index, t))
                return COALESCED
            last = last_expiry[q]
            if last != last:
                outcome = MISS_COLD
            elif t >= last:
                outcome = MISS_EXPIRED
                overdue.append(t - last)
            else:
                outcome = MISS_EVICTED
            if instant:
                calls.append(t)
                now, template = epoch + t, templates[q]
                entry = template.renewed(now, now + entry_ttl(template.key, contexts[q]))
                store(entry)
                last_expiry[q] = entry.expires_at - epoch
            else:
                compute(q, t, Fill(q, [(index, t)]))
            return outcome
        return miss if self.matcher is None else self._semantic_misses(miss)

    def _semantic_misses(self, miss: Callable[[int, float, int], int]) -> Callable[[int, float, int], float]:
        """``miss`` preceded by a near-match lookup (with a matcher only).

        A match whose entry some tier holds fresh is a hit: the handler returns minus its
        ``created_at`` (the hot loop serves ``-miss(…)``, so the request is recorded as a hit
        with that entry's age) and notes the matched object. A match whose entry is gone is
        forgotten, as the cache does. Otherwise ``miss`` runs; an instant store is remembered
        at once (a computation under way is remembered when it lands: :meth:`_store_answer`)."""
        matcher, lookup, asked, key_objects = self.matcher, self.cache.lookup, self.asked, self.key_objects
        matched, lower_hits, instant, remember = self.rec.semantic, self.rec.lower_hits, self.instant, self._remember

        def semantic_miss(q: int, t: float, index: int) -> float:
            org, query, cache_type, prepared = asked[q]
            match = matcher.match(org, query, None, cache_type, prepared)
            if match is not None:
                found = lookup(match.key)
                if found is not None:
                    entry, tier = found
                    matched.append((index, key_objects[match.key]))
                    if tier != "memory":
                        lower_hits.append((index, HIT_CODES[tier]))
                    return -entry.created_at
                matcher.forget(match.key)
            outcome = miss(q, t, index)
            if instant and outcome != COALESCED:
                remember(q)
            return outcome
        return semantic_miss

    def _remember(self, q: int) -> None:
        """Index object ``q``'s stored entry (its vector, computed in :meth:`prepare`)."""
        org, query, cache_type, prepared = self.asked[q]
        self.matcher.remember(org, self.keys[q], query, None, cache_type, prepared)

    def _revalidate(self, q: int, t: float, index: int) -> None:
        """A stale answer was served: refresh it once in the background."""
        self.rec.grace.append(index)
        fill = self.inflight.get(q)
        starting = fill is None
        if starting:
            fill = Fill(q)
        fill.stale_waiters.append((index, t))
        if starting:
            self._compute(q, t, fill)

    def _compute(self, q: int, t: float, fill: Fill) -> None:
        """Ask the origin at ``t``; the answer lands when its latency (and queue) has passed."""
        self.rec.origin_calls.append(t)
        latency = self.origin.latency_seconds()
        start = t
        if self.slots is not None:
            start = max(t, heapq.heappop(self.slots))
            heapq.heappush(self.slots, start + latency)
        done = start + latency
        if done <= t:
            self._complete(fill, t)
            return
        self.inflight[q] = fill
        self.env.timeout(done - self.env.now).callbacks.append(lambda _event: self._land(fill, done))
        self.due = min(self.due, done)

    def _land(self, fill: Fill, done: float) -> None:
        self.clock.t = done
        del self.inflight[fill.object_id]
        self._complete(fill, done)

    def _complete(self, fill: Fill, now: float) -> None:
        """Store the answer (write-through) and release everyone waiting for it."""
        clock = self.clock
        started = time.perf_counter() if self.system.live else 0.0
        self._store_answer(fill.object_id, self.clock.now())
        store = (time.perf_counter() - started) if self.system.live else clock.debt
        clock.debt = 0.0
        for index, arrival in fill.waiters:
            if now > arrival or store:
                self.rec.waits.append((index, now - arrival + store))
        for index, arrival in fill.stale_waiters:
            self.rec.alt_waits.append((index, now - arrival + store))

    def _store_answer(self, q: int, now: float) -> None:
        """Write object ``q``'s answer through every tier — its template renewed with ``now``
        (the clock's time) and the cache's TTL — and note when it will expire."""
        entry = self.templates[q].renewed(now, now + self.cache.entry_ttl(self.keys[q], self.contexts[q]))
        self.cache.store(entry)
        self.last_expiry[q] = entry.expires_at - self.clock.epoch
        if self.matcher is not None:
            self._remember(q)


def hash_groups(object_ids: np.ndarray, groups: int = 10) -> np.ndarray:
    """A stable group per object (for the sampling error: objects, not requests, are sampled)."""
    return (splitmix64(np.asarray(object_ids, np.uint64) ^ np.uint64(0xA5A5A5A5)) % np.uint64(groups)).astype(np.int8)
