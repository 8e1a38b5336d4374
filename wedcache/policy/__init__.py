"""The policy: market tiers, vendor TTLs, seasons, SLA targets and rate-limit plans, as data.

:func:`load_policy` reads the shipped ``default.toml`` and merges a user file over it key by
key (``AI_CACHE_POLICY_FILE``). :class:`Policy` validates strictly: an unknown key or a
value of the wrong type raises :class:`~wedcache.errors.PolicyError` naming the key path,
e.g. ``vendors.florist.baseTtl``. Tuners write the same format (:func:`dump_policy`).
"""
from __future__ import annotations

import copy
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (AfterValidator, BaseModel, ByteSize, ConfigDict, Field, TypeAdapter, ValidationError,
                      field_validator, model_validator)

from ..errors import PolicyError

DEFAULT_POLICY_PATH = Path(__file__).with_name("default.toml")

MarketTier = Literal["tier_1", "tier_2", "tier_3"]
Season = Literal["spring", "summer", "fall", "winter"]
VendorType = Literal[
    "photographer", "videographer", "venue", "caterer", "florist", "band_dj",
    "wedding_planner", "baker", "transportation", "officiant", "hair_makeup", "other",
]
MARKET_TIERS: tuple[str, ...] = MarketTier.__args__
SEASONS: tuple[str, ...] = Season.__args__
VENDOR_TYPES: tuple[str, ...] = VendorType.__args__


_BYTES = TypeAdapter(ByteSize)


def _byte_size(value: str) -> str:
    _BYTES.validate_python(value)
    return value


SizeText = Annotated[str, AfterValidator(_byte_size)]
"""A size as written in the source document ("512MB", "1GB"), checked, kept as text."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class MarketTierPolicy(_Strict):
    markets: list[str]
    aliases: list[str] = []
    cacheSize: SizeText
    ttlMultiplier: float = Field(gt=0)
    priority: str

    @property
    def cache_size_bytes(self) -> int:
        """``cacheSize`` in bytes ("1GB" = 10**9, "1GiB" = 2**30)."""
        return int(_BYTES.validate_python(self.cacheSize))


class VendorPolicy(_Strict):
    baseTtl: int = Field(gt=0)
    volatilityFactor: float = Field(gt=0)
    stale_while_revalidate_seconds: float = Field(default=0.0, ge=0)
    """Grace after expiry during which the entry is served while it is refreshed."""


class SeasonPolicy(_Strict):
    months: list[int] = Field(min_length=1)
    traffic_multiplier: float = Field(gt=0)
    cache_size_multiplier: float = Field(gt=0)
    ttl_adjustment_factor: float = Field(gt=0)
    cost_factor: float = Field(gt=0)


class ResponseTimeTarget(_Strict):
    ms: float = Field(gt=0)
    percentile: float = Field(gt=0, le=100)


class DashboardTargets(_Strict):
    averageResponseTime: float
    p95ResponseTime: float
    p99ResponseTime: float


class SeasonalTarget(_Strict):
    hitRate: float = Field(ge=0, le=1)
    responseTime: float = Field(gt=0)
    scalingFactor: float = Field(gt=0)


class MarketTierTarget(_Strict):
    hitRate: float = Field(ge=0, le=1)
    responseTime: float = Field(gt=0)
    availability: float = Field(ge=0, le=1)


class SlaPolicy(_Strict):
    hit_rate: float = Field(ge=0, le=1)
    error_rate: float = Field(ge=0, le=1)
    availability: float = Field(ge=0, le=1)
    durability: float = Field(ge=0, le=1)
    concurrent_users: int = Field(gt=0)
    queries_per_second: float = Field(gt=0)
    response_time: dict[Literal["memory", "redis", "postgres", "end_to_end"], ResponseTimeTarget]
    dashboard: DashboardTargets
    seasonal: dict[Season, SeasonalTarget]
    market_tier: dict[MarketTier, MarketTierTarget]


class RateLimitPolicy(_Strict):
    window_seconds: int = Field(gt=0)
    plans: dict[Literal["authenticated", "premium", "enterprise"], int]


class CostPolicy(_Strict):
    """Unit prices (USD) the tuners and the capacity plan cost resources with."""

    memory_gb_hour: float = Field(ge=0)
    """Application (in-process) cache memory, per GB-hour."""
    redis_gb_hour: float = Field(ge=0)
    postgres_connection_hour: float = Field(ge=0)
    replica_hour: float = Field(ge=0)
    """One API replica (its CPU), per hour."""
    origin_per_1k: float = Field(ge=0)
    """1,000 calls to the AI origin."""


class ReplicaPolicy(_Strict):
    """The HPA of the source document: replicas between ``min`` and ``max`` at a CPU target."""

    min_replicas: int = Field(gt=0)
    max_replicas: int = Field(gt=0)
    target_cpu_utilization: float = Field(gt=0, le=1)
    target_memory_utilization: float = Field(gt=0, le=1)


class ResourceAllocation(_Strict):
    """One row of the source document's resource allocation table."""

    memory: SizeText
    cpu_cores: int = Field(gt=0)
    storage: SizeText
    redis_memory: SizeText
    postgres_connections: int = Field(gt=0)

    def bytes_of(self, name: Literal["memory", "storage", "redis_memory"]) -> int:
        return int(_BYTES.validate_python(getattr(self, name)))


