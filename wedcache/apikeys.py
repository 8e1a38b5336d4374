"""API keys of the HTTP service: :class:`ApiKeyStore` and :class:`ApiKey`.

A key belongs to one organization, has a rate-limit plan (``authenticated``, ``premium``,
``enterprise``: the policy's ``rate_limits.plans``) and a role (``member``, ``admin``: only
an admin may act across organizations, e.g. a ``global`` invalidation). The secret
(``wc_`` + 43 URL-safe characters, 256 random bits) is returned once by :meth:`ApiKeyStore.create`;
the database keeps only its SHA-256, so a stolen table reveals no usable key. A hash of a
256-bit random secret needs no salt or slow KDF: there is nothing to guess.

:meth:`ApiKeyStore.verify` is on every request's path, so verified keys are remembered for
:attr:`ApiKeyStore.cache_seconds` (5 s by default) per process: a revoked key stops working
at once in the process that revoked it and within that time everywhere else.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Literal

import psycopg
import psycopg_pool
from cachetools import TTLCache

from .clock import Clock, SystemClock
from .errors import ContextError
from .keys import organization_uuid

Plan = Literal["authenticated", "premium", "enterprise"]
Role = Literal["member", "admin"]
PLANS: tuple[str, ...] = ("authenticated", "premium", "enterprise")
ROLES: tuple[str, ...] = ("member", "admin")
SECRET_PREFIX = "wc_"
NOT_REMEMBERED = object()
"""What :meth:`ApiKeyStore.remembered` answers for a secret it has not verified lately."""

_COLUMNS = "id::text, organization_id::text, plan, role, key_prefix, label, " \
           "extract(epoch from created_at), extract(epoch from revoked_at)"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never its secret)."""

    id: str
    organization_id: str
    plan: str
    role: str
    prefix: str
    """The secret's first characters, to tell keys apart in a listing."""
    label: str | None = None
    created_at: float | None = None
    revoked_at: float | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def from_row(cls, row: tuple) -> "ApiKey":
        key_id, org, plan, role, prefix, label, created, revoked = row
        return cls(key_id, org, plan, role, prefix, label,
                   float(created) if created is not None else None,
                   float(revoked) if revoked is not None else None)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class ApiKeyStore:
    """Keys in PostgreSQL's ``ai_cache_api_keys`` (migration 0003).

    :param database_url: the service's database (migrated).
    :param pool: a connection pool to that database (the service's); without one, each call
        opens a connection (the CLI).
    :param clock: the time the verification cache reads.
    """

    cache_seconds = 5.0
    outage_seconds = 3600.0
    """While the database cannot be asked, a key verified within this long keeps its last answer."""
    pool_wait_seconds = 1.0
    """How long a check waits for a pooled connection (the database down: fall back, don't hang)."""

    def __init__(self, database_url: str, *, pool: psycopg_pool.ConnectionPool | None = None,
                 clock: Clock | None = None):
        self.database_url, self.pool = database_url, pool
        self._verified: TTLCache = TTLCache(maxsize=10_000, ttl=self.cache_seconds,
                                            timer=(clock or SystemClock()).now)
        self._last_answer: TTLCache = TTLCache(maxsize=10_000, ttl=self.outage_seconds,
                                               timer=(clock or SystemClock()).now)
        self._lock = threading.Lock()

    def create(self, organization: str, plan: str = "authenticated", role: str = "member",
               label: str | None = None) -> tuple[ApiKey, str]:
        """A new key for ``organization`` (a UUID or a name); returns it and its secret."""
        org = organization_uuid(organization, "org")
        _check(plan, PLANS, "plan")
        _check(role, ROLES, "role")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        with self._connect() as conn:
            conn.execute("INSERT INTO organizations (id) VALUES (%s) ON CONFLICT DO NOTHING", (org,))
            row = conn.execute(
                f"INSERT INTO ai_cache_api_keys (organization_id, key_hash, key_prefix, plan, role, label) "
                f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (org, hash_secret(secret), secret[:10], plan, role, label)).fetchone()
        return ApiKey.from_row(row), secret

    def list(self, organization: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
        """Keys, newest first, of one organization or all."""
        where, params = ["TRUE"], []
        if organization is not None:
            where.append("organization_id = %s")
            params.append(organization_uuid(organization, "org"))
        if not include_revoked:
            where.append("revoked_at IS NULL")
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM ai_cache_api_keys WHERE {' AND '.join(where)} "
                                "ORDER BY created_at DESC", params).fetchall()
        return [ApiKey.from_row(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke the key with id ``key_id`` (or whose secret starts with it); ``None`` if unknown."""
        with self._connect() as conn:
            row = conn.execute(
                f"UPDATE ai_cache_api_keys SET revoked_at = COALESCE(revoked_at, NOW()) "
                f"WHERE id::text = %s OR key_prefix = %s RETURNING {_COLUMNS}", (key_id, key_id)).fetchone()
        with self._lock:
            self._verified.clear()
            self._last_answer.clear()
        return ApiKey.from_row(row) if row else None

    def remembered(self, secret: str) -> "ApiKey | None | object":
        """What :meth:`verify` would answer from this process's memory (no I/O), or
        :data:`NOT_REMEMBERED` when it must ask the database."""
        if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
            return None
        with self._lock:
            return self._verified.get(hash_secret(secret), NOT_REMEMBERED)

    def verify(self, secret: str) -> ApiKey | None:
        """The live key whose secret is ``secret``, or ``None`` (unknown or revoked).

        :raises psycopg.Error: when the database cannot be asked (the caller decides).
        """
        if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
            return None
        digest = hash_secret(secret)
        with self._lock:
            if digest in self._verified:
                return self._verified[digest]
        try:
            with self._connect() as conn:
                row = conn.execute(f"SELECT {_COLUMNS} FROM ai_cache_api_keys WHERE key_hash = %s "
                                   "AND revoked_at IS NULL", (digest,)).fetchone()
        except psycopg.Error:
            with self._lock:  # the database is down: its last answer, if it gave one lately,
                if digest in self._last_answer:  # remembered again so the next checks wait for nothing
                    self._verified[digest] = self._last_answer[digest]
                    return self._verified[digest]
            raise
        key = ApiKey.from_row(row) if row else None
        with self._lock:
            self._verified[digest] = self._last_answer[digest] = key
        return key


    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection]:
        if self.pool is not None:
            with self.pool.connection(timeout=self.pool_wait_seconds) as conn:
                yield conn
            return
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            yield conn


def _check(value: str, allowed: tuple[str, ...], field: str) -> None:
    if value not in allowed:
        raise ContextError(field, f"must be one of {', '.join(allowed)}, not {value!r}")
