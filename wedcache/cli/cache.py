"""``wedcache cache …``: the source document's ``npm run cache:*`` operations on the stored cache.

``analytics``, ``scaling status``, ``analyze patterns|keys|vendors|entry-sizes|slow-queries``,
``cleanup [expired|retention]``, ``config review``, ``warm`` and ``stats`` read (and clean)
the database and Redis the service writes, found as every command finds them
(``AI_CACHE_DATABASE_URL`` / ``AI_CACHE_REDIS_URL``, the default ports, or the project's
throwaway servers: :func:`~wedcache.services.ensure_services`). Tables by default; ``--json``
prints the library's result, whose shape each :mod:`wedcache.ops` module documents. Bad
options exit 2 naming the option; an unreachable server or a database error exits 1.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, Iterator, Literal, Optional

import typer

from . import app

if TYPE_CHECKING:
    import psycopg_pool

    from ..clock import Clock
    from ..config import Settings
    from ..policy import Policy
    from ..tiers.redis import RedisTier

cache_app = typer.Typer(help="Operate the stored cache: analytics, analysis, scaling, clean-up, warming, stats.",
                        no_args_is_help=True)
scaling_app = typer.Typer(help="Seasonal scaling.", no_args_is_help=True)
analyze_app = typer.Typer(help="Analyse stored entries and recorded requests.", no_args_is_help=True)
cleanup_app = typer.Typer(help="Delete expired entries and purge data past AI_CACHE_GDPR_RETENTION_DAYS "
                               "(both without a sub-command).", invoke_without_command=True)
config_app = typer.Typer(help="Review the effective configuration.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
for _sub, _name in ((scaling_app, "scaling"), (analyze_app, "analyze"), (cleanup_app, "cleanup"),
                    (config_app, "config")):
    cache_app.add_typer(_sub, name=_name)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (its shape: the wedcache.ops module's docstring).")]
Organization = Annotated[Optional[str], typer.Option(
    "--organization", "--organizationId", help="Only this organization (a UUID or a name).")]
TimeRange = Annotated[Literal["1h", "24h", "7d", "30d"], typer.Option(
    "--time-range", "--timeRange", help="Requests recorded in this window before now.")]
GroupBy = Annotated[Literal["marketTier", "vendorType", "season", "tier"], typer.Option(
    "--group-by", "--groupBy", help="Group requests by market tier, vendor type, season or answering tier.")]
Metric = Annotated[Literal["hitRate", "responseTime"], typer.Option(
    help="hitRate (hits / queries) or responseTime (mean and p95, ms).")]
Limit = Annotated[int, typer.Option(min=1, max=10_000, help="Rows per list.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Count what would go; change nothing.")]


@dataclass
class Ops:
    """What a command works with: settings, policy, clock, a database pool and (when asked) Redis."""

    settings: Settings
    policy: Policy
    clock: Clock
    pool: psycopg_pool.ConnectionPool | None = None
    redis: RedisTier | None = None
    redis_url: str = ""
    database_url: str = ""

    def now(self) -> float:
        return self.clock.now()


# -- commands ------------------------------------------------------------------------------
@cache_app.command()
def analytics(metric: Metric = "hitRate", group_by: GroupBy = "marketTier", time_range: TimeRange = "24h",
              organization: Organization = None, as_json: AsJson = False) -> None:
    """Hit rate or response time per group, from the recorded request rows (wedcache.ops.analytics)."""
    from ..ops.analytics import analytics as report
    with _ops() as ops:
        _emit(f"cache analytics: {metric} by {group_by}, last {time_range}", as_json, lambda: report(
            ops.pool, ops.policy, now=ops.now(), metric=metric, group_by=group_by, time_range=time_range,
            organization=organization))


@scaling_app.command("status")
def scaling_status(limit: Limit = 10, as_json: AsJson = False) -> None:
    """The season, its plan, stored seasonal configs, scaling audit rows, next peak (wedcache.ops.scaling_status)."""
    from ..ops.scaling_status import scaling_status as report
    with _ops() as ops:
        _emit("cache scaling status", as_json, lambda: report(ops.pool, ops.policy, ops.settings, ops.clock,
                                                               limit=limit))


@analyze_app.command("patterns")
def analyze_patterns(time_range: TimeRange = "24h", organization: Organization = None, limit: Limit = 20,
                     as_json: AsJson = False) -> None:
    """The most asked normalised queries and every cache type (wedcache.ops.analyze)."""
    from ..ops.analyze import patterns
    with _ops() as ops:
        _emit("cache analyze patterns", as_json, lambda: patterns(
            ops.pool, now=ops.now(), time_range=time_range, organization=organization, limit=limit))


@analyze_app.command("keys")
def analyze_keys(organization: Organization = None, limit: Limit = 20, as_json: AsJson = False) -> None:
    """Key counts per organization, cache type and market tier; hot keys by access count (wedcache.ops.analyze)."""
    from ..ops.analyze import keys
    with _ops() as ops:
        _emit("cache analyze keys", as_json, lambda: keys(ops.pool, now=ops.now(), organization=organization,
                                                          limit=limit))


@analyze_app.command("vendors")
def analyze_vendors(time_range: TimeRange = "24h", organization: Organization = None, as_json: AsJson = False) -> None:
    """Per vendor type: entries, hit rate, policy TTL against stored TTL and observed lifetime (wedcache.ops.analyze)."""
    from ..ops.analyze import vendors
    with _ops() as ops:
        _emit("cache analyze vendors", as_json, lambda: vendors(
            ops.pool, ops.policy, now=ops.now(), time_range=time_range, organization=organization,
            default_ttl=ops.settings.default_ttl))


@analyze_app.command("entry-sizes")
def analyze_entry_sizes(organization: Organization = None, limit: Limit = 20, as_json: AsJson = False) -> None:
    """Sizes of stored values: distribution, per cache type, the largest entries (wedcache.ops.analyze)."""
    from ..ops.analyze import entry_sizes
    with _ops() as ops:
        _emit("cache analyze entry-sizes", as_json, lambda: entry_sizes(ops.pool, organization=organization,
                                                                        limit=limit))


@analyze_app.command("slow-queries")
def analyze_slow_queries(time_range: TimeRange = "1h", group_by: GroupBy = "marketTier",
                         organization: Organization = None, limit: Limit = 20, as_json: AsJson = False) -> None:
    """Slowest keys and requests, p95 and requests over AI_CACHE_ALERT_THRESHOLD_MS per group (wedcache.ops.analytics)."""
    from ..ops.analytics import slow_queries
    with _ops() as ops:
        _emit(f"cache analyze slow-queries, last {time_range}", as_json, lambda: slow_queries(
            ops.pool, now=ops.now(), time_range=time_range, organization=organization, group_by=group_by,
            threshold_ms=ops.settings.alert_threshold_ms, limit=limit))


@cleanup_app.callback()
def cleanup(ctx: typer.Context, dry_run: DryRun = False, as_json: AsJson = False) -> None:
    """Without a sub-command: delete expired entries, then purge past retention (wedcache.maintenance)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..maintenance import cleanup as run
    with _ops(redis=True) as ops:
        _emit("cache cleanup", as_json, lambda: run(ops.pool, ops.policy, ops.clock, ops.settings.gdpr_retention_days,
                                                    redis=ops.redis, audit_enabled=ops.settings.audit_logging_enabled,
                                                    dry_run=dry_run))


