"""Scenario files: what ``wedcache simulate`` runs, as TOML (:func:`load_scenario`).

A scenario names a calendar window and a workload, sizes the cache and models the origin.
Every key has a default except ``[run] start_date`` and the duration (``days`` or
``duration_seconds``, exactly one)::

    name = "june-peak"                  # optional; default: the file's stem
    description = "A Saturday in June"  # optional

    [run]
    start_date = 2026-06-13
    days = 1                 # or duration_seconds = 86400
    seed = 1
    sample_rate = 0.1        # SHARDS key sampling, in (0, 1]

    [traffic]                # base_qps, seasonal, weekly, daily, arrivals ("poisson" | "uniform")
    [queries]                # distinct, zipf_alpha, organizations, [queries.market_mix], [queries.vendor_mix],
                             # paraphrase_variants (0-3), near_miss_share (in [0, 1))
    [cache]                  # memory_entries, memory_mb, eviction ("lru" | "tinylfu"), ttl_seconds,
                             # jitter, redis, postgres, stale_while_revalidate_seconds,
                             # seasonal_scaling, calibration (a file, relative to the scenario),
                             # semantic (true: semantic matching after an exact miss),
                             # semantic_threshold (default: the policy's [semantic] threshold)
    [origin]                 # latency_median_ms, latency_p95_ms, cost_per_call_usd, concurrency
    [data_changes]           # rate_per_hour (default: from the policy's vendor volatility)
    [sla]                    # overrides of the policy's [sla] table, same shape
    hit_rate = 0.8

Validation is strict (pydantic, as :mod:`wedcache.policy`): an unknown table or key, a value
of the wrong type or out of range raises :class:`ScenarioError` naming the key path, e.g.
``scenario year.toml: cache.memory_mb: must be > 0``. The ``[sla]`` overrides are checked by
applying them to the shipped policy.

Classes: :class:`Scenario` and its parts :class:`RunConfig`, :class:`TrafficConfig`,
:class:`QueriesConfig`, :class:`CacheConfig`, :class:`OriginConfig` and
:class:`DataChangesConfig` (frozen dataclasses). The shipped scenarios live in
:data:`SCENARIO_DIR`; :func:`load_scenario` also takes a bare name (``"year"``).
"""
from __future__ import annotations

import copy
import dataclasses
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wedcache.config import Settings, load_settings
from wedcache.errors import WedcacheError
from wedcache.policy import MarketTier, Policy, VendorType, load_policy, merge, policy_to_dict

from .profiles import DAY_SECONDS
from .semantic_workload import MAX_PARAPHRASES
from .workload import DEFAULT_MARKET_MIX, DEFAULT_VENDOR_MIX, WorkloadSpec

SCENARIO_DIR = Path(__file__).with_name("scenarios")
"""The shipped scenarios (``year``, ``peak-saturday``, ``off-season``, ``smoke``)."""


class ScenarioError(WedcacheError, ValueError):
    """A scenario is invalid; ``field`` is the dotted key path (``""`` for the file itself)."""

    def __init__(self, field: str, message: str, scenario: str | None = None):
        parts = [f"scenario {scenario}" if scenario else "", field, message]
        super().__init__(": ".join(part for part in parts if part))
        self.field = field
        self.reason = message
        self.scenario = scenario


# --- the scenario's values -----------------------------------------------------------------

@dataclass(frozen=True)
class RunConfig:
    """The calendar window and the run's randomness."""

    start_date: date
    """Time 0 is this day at 00:00 UTC."""
    duration_seconds: float
    seed: int = 1
    sample_rate: float = 1.0
    """Share of keys simulated (SHARDS spatial sampling), in (0, 1]."""


@dataclass(frozen=True)
class TrafficConfig:
    """The request rate and how it varies over the calendar."""

    base_qps: float
    """Requests per second before the seasonal, weekly and daily multipliers."""
    seasonal: bool
    weekly: bool
    daily: bool
    arrivals: str
    """``"poisson"`` or ``"uniform"``."""


@dataclass(frozen=True)
class QueriesConfig:
    """The query catalogue: its size, popularity skew and mixes (shares, normalised)."""

    distinct: int
    zipf_alpha: float
    organizations: int
    market_mix: dict[str, float]
    vendor_mix: dict[str, float]
    paraphrase_variants: int = 0
    """Paraphrases per query, each its own cache key (:mod:`simulations.semantic_workload`)."""
    near_miss_share: float = 0.0
    """Share of requests that ask a near miss (another city or guest range: another answer)."""


