"""Cache tiers behind one small interface: :class:`Tier`, :func:`register_tier`, :func:`tier_from_url`.

A tier knows its own backend and nothing else: ``get``, ``set``, ``delete``,
``invalidate(selector)``, ``stats`` and ``close``. It returns entries whatever their
expiry (freshness is :class:`~wedcache.cache.TieredCache`'s decision) and turns every driver
error into :class:`~wedcache.errors.TierUnavailable`. Tiers are built from URLs through a
scheme registry (``memory://``, ``redis://``, ``postgresql://``; the simulation registers
``modeled://``).

Tiers that can list an organization's entries also implement :class:`ListableTier`
(``entries(org_id)``): compliance work (:mod:`wedcache.security`) walks them, the request path
never does. Stored bytes that no longer decode as an entry are listed as :class:`Unreadable`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, NamedTuple, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ..entry import CacheEntry, Selector


@runtime_checkable
class Tier(Protocol):
    """The interface every tier implements."""

    name: str
    """``memory``, ``redis`` or ``postgres`` (what results and metrics report)."""

    def get(self, key: str) -> CacheEntry | None:
        """The stored entry for ``key``, fresh or not, or ``None``."""

    def set(self, entry: CacheEntry) -> None:
        """Store ``entry`` (replacing any entry under its key)."""

    def delete(self, key: str) -> bool:
        """Remove ``key``; ``True`` when something was removed."""

    def invalidate(self, selector: Selector) -> int:
        """Remove every entry ``selector`` matches; returns how many."""

    def stats(self) -> dict[str, Any]:
        """Sizes: ``entries``, ``bytes`` (and ``evictions`` where known); lookups are counted by the cache."""

    def close(self) -> None:
        """Release connections and threads."""


class Unreadable(NamedTuple):
    """A stored entry that no longer decodes (corrupted or tampered bytes), listed by its key."""

    key: str
    reason: str


@runtime_checkable
class ListableTier(Protocol):
    """A tier that can list what it stores for one organization (optional, beside :class:`Tier`)."""

    def entries(self, org_id: str) -> Iterator[CacheEntry | Unreadable]:
        """Every entry stored for ``org_id`` (fresh or not), read without touching recency or
        access counts; an entry whose stored bytes do not decode is an :class:`Unreadable`.
        Never scans the whole keyspace: each tier reads its per-organization index."""


_FACTORIES: dict[str, Callable[..., Tier]] = {}


def register_tier(scheme: str, factory: Callable[..., Tier]) -> None:
    """Make ``tier_from_url`` build ``scheme://…`` URLs with ``factory(url, **kwargs)``."""
    _FACTORIES[scheme] = factory


def tier_from_url(url: str, **kwargs: Any) -> Tier:
    """Build the tier a URL names (``redis://127.0.0.1:6379/0``, ``postgresql://…``)."""
    scheme = urlsplit(url).scheme
    if scheme not in _FACTORIES:
        _load_builtin(scheme)
    try:
        return _FACTORIES[scheme](url, **kwargs)
    except KeyError:
        raise ValueError(f"no tier for URL scheme {scheme!r}; known: {', '.join(sorted(_FACTORIES))}") from None


def _load_builtin(scheme: str) -> None:
    if scheme == "memory":
        from . import memory  # noqa: F401  (registers itself)
    elif scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        from . import redis  # noqa: F401
    elif scheme in ("postgres", "postgresql"):
        from . import postgres  # noqa: F401
