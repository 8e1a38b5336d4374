"""Settings from the ``AI_CACHE_*`` environment variables: :class:`Settings`, :func:`load_settings`.

Every variable of the source document's "Environment Variables" block is here, plus
``AI_CACHE_DATABASE_URL``, ``AI_CACHE_POLICY_FILE`` and the tier knobs wedcache adds. A bad
value raises :class:`~wedcache.errors.ConfigError` naming the variable.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Mapping

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

ENV_PREFIX = "AI_CACHE_"


class Settings(BaseSettings):
    """Runtime settings; each field is read from ``AI_CACHE_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # The source document's block, in its order.
    enabled: bool = True
    memory_size_mb: float = Field(512, gt=0)
    redis_url: str | None = None
    default_ttl: int = Field(3600, gt=0)
    max_entries: int = Field(1_000_000, gt=0)
    seasonal_scaling_enabled: bool = True
    auto_scale_threshold: float = Field(0.8, gt=0, le=1)
    scale_up_factor: float = Field(2.0, ge=1)
    scale_down_factor: float = Field(0.5, gt=0, le=1)
    monitoring_enabled: bool = True
    alert_threshold_ms: float = Field(100, gt=0)
    hit_rate_alert_threshold: float = Field(0.8, ge=0, le=1)
    encryption_enabled: bool = True
    audit_logging_enabled: bool = True
    gdpr_retention_days: int = Field(2555, gt=0)
    # wedcache's own.
    database_url: str | None = None
    policy_file: Path | None = None
    eviction: Literal["lru", "tinylfu"] = "tinylfu"
    redis_timeout_ms: float = Field(50, gt=0)
    postgres_timeout_ms: float = Field(200, gt=0)
    breaker_failures: int = Field(5, gt=0)
    breaker_reset_seconds: float = Field(5.0, gt=0)
    lock_timeout_seconds: float = Field(30.0, gt=0)
    redis_cluster_nodes: str | None = None
    """``host:port,host:port,…`` of a Redis Cluster; without ``AI_CACHE_REDIS_URL`` it becomes
    ``redis_url`` as ``redis+cluster://host:port,…`` (both set: an error)."""
    encryption_key: str | None = None
    """URL-safe base64 of 32 bytes; without it a key is created in the state folder."""
    # The origin: simulated unless ORIGIN_URL names an OpenAI-compatible API.
    origin_url: str | None = None
    origin_model: str = "gpt-4o-mini"
    origin_api_key: str | None = None
    origin_latency_median_ms: float = Field(1200, ge=0)
    origin_latency_p95_ms: float = Field(2500, ge=0)
    origin_cost_per_call_usd: float = Field(0.002, ge=0)

    @field_validator("redis_cluster_nodes")
    @classmethod
    def _nodes_are_host_port(cls, value: str | None) -> str | None:
        if value:
            from .redis_client import cluster_url

            cluster_url(value)  # ValueError naming the bad node
        return value

    @model_validator(mode="before")
    @classmethod
    def _cluster_nodes_make_the_url(cls, values):
        if not isinstance(values, dict) or not values.get("redis_cluster_nodes"):
            return values
        if values.get("redis_url"):
            raise ValueError("set AI_CACHE_REDIS_URL or AI_CACHE_REDIS_CLUSTER_NODES, not both")
        from .redis_client import cluster_url

        try:
            return {**values, "redis_url": cluster_url(values["redis_cluster_nodes"])}
        except ValueError:
            return values  # the field validator names the variable

    @property
    def memory_size_bytes(self) -> int:
        return int(self.memory_size_mb * 1024 * 1024)


def load_settings(env: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Read settings from ``env`` (default: the process environment) plus ``overrides``.

    :raises ConfigError: naming the first invalid variable, e.g. ``AI_CACHE_DEFAULT_TTL``.
    """
    try:
        if env is None:
            return Settings(**overrides)
        values = {k[len(ENV_PREFIX):].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
        return Settings(**{**values, **overrides})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ENV_PREFIX + str(err["loc"][0]).upper() if err["loc"] else ENV_PREFIX
        raise ConfigError(name, f"{err['msg']} (got {err.get('input')!r})") from None