@dataclass(frozen=True)
class CacheConfig:
    """The cache under test. ``None`` leaves a setting to the policy."""

    memory_entries: int
    memory_mb: float
    eviction: str
    """``"lru"`` or ``"tinylfu"``."""
    ttl_seconds: float | None
    """When set, every entry gets this TTL instead of the policy's."""
    jitter: float | None
    """When set, replaces the policy's ``jitter``."""
    redis: bool
    postgres: bool
    stale_while_revalidate_seconds: float | None
    seasonal_scaling: bool = True
    calibration: str | None = None
    """A calibration file, relative to the scenario file (see :attr:`Scenario.calibration_path`)."""
    semantic: bool = False
    """Semantic matching after an exact miss (the memory vector index; the run is then
    repeated with it off, to report the gain over exact matching)."""
    semantic_threshold: float | None = None
    """The lowest similarity that counts; ``None``: the policy's ``[semantic] threshold``."""


OFF_BY_DEFAULT = {"queries": {"paraphrase_variants": 0, "near_miss_share": 0.0},
                  "cache": {"semantic": False}}
"""Keys :meth:`Scenario.to_dict` leaves out at these values, so the ``config`` of a run
without paraphrases or semantic matching reads as it did before they existed."""


@dataclass(frozen=True)
class OriginConfig:
    """The AI origin behind the cache: latency, price per call and concurrent calls."""

    latency_median_ms: float = 1200.0
    latency_p95_ms: float = 2500.0
    cost_per_call_usd: float = 0.002
    concurrency: int | None = None
    """Calls in flight at once; ``None``: unlimited."""


@dataclass(frozen=True)
class DataChangesConfig:
    """How often vendor data changes (stale hits)."""

    rate_per_hour: float | None = None
    """Changes per hour per vendor type; ``None``: volatilityFactor / (baseTtl / 3600)."""


# --- the file format (pydantic) --------------------------------------------------------------

_SPEC = WorkloadSpec()
_SETTINGS = Settings.model_fields
_ORIGIN = OriginConfig()


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class _Run(_Strict):
    start_date: date
    days: float | None = Field(None, gt=0)
    duration_seconds: float | None = Field(None, gt=0)
    seed: int = Field(1, ge=0)
    sample_rate: float = Field(1.0, gt=0, le=1)

    @field_validator("start_date", mode="before")
    @classmethod
    def _iso(cls, value: Any) -> Any:
        """ISO strings (as :meth:`Scenario.to_dict` writes them) are dates too."""
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        return value


class _Traffic(_Strict):
    base_qps: float = Field(_SPEC.base_qps, gt=0)
    seasonal: bool = _SPEC.seasonal
    weekly: bool = _SPEC.weekly
    daily: bool = _SPEC.daily
    arrivals: Literal["poisson", "uniform"] = _SPEC.arrivals


class _Queries(_Strict):
    distinct: int = Field(_SPEC.distinct, ge=1)
    zipf_alpha: float = Field(_SPEC.zipf_alpha, ge=0)
    organizations: int = Field(_SPEC.organizations, ge=1)
    market_mix: dict[MarketTier, float] = Field(default_factory=lambda: dict(DEFAULT_MARKET_MIX), min_length=1)
    vendor_mix: dict[VendorType, float] = Field(default_factory=lambda: dict(DEFAULT_VENDOR_MIX), min_length=1)
    paraphrase_variants: int = Field(0, ge=0, le=MAX_PARAPHRASES)
    near_miss_share: float = Field(0.0, ge=0, lt=1)

    @field_validator("market_mix", "vendor_mix")
    @classmethod
    def _shares(cls, mix: dict[str, float]) -> dict[str, float]:
        if any(share < 0 for share in mix.values()):
            raise ValueError("shares must be >= 0")
        if sum(mix.values()) <= 0:
            raise ValueError("shares must not all be zero")
        return mix


class _Cache(_Strict):
    memory_entries: int = Field(_SETTINGS["max_entries"].default, ge=1)
    memory_mb: float = Field(float(_SETTINGS["memory_size_mb"].default), gt=0)
    eviction: Literal["lru", "tinylfu"] = _SETTINGS["eviction"].default
    ttl_seconds: float | None = Field(None, gt=0)
    jitter: float | None = Field(None, ge=0, lt=1)
    redis: bool = True
    postgres: bool = True
    stale_while_revalidate_seconds: float | None = Field(None, ge=0)
    seasonal_scaling: bool = True
    calibration: str | None = Field(None, min_length=1)
    semantic: bool = False
    semantic_threshold: float | None = Field(None, gt=0, le=1)


class _Origin(_Strict):
    latency_median_ms: float = Field(_ORIGIN.latency_median_ms, ge=0)
    latency_p95_ms: float = Field(_ORIGIN.latency_p95_ms, ge=0)
    cost_per_call_usd: float = Field(_ORIGIN.cost_per_call_usd, ge=0)
    concurrency: int | None = Field(_ORIGIN.concurrency, ge=1)