@cleanup_app.command("expired")
def cleanup_expired(dry_run: DryRun = False, as_json: AsJson = False) -> None:
    """Delete PostgreSQL entries past their expiry and stale-while-revalidate grace (wedcache.maintenance)."""
    from ..maintenance import delete_expired
    with _ops() as ops:
        _emit("cache cleanup expired", as_json, lambda: delete_expired(ops.pool, ops.policy, ops.clock,
                                                                       dry_run=dry_run))


@cleanup_app.command("retention")
def cleanup_retention(dry_run: DryRun = False, as_json: AsJson = False) -> None:
    """Purge entries and audit rows older than AI_CACHE_GDPR_RETENTION_DAYS, with a GDPR_DELETION audit row."""
    from ..maintenance import purge_past_retention
    with _ops(redis=True) as ops:
        _emit("cache cleanup retention", as_json, lambda: purge_past_retention(
            ops.pool, ops.clock, ops.settings.gdpr_retention_days, redis=ops.redis,
            audit_enabled=ops.settings.audit_logging_enabled, dry_run=dry_run))


@config_app.command("review")
def config_review(strict: Annotated[bool, typer.Option(help="Exit 1 when a warning is found.")] = False,
                  as_json: AsJson = False) -> None:
    """Effective AI_CACHE_* settings (secrets redacted) and policy figures, with warnings (wedcache.ops.config_review)."""
    from ..ops.config_review import review_config
    with _ops(servers=False) as ops:
        result = _emit("cache config review", as_json, lambda: review_config(ops.settings, ops.policy, ops.clock))
    if strict and any(w["level"] == "warning" for w in result["warnings"]):
        raise typer.Exit(1)


