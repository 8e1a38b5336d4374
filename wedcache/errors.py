"""The exception tree: everything wedcache raises derives from :class:`WedcacheError`.

- :class:`InvalidInput` names the field that is wrong (``field``); its subclasses are
  :class:`ConfigError` (environment), :class:`PolicyError` (policy file) and
  :class:`ContextError` (a wedding context or query).
- :class:`TierUnavailable` is what a backend tier raises for any driver error or timeout;
  :class:`~wedcache.cache.TieredCache` catches it and serves from another tier.
- :class:`OriginUnavailable` means neither a tier nor the origin could answer.
- :class:`TamperedEntry` is a stored entry whose integrity check failed.
"""
from __future__ import annotations


class WedcacheError(Exception):
    """Root of every wedcache error."""


class InvalidInput(WedcacheError, ValueError):
    """A value is wrong; ``field`` names it (an env var, a policy key or a JSON path)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class ConfigError(InvalidInput):
    """An ``AI_CACHE_*`` environment variable is invalid."""


class PolicyError(InvalidInput):
    """A policy file has an unknown key or a wrong value."""


class ContextError(InvalidInput):
    """A query or wedding context is invalid."""


class TierUnavailable(WedcacheError):
    """A backend tier failed or timed out; the cache skips it."""

    def __init__(self, tier: str, cause: BaseException | str):
        super().__init__(f"{tier} tier unavailable: {cause}")
        self.tier = tier
        self.cause = cause


class ServiceError(WedcacheError):
    """A throwaway server could not be started or stopped; the message names its log."""


class TamperedEntry(WedcacheError):
    """A sealed entry failed its integrity tag or an AES-GCM check; ``key`` names it."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"cache entry {key!r} failed its integrity check: {reason}")
        self.key = key
        self.reason = reason


class OriginUnavailable(WedcacheError):
    """No tier held the answer and the origin could not compute it."""