class _DataChanges(_Strict):
    rate_per_hour: float | None = Field(None, ge=0)


class _File(_Strict):
    name: str | None = Field(None, min_length=1)
    description: str = ""
    run: _Run
    traffic: _Traffic = _Traffic()
    queries: _Queries = _Queries()
    cache: _Cache = _Cache()
    origin: _Origin = _Origin()
    data_changes: _DataChanges = _DataChanges()
    sla: dict[str, Any] = {}


# --- error messages --------------------------------------------------------------------------

class _Invalid(Exception):
    """A bad key inside the scenario; :func:`scenario_from_dict` adds the scenario's name."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.reason = field, message


_EXPECTED = {"float_type": "a number", "int_type": "an integer", "bool_type": "true or false",
             "string_type": "a string", "date_type": "a date (YYYY-MM-DD)", "dict_type": "a table",
             "model_type": "a table", "list_type": "an array", "finite_number": "a finite number"}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_TOML_TYPES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
               dict: "a table", list: "an array", datetime: "a date-time", date: "a date"}


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _got(value: Any) -> str:
    kind = next((name for cls, name in _TOML_TYPES.items() if isinstance(value, cls)), type(value).__name__)
    return f"{kind} ({value!r})" if not isinstance(value, (dict, list)) else kind


def _message(err: dict[str, Any]) -> str:
    """A pydantic error in the scenario's words: what is wrong and what was expected."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        prefix = "unknown key; expected" if err["loc"][-1:] == ("[key]",) else "must be"
        return f"{prefix} {ctx['expected']}"
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {_number(next(iter(ctx.values())))}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_got(err['input'])}"
    return err["msg"].removeprefix("Value error, ")


def _invalid(exc: ValidationError, prefix: tuple[str, ...] = ()) -> _Invalid:
    """The first error of ``exc`` as an :class:`_Invalid` naming its dotted key path."""
    err = exc.errors()[0]
    path = ".".join(str(part) for part in (*prefix, *err["loc"]) if part != "[key]")
    return _Invalid(path or "scenario", _message(err))


