"""Invalidations reach every replica's memory tier: :class:`InvalidationBus`.

Each replica (a ``wedcache serve`` worker) keeps its own memory tier; Redis and PostgreSQL
are shared. When one replica invalidates (``DELETE /api/ai-cache/invalidate``, a GDPR
deletion), :meth:`InvalidationBus.publish` sends the :class:`~wedcache.entry.Selector` on a
Redis pub/sub channel; every other replica's subscriber thread applies it to its own memory
tier (not through the cache, so nothing is published again). A replica whose subscription
broke may have missed messages: when it is subscribed again it drops its whole memory tier
rather than serve what another replica invalidated meanwhile (the lower tiers still hold
the valid entries, so this costs only memory hits).

Publishing is best effort: with Redis down the invalidation still removes what the
publishing replica and PostgreSQL hold, and the other replicas — whose subscriptions broke
too — drop their memory tiers when Redis is back.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from typing import Any

import orjson

from .entry import Selector
from .redis_client import ERRORS as REDIS_ERRORS
from .redis_client import redis_client

CHANNEL = "wedcache:invalidations"
RETRY_SECONDS = 1.0

log = logging.getLogger(__name__)


class InvalidationBus:
    """Publishes this replica's invalidations and applies the others' to ``memory``.

    :param redis_url: the shared Redis; a ``redis+cluster://`` URL subscribes on one cluster
        node (PUBLISH reaches every node of a cluster).
    :param memory: this replica's memory tier (``invalidate(selector)``, ``clear()``).
    """

    def __init__(self, redis_url: str, memory: Any, *, channel: str = CHANNEL):
        self.memory, self.channel = memory, channel
        self.replica_id = uuid.uuid4().hex
        self.applied = 0
        """Invalidations received from other replicas and applied here."""
        self.resets = 0
        """Times the memory tier was dropped after a broken subscription."""
        self._client = redis_client(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="wedcache-invalidations", daemon=True)
        self._thread.start()

    def publish(self, selector: Selector, **_: Any) -> bool:
        """Send ``selector`` to the other replicas; ``False`` (logged) when Redis cannot take it.
        Fits :attr:`CacheEvents.invalidate <wedcache.events.CacheEvents>` as a listener."""
        message = orjson.dumps({"from": self.replica_id, "selector": dataclasses.asdict(selector)})
        try:
            self._client.publish(self.channel, message)
            return True
        except REDIS_ERRORS as exc:
            log.warning("invalidation not published to other replicas (they reset on reconnect): %s", exc)
            return False

    def wait_subscribed(self, timeout: float = 5.0) -> bool:
        return self._subscribed.wait(timeout)

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._client.close()

    # -- the subscriber ------------------------------------------------------------------
    def _listen(self) -> None:
        broken = False
        while not self._stopping.is_set():
            try:
                self._serve_subscription(reset=broken)
            except REDIS_ERRORS as exc:
                self._subscribed.clear()
                if not broken:
                    log.warning("invalidation subscription lost (memory tier is dropped on reconnect): %s", exc)
                broken = True
                self._stopping.wait(RETRY_SECONDS)
            else:
                return

    def _serve_subscription(self, reset: bool) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
            if reset:
                self.memory.clear()
                self.resets += 1
                log.info("invalidation subscription back: memory tier dropped")
            self._subscribed.set()
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=0.2)
                if message is not None:
                    self._apply(message["data"])
        finally:
            pubsub.close()

    def _apply(self, data: bytes) -> None:
        try:
            message = orjson.loads(data)
            if message["from"] == self.replica_id:
                return
            fields = {k: tuple(v) if isinstance(v, list) else v for k, v in message["selector"].items()}
            self.memory.invalidate(Selector(**fields))
            self.applied += 1
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored a malformed invalidation message: %s", exc)