@cache_app.command()
def warm(from_file: Annotated[Path, typer.Option("--from", help="JSON lines or CSV of query, weddingContext, "
                                                 "organizationId?, cacheType?.")],
         organization: Organization = None,
         concurrency: Annotated[int, typer.Option(min=1, max=64, help="Queries answered at once.")] = 4,
         as_json: AsJson = False) -> None:
    """Pre-load queries through the real cache into Redis and PostgreSQL; exit 1 if a line failed (wedcache.ops.warm)."""
    from ..ops.warm import Warmer, read_warm_file
    with _guard():  # a file that cannot be read fails before any server is touched
        items, errors = read_warm_file(from_file, organization)
    with _ops() as ops:
        warmer = Warmer(ops.settings, ops.clock, redis_url=ops.redis_url, database_url=ops.database_url)
        try:
            result = _emit(f"cache warm {from_file}", as_json, lambda: warmer.run(
                items, errors, file=str(from_file), concurrency=concurrency), skip=() if as_json else ("results",))
        finally:
            warmer.close()
    if result["failed"]:
        raise typer.Exit(1)


@cache_app.command()
def stats(organization: Organization = None, limit: Limit = 20, as_json: AsJson = False) -> None:
    """Entries and bytes per tier (Redis, PostgreSQL), by organization and cache type (wedcache.ops.stats)."""
    from ..ops.stats import tier_stats
    with _ops(redis=True) as ops:
        _emit("cache stats", as_json, lambda: tier_stats(ops.pool, ops.redis, now=ops.now(), organization=organization,
                                                         limit=limit))


# -- plumbing ------------------------------------------------------------------------------
@contextmanager
def _guard() -> Iterator[None]:
    """Every error as a message on stderr: exit 2 for bad input (naming the option, field or
    variable), 1 for a server or database failure."""
    import psycopg
    import psycopg_pool
    import redis

    from ..errors import InvalidInput, WedcacheError

    try:
        yield
    except InvalidInput as error:
        _fail(str(error), 2)
    except (WedcacheError, psycopg.Error, psycopg_pool.PoolTimeout, redis.RedisError, OSError) as error:
        _fail(str(error), 1)


@contextmanager
def _ops(*, servers: bool = True, redis: bool = False) -> Iterator[Ops]:
    """Settings, policy and clock; with ``servers``, the database (migrated) and, with ``redis``, Redis."""
    import psycopg_pool

    from .. import services
    from ..clock import SystemClock
    from ..config import load_settings
    from ..migrations import apply_migrations
    from ..policy import load_policy
    from ..tiers.redis import RedisTier

    closers: list[Callable[[], None]] = []
    with _guard():
        try:
            settings = load_settings()
            ops = Ops(settings, load_policy(settings.policy_file), SystemClock())
            if servers:
                found = services.ensure_services(progress=lambda message: typer.echo(message, err=True))
                ops.redis_url, ops.database_url = found.redis_url, found.database_url
                apply_migrations(found.database_url)
                ops.pool = psycopg_pool.ConnectionPool(found.database_url, min_size=1, max_size=4, open=True,
                                                       kwargs={"autocommit": True, "connect_timeout": 5},
                                                       name="wedcache-cache-cli")
                closers.append(ops.pool.close)
                if redis:
                    ops.redis = RedisTier(found.redis_url, timeout_ms=5000)
                    closers.append(ops.redis.close)
            yield ops
        finally:
            for close in reversed(closers):
                close()


def _emit(title: str, as_json: bool, compute: Callable[[], dict], *, skip: tuple[str, ...] = ()) -> dict:
    """Compute the result and print it: JSON, or tables (:func:`wedcache.ops.tables.render`)."""
    result = compute()
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        from ..ops.tables import render
        render(title, result, skip=skip)
    return result


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