def _check(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise _Invalid(field, message)


# --- the scenario ----------------------------------------------------------------------------

def _apply(base: Policy, sla: dict[str, Any], jitter: float | None) -> Policy:
    """``base`` with the ``sla`` overrides merged and ``jitter`` (when set) replaced."""
    data = merge(policy_to_dict(base), {"sla": sla})
    if jitter is not None:
        data["jitter"] = jitter
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None


@dataclass(frozen=True)
class Scenario:
    """One simulation run, as read from a scenario file (see the module docstring)."""

    name: str
    description: str
    run: RunConfig
    traffic: TrafficConfig
    queries: QueriesConfig
    cache: CacheConfig
    origin: OriginConfig
    data_changes: DataChangesConfig
    sla: dict[str, Any]
    """Overrides of the policy's ``[sla]`` table, in its shape."""
    source: Path | None = None
    """The file read, if any."""

    @property
    def days(self) -> float:
        return self.run.duration_seconds / DAY_SECONDS

    @property
    def label(self) -> str:
        """How errors name this scenario: its file name, else its name."""
        return self.source.name if self.source else self.name

    @property
    def calibration_path(self) -> Path | None:
        """``cache.calibration`` resolved against the scenario file's folder (else as given)."""
        if self.cache.calibration is None:
            return None
        path = Path(self.cache.calibration)
        return path if path.is_absolute() or self.source is None else self.source.parent / path

    def with_overrides(self, *, seed: int | None = None, sample_rate: float | None = None,
                       start_date: date | str | None = None, days: float | None = None) -> "Scenario":
        """This scenario with the command line's flags applied (``None``: keep), validated again."""
        data = self.to_dict()
        run = data["run"]
        for key, value in (("seed", seed), ("sample_rate", sample_rate), ("start_date", start_date)):
            if value is not None:
                run[key] = value
        if days is not None:
            run.pop("duration_seconds")
            run["days"] = days
        return scenario_from_dict(data, self.name, self.source)

    def workload_spec(self) -> WorkloadSpec:
        """The :class:`~simulations.workload.WorkloadSpec` of this run (start: 00:00 UTC)."""
        traffic, queries = self.traffic, self.queries
        return WorkloadSpec(
            start=datetime.combine(self.run.start_date, time(0), tzinfo=timezone.utc),
            duration_seconds=self.run.duration_seconds, base_qps=traffic.base_qps,
            seasonal=traffic.seasonal, weekly=traffic.weekly, daily=traffic.daily,
            arrivals=traffic.arrivals, distinct=queries.distinct, zipf_alpha=queries.zipf_alpha,
            organizations=queries.organizations, market_mix=dict(queries.market_mix),
            vendor_mix=dict(queries.vendor_mix),
            data_change_rate_per_hour=self.data_changes.rate_per_hour,
            paraphrase_variants=queries.paraphrase_variants, near_miss_share=queries.near_miss_share)

    def policy(self, base: Policy | None = None) -> Policy:
        """``base`` (default: the policy ``AI_CACHE_POLICY_FILE`` names, else the shipped one, as
        ``wedcache serve`` loads it) with the ``[sla]`` overrides and the ``cache.jitter``
        override applied.

        :raises ScenarioError: naming the bad override, e.g. ``sla.hit_rate``."""
        try:
            return _apply(load_policy(load_settings().policy_file) if base is None else base, self.sla,
                          self.cache.jitter)
        except _Invalid as exc:
            raise ScenarioError(exc.field, exc.reason, self.label) from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping in the file's format (dates as ISO strings, unset keys left out).

        ``scenario_from_dict(s.to_dict())`` gives ``s`` back (but for :attr:`source`); the
        mapping is also a valid scenario file for ``tomli_w``."""
        tables = {key: _plain(getattr(self, key))
                  for key in ("run", "traffic", "queries", "cache", "origin", "data_changes")}
        tables["run"]["start_date"] = self.run.start_date.isoformat()
        for table, defaults in OFF_BY_DEFAULT.items():
            for key, off in defaults.items():
                if tables[table][key] == off:
                    del tables[table][key]
        return {"name": self.name, "description": self.description, **tables,
                "sla": copy.deepcopy(self.sla)}


def _plain(config: Any) -> dict[str, Any]:
    """A config dataclass as a dict, without its ``None`` values (TOML has no null)."""
    return {key: copy.deepcopy(value) for key, value in dataclasses.asdict(config).items()
            if value is not None}


# --- reading -----------------------------------------------------------------------------

def _duration(run: _Run) -> float:
    _check(run.days is None or run.duration_seconds is None, "run.days",
           "give days or duration_seconds, not both")
    _check(run.days is not None or run.duration_seconds is not None, "run.duration_seconds",
           "required (or run.days)")
    return run.duration_seconds if run.days is None else run.days * DAY_SECONDS


def _build(data: Any, name: str, source: Path | None) -> Scenario:
    _check(isinstance(data, dict), "scenario", f"expected a table, got {_got(data)}")
    try:
        file = _File.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None
    origin = file.origin
    _check(origin.latency_p95_ms >= origin.latency_median_ms, "origin.latency_p95_ms",
           f"must be >= latency_median_ms ({_number(origin.latency_median_ms)})")
    _apply(load_policy(), file.sla, file.cache.jitter)
    run = file.run
    return Scenario(
        name=file.name or name, description=file.description,
        run=RunConfig(run.start_date, _duration(run), run.seed, run.sample_rate),
        traffic=TrafficConfig(**file.traffic.model_dump()),
        queries=QueriesConfig(**file.queries.model_dump()),
        cache=CacheConfig(**file.cache.model_dump()), origin=OriginConfig(**origin.model_dump()),
        data_changes=DataChangesConfig(**file.data_changes.model_dump()),
        sla=copy.deepcopy(file.sla), source=source)


def scenario_from_dict(data: dict[str, Any], name: str = "scenario", source: Path | None = None) -> Scenario:
    """Validate a scenario mapping (a parsed file); ``name`` applies when it has no ``name`` key.

    :raises ScenarioError: naming the key path, e.g. ``cache.memory_mb``."""
    label = source.name if source else (data.get("name") if isinstance(data, dict) else None) or name
    try:
        return _build(data, name, source)
    except _Invalid as exc:
        raise ScenarioError(exc.field, exc.reason, str(label)) from None


def shipped_scenarios() -> list[str]:
    """The names of the scenarios in :data:`SCENARIO_DIR`."""
    return sorted(path.stem for path in SCENARIO_DIR.glob("*.toml"))


def scenario_path(name_or_path: str | Path) -> Path:
    """The file for ``name_or_path``: an existing file, else a shipped scenario of that name
    (``"year"`` or ``"year.toml"`` -> ``simulations/scenarios/year.toml``).

    :raises ScenarioError: when neither exists."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SCENARIO_DIR / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if len(path.parts) == 1 and shipped.is_file():
        return shipped
    raise ScenarioError("", f"no such scenario file: {name_or_path} "
                            f"(shipped scenarios: {', '.join(shipped_scenarios())})")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file, or a shipped scenario by name (``"year"``).

    :raises ScenarioError: for a missing file, invalid TOML or an invalid key."""
    path = scenario_path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("", f"not valid TOML: {exc}", path.name) from None
    return scenario_from_dict(data, path.stem, path)
