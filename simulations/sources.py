"""Where the simulation's requests come from: :class:`WorkloadSource` and :class:`TraceSource`.

A source gives the engine requests as ``(times, ids)`` arrays (seconds from the start, dense
object ids), per-object codes into :data:`~wedcache.policy.VENDOR_TYPES` and
:data:`~wedcache.policy.MARKET_TIERS`, the data changes of the run, and, for one object, the
``(organization, query, weddingContext)`` a client would send — which the engine turns into a
cache key and an entry through the cache's own functions.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from wedcache.policy import MARKET_TIERS, VENDOR_TYPES, Policy

from .workload import LOCATIONS, DataChanges, Workload, WorkloadSpec, org_name, sample_batches, sample_keys

if TYPE_CHECKING:
    from .trace import Trace

VENDOR_INDEX = {name: code for code, name in enumerate(VENDOR_TYPES)}
TIER_INDEX = {name: code for code, name in enumerate(MARKET_TIERS)}


def _recode(names: tuple[str, ...] | list[str], codes: np.ndarray, index: dict[str, int]) -> np.ndarray:
    """Codes into ``names`` turned into codes into the global ``index``."""
    table = np.array([index[name] for name in names], dtype=np.int8)
    return table[np.asarray(codes)]


class WorkloadSource:
    """Requests of a :class:`~simulations.workload.Workload`, spatially sampled at ``sample_rate``.

    With paraphrase or near-miss variants (:mod:`simulations.semantic_workload`) an object is
    one variant of a query: object ``q * per_query + v``; :attr:`answer_ids` gives each
    object's ground-truth answer. Queries, not variants, are sampled, so a sampled query
    keeps all its variants. Without variants objects are the catalogue's query ids.

    :param namespace: prefix of organization names (a live run isolates itself with it).
    """

    def __init__(self, workload: Workload, sample_rate: float = 1.0, namespace: str = ""):
        self.workload, self.sample_rate, self.namespace = workload, sample_rate, namespace
        catalogue, variants = workload.catalogue, workload.variants
        self.variants = variants if variants.enabled else None
        per_query = variants.per_query
        self.n_objects = catalogue.size * per_query
        self.vendor_codes = _recode(catalogue.vendor_names, catalogue.vendor_codes, VENDOR_INDEX)
        self.tier_codes = _recode(catalogue.tier_names, catalogue.tier_codes, TIER_INDEX)
        self.answer_ids = variants.answer_ids(catalogue.size)
        """Per object, the object whose answer is its true answer (itself without variants)."""
        if self.variants is not None:
            self.vendor_codes, self.tier_codes = np.repeat(self.vendor_codes, per_query), np.repeat(self.tier_codes, per_query)
        self.changes = workload.changes
        self.duration_seconds = workload.spec.duration_seconds
        self.subset = workload.sampled_subset(sample_rate)
        self.scale = 1.0 / self.subset.mass if self.subset.mass > 0 else 1.0
        """Requests in the full workload per sampled request (its expected value)."""

    def object_ids(self) -> np.ndarray:
        """The ids the sampled run can ask for."""
        ids = self.subset.ids
        return ids if self.variants is None else self.variants.object_ids(ids)

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        batches = self.workload.batches() if self.sample_rate >= 1 else self.workload.sampled_batches(self.sample_rate)
        if self.variants is None:
            return batches
        return self.variants.apply(batches, self.workload.variants_rng)

    def organizations(self) -> set[str]:
        return {self.namespace + org_name(i) for i in range(self.workload.spec.organizations)}

    def describe(self, object_id: int) -> tuple[str, str, dict[str, Any], int | None]:
        """``(organization, query, weddingContext, size_bytes or None)`` of one object."""
        cat = self.workload.catalogue
        if self.variants is None:
            query_id, query, context = object_id, cat.query(object_id), cat.context(object_id)
        else:
            query_id, query, context = self.variants.describe(cat, object_id)
        return self.namespace + org_name(int(cat.org_codes[query_id])), query, context, None


class TraceSource:
    """Requests replayed from a :class:`~simulations.trace.Trace` (``--trace FILE.csv``).

    The data changes follow ``spec`` (its duration is set to the trace's span). Each object is
    asked as the query ``trace object <key>`` with a context of its vendor type and a location
    in its market tier.
    """

    def __init__(self, trace: Trace, spec: WorkloadSpec, policy: Policy, rng: np.random.Generator,
                 sample_rate: float = 1.0, namespace: str = ""):
        self.trace, self.sample_rate, self.namespace = trace, sample_rate, namespace
        self.n_objects = trace.n_objects
        self.vendor_codes = np.array([VENDOR_INDEX[v] for v in trace.vendor_types], dtype=np.int8)
        self.tier_codes = np.array([TIER_INDEX[t] for t in trace.market_tiers], dtype=np.int8)
        span = float(trace.times[-1]) + 1.0 if len(trace) else 1.0
        self.duration_seconds = span
        self.changes = DataChanges(replace(spec, duration_seconds=span), policy, rng)
        ids = np.arange(self.n_objects)
        self._kept = ids[sample_keys(ids, sample_rate)] if sample_rate < 1 else ids
        kept_requests = int(sample_keys(trace.ids, sample_rate).sum()) if sample_rate < 1 else len(trace)
        self.scale = len(trace) / kept_requests if kept_requests else 1.0
        self.answer_ids = np.arange(self.n_objects)
        """A trace's objects are distinct questions: each is its own true answer."""

    def object_ids(self) -> np.ndarray:
        return self._kept

    def batches(self, chunk: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        times, ids = self.trace.times, self.trace.ids
        chunks = ((times[b:b + chunk], ids[b:b + chunk]) for b in range(0, len(times), chunk))
        return sample_batches(chunks, self.sample_rate) if self.sample_rate < 1 else chunks

    def organizations(self) -> set[str]:
        return {self.namespace + org for org in set(self.trace.org_ids)}

    def describe(self, object_id: int) -> tuple[str, str, dict[str, Any], int | None]:
        trace = self.trace
        tier = trace.market_tiers[object_id]
        context = {"location": LOCATIONS[tier][0], "vendorTypes": [trace.vendor_types[object_id]]}
        size = int(trace.sizes[object_id]) if trace.sizes is not None else None
        return self.namespace + trace.org_ids[object_id], f"trace object {trace.keys[object_id]}", context, size
