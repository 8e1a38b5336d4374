"""API replicas under the policy's HPA: a service-time model and a Horizontal Pod Autoscaler model.

**Service time.** One request costs CPU: :attr:`ServiceCalibration.hit_cpu_ms` when the cache
answers, :attr:`~ServiceCalibration.miss_cpu_ms` when it goes to the origin (the fill and the
write-through; waiting for the origin costs no CPU). An hour with load ``L`` requests/s and hit
rate ``h`` needs ``L * (h * hit + (1 - h) * miss)`` cores.

**HPA.** The source document's autoscaler keeps CPU at ``replicas.target_cpu_utilization``
(70 %) with ``min_replicas``..``max_replicas`` (2-20) replicas of ``cores_per_replica`` cores:
``desired = ceil(cores needed / (cores_per_replica * target))``, bounded. Kubernetes scales up
within about a minute (15 s sync) and scales down only to the highest recommendation of its
stabilisation window; at the model's hourly step that is :attr:`HpaLag.up_hours` (default 0)
and :attr:`HpaLag.down_window_hours` (default 1). An hour is *saturated* when the CPU needed
exceeds what its replicas have (``max_replicas`` reached), or what the previous hour's replicas
had (the load rose faster than the HPA: the hour starts overloaded).

The calibration defaults are measured figures (see :data:`DEFAULT_CALIBRATION`'s ``source``);
override them with :meth:`ServiceCalibration.with_overrides` or a TOML table of the same keys.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ..policy import ReplicaPolicy


@dataclass(frozen=True)
class ServiceCalibration:
    """Per-request CPU of the service and the size of one replica."""

    hit_cpu_ms: float = 2.0
    miss_cpu_ms: float = 4.0
    cores_per_replica: float = 2.0
    source: str = (
        "make bench-service: 1,713 requests/s on 2 cores with every answer a memory hit "
        "(Locust sharing the cores), i.e. <= 1.2 ms CPU per hit; wedcache gate runs on the same "
        "2-core box (misses write through Redis and PostgreSQL) reached ~300-500 requests/s, "
        "~2-4 ms per request: hit 2 ms and miss 4 ms are the conservative ends. "
        "cores_per_replica = resources.production.cpu_cores (4) / replicas.min_replicas (2).")

    def __post_init__(self) -> None:
        for name in ("hit_cpu_ms", "miss_cpu_ms", "cores_per_replica"):
            if not getattr(self, name) > 0:
                raise ValueError(f"calibration.{name}: must be > 0, got {getattr(self, name)}")

    def with_overrides(self, **values: Any) -> "ServiceCalibration":
        """This calibration with some fields replaced (unknown names raise ``ValueError``)."""
        unknown = sorted(set(values) - set(asdict(self)))
        if unknown:
            raise ValueError(f"calibration.{unknown[0]}: unknown key")
        return replace(self, **values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_gate(cls, gate: dict[str, Any], base: "ServiceCalibration | None" = None) -> "ServiceCalibration":
        """Calibrated from a load test: a ``gate.json`` (``wedcache gate run``) measured the server's
        CPU per request ``c`` at hit rate ``h``. One run gives one equation, so the miss/hit CPU
        ratio of ``base`` (default 2) is kept: ``hit = c / (h + ratio (1 - h))``, ``miss = ratio hit``.

        :raises ValueError: naming the missing or unusable field."""
        base = base or cls()
        c, h = gate.get("server_cpu_ms_per_request"), gate.get("hit_rate")
        if not isinstance(c, (int, float)) or c <= 0:
            raise ValueError("gate.json: server_cpu_ms_per_request is missing or not > 0 (a gate run writes it)")
        if not isinstance(h, (int, float)) or not 0 <= h <= 1:
            raise ValueError("gate.json: hit_rate is missing or not in [0, 1]")
        ratio = base.miss_cpu_ms / base.hit_cpu_ms
        hit = c / (h + ratio * (1 - h))
        return replace(base, hit_cpu_ms=hit, miss_cpu_ms=ratio * hit,
                       source=f"gate run ({gate.get('profile')}, {gate.get('requests')} requests): "
                              f"{c:.3g} ms server CPU per request at hit rate {h:.3f}; miss/hit CPU ratio "
                              f"{ratio:g} kept from the defaults")


DEFAULT_CALIBRATION = ServiceCalibration()


@dataclass(frozen=True)
class HpaLag:
    """How the HPA lags load, in whole hours (the model's step)."""

    up_hours: int = 0
    down_window_hours: int = 1

    def __post_init__(self) -> None:
        if self.up_hours < 0 or self.down_window_hours < 0:
            raise ValueError("hpa lag: up_hours and down_window_hours must be >= 0")


def cpu_cores_needed(load_rps: np.ndarray, hit_rate: np.ndarray, cal: ServiceCalibration) -> np.ndarray:
    """Cores busy per hour: load x the hit/miss mix of CPU per request."""
    load, hits = np.asarray(load_rps, float), np.nan_to_num(np.asarray(hit_rate, float), nan=1.0)
    per_request = (hits * cal.hit_cpu_ms + (1 - hits) * cal.miss_cpu_ms) / 1000.0
    return load * per_request


def desired_replicas(cores: np.ndarray, cal: ServiceCalibration, replicas: ReplicaPolicy) -> np.ndarray:
    """The HPA's recommendation per hour: ``ceil(cores / (cores_per_replica x target))``, bounded."""
    raw = np.ceil(np.asarray(cores, float) / (cal.cores_per_replica * replicas.target_cpu_utilization) - 1e-9)
    return np.clip(raw, replicas.min_replicas, replicas.max_replicas).astype(int)


def hpa_replicas(desired: np.ndarray, lag: HpaLag = HpaLag()) -> np.ndarray:
    """Replicas running per hour: the highest recommendation of ``[h - up - window, h - up]``.

    Scaling up waits ``lag.up_hours``; scaling down waits until the recommendations of the
    stabilisation window (``lag.down_window_hours``) have all come down."""
    desired = np.asarray(desired, int)
    out = np.empty_like(desired)
    for h in range(desired.size):
        newest = max(0, h - lag.up_hours)
        out[h] = desired[max(0, newest - lag.down_window_hours): newest + 1].max()
    return out


@dataclass(frozen=True)
class ReplicaPlan:
    """The HPA's hours: replicas, CPU utilisation and saturated hours."""

    replicas: np.ndarray
    cpu_utilization: np.ndarray
    saturated: np.ndarray

    @property
    def replica_hours(self) -> float:
        return float(self.replicas.sum())

    @property
    def peak(self) -> int:
        return int(self.replicas.max()) if self.replicas.size else 0


def plan_replicas(load_rps: np.ndarray, hit_rate: np.ndarray, replicas: ReplicaPolicy,
                  cal: ServiceCalibration = DEFAULT_CALIBRATION, lag: HpaLag = HpaLag()) -> ReplicaPlan:
    """The HPA over hourly ``load_rps`` (requests/s) and ``hit_rate``."""
    cores = cpu_cores_needed(load_rps, hit_rate, cal)
    running = hpa_replicas(desired_replicas(cores, cal, replicas), lag)
    capacity = running * cal.cores_per_replica
    before = np.concatenate(([running[0]] if running.size else [], running[:-1])) * cal.cores_per_replica
    saturated = (cores > capacity) | (cores > before)
    return ReplicaPlan(running, cores / capacity, saturated)


def max_load_rps(replicas: ReplicaPolicy, cal: ServiceCalibration = DEFAULT_CALIBRATION,
                 hit_rate: float = 1.0) -> float:
    """The load ``max_replicas`` serve at the CPU target (for capacity planning)."""
    per_request = (hit_rate * cal.hit_cpu_ms + (1 - hit_rate) * cal.miss_cpu_ms) / 1000.0
    return replicas.max_replicas * cal.cores_per_replica * replicas.target_cpu_utilization / per_request


def replicas_for(load_rps: float, hit_rate: float, replicas: ReplicaPolicy,
                 cal: ServiceCalibration = DEFAULT_CALIBRATION) -> int:
    """The HPA's steady-state replicas for one load (for capacity planning)."""
    cores = cpu_cores_needed(np.array([load_rps]), np.array([hit_rate]), cal)
    return int(desired_replicas(cores, cal, replicas)[0]) if math.isfinite(load_rps) else replicas.max_replicas
