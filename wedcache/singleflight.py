"""One computation per key: :class:`SingleFlight` (in-process) and :class:`RedisLocks` (across processes).

In a process, the first caller for a key computes and the others wait on its future. Across
processes, the computing caller holds a Redis lock (``SET NX PX`` with a random token,
released by a compare-and-delete script, as redis-py's ``Lock`` does); callers in other
processes that find the lock taken wait for the stored value instead of computing.
"""
from __future__ import annotations

import logging
import secrets
import threading
from concurrent.futures import Future
from typing import Any, Callable


from .errors import TierUnavailable
from .redis_client import ERRORS as REDIS_ERRORS

log = logging.getLogger(__name__)

LUA_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class SingleFlight:
    """Coalesces concurrent calls for the same key within this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Future] = {}

    def do(self, key: str, fn: Callable[[], Any]) -> tuple[Any, bool]:
        """Run ``fn`` once for concurrent callers of ``key``; returns ``(result, leader)``."""
        with self._lock:
            future = self._calls.get(key)
            leader = future is None
            if leader:
                future = self._calls[key] = Future()
        if not leader:
            return future.result(), False
        return self._run(key, future, fn), True

    def launch(self, key: str, fn: Callable[[], Any], submit: Callable[[Callable[[], Any]], Any]) -> bool:
        """Start ``fn`` for ``key`` through ``submit`` (e.g. an executor) unless a call for
        ``key`` is already running; callers of :meth:`do` meanwhile wait for it. Returns
        whether it started. Errors reach those waiting callers only."""
        with self._lock:
            if key in self._calls:
                return False
            future = self._calls[key] = Future()
        try:
            submit(lambda: self._run(key, future, fn, reraise=False))
        except Exception as exc:  # e.g. an executor already shut down: waiting callers must not hang
            with self._lock:
                self._calls.pop(key, None)
            future.set_exception(exc)
            log.warning("could not start the background computation for %s: %s", key, exc)
            return False
        return True

    def _run(self, key: str, future: Future, fn: Callable[[], Any], reraise: bool = True) -> Any:
        try:
            result = fn()
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            if reraise:
                raise
            log.warning("background computation for %s failed: %s", key, exc)
        finally:
            with self._lock:
                self._calls.pop(key, None)

    def in_flight(self) -> int:
        return len(self._calls)


class RedisLocks:
    """Short-lived distributed locks on one Redis client (``key + ':lock'``).

    The client may be a ``RedisCluster``: a lock's name keeps its key's ``{org}`` hash tag,
    so it lives on the entry's node and the release script touches one key.

    Redis errors become :class:`~wedcache.errors.TierUnavailable` (``redis``), as in the
    Redis tier, so the cache guards locks with the Redis tier's breaker.
    """

    def __init__(self, client, timeout_seconds: float = 30.0):
        self.client = client
        self.timeout_ms = int(timeout_seconds * 1000)
        self._release = client.register_script(LUA_RELEASE_SCRIPT)

    def acquire(self, key: str) -> str | None:
        """A token when the lock was free (now ours), else ``None``."""
        token = secrets.token_hex(16)
        return token if self._call(self.client.set, self.name(key), token, nx=True, px=self.timeout_ms) else None

    def held(self, key: str) -> bool:
        return bool(self._call(self.client.exists, self.name(key)))

    def release(self, key: str, token: str) -> bool:
        return bool(self._call(self._release, keys=[self.name(key)], args=[token]))

    @staticmethod
    def _call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except REDIS_ERRORS as exc:
            raise TierUnavailable("redis", exc) from exc

    @staticmethod
    def name(key: str) -> str:
        return key + ":lock"