class SemanticPolicy(_Strict):
    """The ``[semantic]`` table: near-match lookups after an exact miss (``wedcache.semantic``).

    Kept as plain data here (the runtime form is ``SemanticSettings.from_table(policy.semantic.model_dump())``,
    which also checks ``model``): the policy must not import the semantic package, whose
    modules import the context and keys modules, which import this one.
    """

    enabled: bool = False
    threshold: float = Field(default=0.7013, gt=0, le=1)
    """The lowest cosine similarity that counts; ``wedcache tune semantic`` chooses it."""
    model: str = "wordllama-l2-supercat-256"
    cache_types: list[str] = ["chat_response", "vendor_recommendation", "venue_search", "general"]
    """Cache types that may answer from a near match (exact keys are always tried first)."""

    @field_validator("cache_types")
    @classmethod
    def _known_cache_types(cls, value: list[str]) -> list[str]:
        from ..keys import CACHE_TYPES  # here, not at the top: keys imports context, which imports this module

        unknown = [name for name in value if name not in CACHE_TYPES]
        if unknown:
            raise ValueError(f"unknown cache types {', '.join(unknown)}; must be among {', '.join(CACHE_TYPES)}")
        return value


class Policy(_Strict):
    """The whole policy. Use :meth:`season_of` and the dicts directly."""

    jitter: float = Field(ge=0, lt=1)
    market_tiers: dict[MarketTier, MarketTierPolicy]
    vendors: dict[VendorType, VendorPolicy]
    seasons: dict[Season, SeasonPolicy]
    sla: SlaPolicy
    rate_limits: RateLimitPolicy
    costs: CostPolicy
    replicas: ReplicaPolicy
    resources: dict[Literal["production", "peak_season"], ResourceAllocation]
    semantic: SemanticPolicy = SemanticPolicy()

    @model_validator(mode="after")
    def _complete(self) -> "Policy":
        for name, have, need in (("market_tiers", self.market_tiers, MARKET_TIERS),
                                 ("vendors", self.vendors, VENDOR_TYPES),
                                 ("seasons", self.seasons, SEASONS)):
            missing = sorted(set(need) - set(have))
            if missing:
                raise ValueError(f"{name} lacks {', '.join(missing)}")
        months = sorted(m for s in self.seasons.values() for m in s.months)
        if months != list(range(1, 13)):
            raise ValueError("seasons.*.months must cover each month 1-12 exactly once")
        return self

    def season_of(self, day: date) -> str:
        """The season whose ``months`` contain ``day``'s month."""
        for name, season in self.seasons.items():
            if day.month in season.months:
                return name
        raise PolicyError("seasons", f"no season holds month {day.month}")  # unreachable: validated


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, table by table (neither argument is changed)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def policy_from_dict(data: dict[str, Any]) -> Policy:
    """Validate a policy mapping; raises :class:`PolicyError` naming the key path."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"] if p != "[key]") or "policy"
        raise PolicyError(path, err["msg"]) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise PolicyError("AI_CACHE_POLICY_FILE", f"no such file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(str(path), f"not valid TOML: {exc}") from None


def load_policy(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Policy:
    """The shipped policy, with the file at ``path`` and then ``overrides`` merged over it."""
    data = _read_toml(DEFAULT_POLICY_PATH)
    if path:
        data = merge(data, _read_toml(Path(path)))
    if overrides:
        data = merge(data, overrides)
    return policy_from_dict(data)


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """A plain mapping in the policy file's format (``cacheSize`` as bytes)."""
    return policy.model_dump(mode="json")


def dump_policy(policy: Policy, path: str | Path) -> Path:
    """Write ``policy`` as a TOML file that :func:`load_policy` reads back unchanged."""
    path = Path(path)
    path.write_text(tomli_w.dumps(policy_to_dict(policy)))
    return path
