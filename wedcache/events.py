"""Extension hooks of the cache: :class:`EventHook` and :class:`CacheEvents`.

Metrics exporters and buffers subscribe here, so the cache core imports no exporter
(the way Locust's ``Events`` and cashews' callbacks work). Firing a hook with no listeners
costs one attribute check.
"""
from __future__ import annotations

from typing import Any, Callable


class EventHook:
    """A list of listeners called in order with keyword arguments."""

    def __init__(self) -> None:
        self.listeners: list[Callable[..., Any]] = []

    def add_listener(self, listener: Callable[..., Any]) -> Callable[..., Any]:
        self.listeners.append(listener)
        return listener

    def remove_listener(self, listener: Callable[..., Any]) -> None:
        self.listeners.remove(listener)

    def fire(self, **kwargs: Any) -> None:
        for listener in self.listeners:
            listener(**kwargs)


class CacheEvents:
    """The hooks a :class:`~wedcache.cache.TieredCache` fires."""

    hit: EventHook
    """A lookup was answered. kwargs: ``key``, ``tier``, ``entry``, ``age``."""
    miss: EventHook
    """No tier had a fresh entry. kwargs: ``key``."""
    store: EventHook
    """A computed answer was written through. kwargs: ``entry``, ``compute_seconds``."""
    evict: EventHook
    """The memory tier evicted an entry to make room. kwargs: ``entry``."""
    tier_error: EventHook
    """A backend tier failed and was skipped. kwargs: ``tier``, ``error``."""
    breaker_change: EventHook
    """A tier's breaker changed state. kwargs: ``tier``, ``old``, ``new``."""
    invalidate: EventHook
    """Entries were invalidated. kwargs: ``selector``, ``removed`` (per tier)."""
    tampered: EventHook
    """An entry failed its integrity check and was removed. kwargs: ``key``, ``org_id``, ``tier``."""

    def __init__(self) -> None:
        for name in ("hit", "miss", "store", "evict", "tier_error", "breaker_change", "invalidate", "tampered"):
            setattr(self, name, EventHook())
