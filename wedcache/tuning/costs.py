"""Cost model: what a set of resources costs per hour, per month or over a run, from ``Policy.costs``.

Prices are the policy's ``[costs]`` table (:class:`~wedcache.policy.CostPolicy`, USD):

* ``memory_gb_hour`` - application (in-process) cache memory, per GB-hour;
* ``redis_gb_hour`` - Redis memory, per GB-hour;
* ``postgres_connection_hour`` - one PostgreSQL connection held for an hour;
* ``replica_hour`` - one API replica (its CPU) for an hour;
* ``origin_per_1k`` - 1,000 calls to the AI origin (the cache misses).

The API is three functions on plain numbers so other tools (``wedcache plan capacity``,
``wedcache tune scaling``) can share it:

* :func:`hourly_cost` - USD for one hour of a resource set plus that hour's origin calls;
* :func:`monthly_cost` - the same for a month (:data:`HOURS_PER_MONTH` hours), origin calls
  given per month;
* :func:`breakdown` - the per-item split (a :class:`CostBreakdown`) of either; it is what the
  two totals add up.

GB are decimal (10**9 bytes), as the policy's ``"1GB"`` sizes. Every function raises
``ValueError`` naming the argument for a negative quantity.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..policy import CostPolicy

HOURS_PER_MONTH = 730.0
"""Average hours in a month (8,760 / 12), the cloud providers' convention."""

GB = 10**9


@dataclass(frozen=True)
class CostBreakdown:
    """USD per cost item; :attr:`total` is their sum."""

    memory: float
    redis: float
    postgres: float
    replicas: float
    origin: float

    @property
    def total(self) -> float:
        return self.memory + self.redis + self.postgres + self.replicas + self.origin

    def as_dict(self) -> dict[str, float]:
        """The items and ``total``, rounded to cents' hundredths, for reports."""
        out = {k: round(v, 4) for k, v in asdict(self).items()}
        out["total"] = round(self.total, 4)
        return out

    def __add__(self, other: "CostBreakdown") -> "CostBreakdown":
        return CostBreakdown(*(a + b for a, b in zip(_values(self), _values(other))))


ZERO = CostBreakdown(0.0, 0.0, 0.0, 0.0, 0.0)


def _values(b: CostBreakdown) -> tuple[float, ...]:
    return (b.memory, b.redis, b.postgres, b.replicas, b.origin)


def _check(**quantities: float) -> None:
    for name, value in quantities.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def breakdown(memory_gb: float, redis_gb: float, pg_connections: float, replicas: float,
              origin_calls: float, costs: CostPolicy, hours: float = 1.0) -> CostBreakdown:
    """Cost items of holding the resources for ``hours`` plus ``origin_calls`` calls in that time.

    ``memory_gb``, ``redis_gb``, ``pg_connections`` and ``replicas`` are the (average) amounts
    held; each costs its unit price x amount x ``hours``. ``origin_calls`` is the total number
    of origin calls in the period, priced per 1,000.
    """
    _check(memory_gb=memory_gb, redis_gb=redis_gb, pg_connections=pg_connections,
           replicas=replicas, origin_calls=origin_calls, hours=hours)
    return CostBreakdown(
        memory=memory_gb * costs.memory_gb_hour * hours,
        redis=redis_gb * costs.redis_gb_hour * hours,
        postgres=pg_connections * costs.postgres_connection_hour * hours,
        replicas=replicas * costs.replica_hour * hours,
        origin=origin_calls / 1000.0 * costs.origin_per_1k,
    )


def hourly_cost(memory_gb: float, redis_gb: float, pg_connections: float, replicas: float,
                origin_calls_per_hour: float, costs: CostPolicy) -> float:
    """USD for one hour: the resources held for an hour plus that hour's origin calls."""
    return breakdown(memory_gb, redis_gb, pg_connections, replicas, origin_calls_per_hour,
                     costs).total


def monthly_cost(memory_gb: float, redis_gb: float, pg_connections: float, replicas: float,
                 origin_calls_per_month: float, costs: CostPolicy) -> float:
    """USD for a month (:data:`HOURS_PER_MONTH` hours) of the resources plus a month's origin calls."""
    return breakdown(memory_gb, redis_gb, pg_connections, replicas, origin_calls_per_month,
                     costs, hours=HOURS_PER_MONTH).total


def gb(nbytes: float) -> float:
    """Bytes to decimal GB."""
    return nbytes / GB
