"""Replicas stay coherent through one Redis pub/sub channel: :class:`CoherenceBus`.

Each replica (a ``wedcache serve`` worker) keeps its own memory tier and its own seasonal
plan; Redis and PostgreSQL are shared. What one replica changes that the others hold a copy
of is published as a small JSON message; every other replica's subscriber thread applies it
directly (to its memory tier, or through :class:`~wedcache.seasonal_control.SeasonalControl`),
never through the code that published it, so nothing is published twice and nothing loops.
Every message names its ``kind`` and the replica it comes ``from`` (a replica skips its own):

- ``invalidate`` + ``selector``: ``DELETE /api/ai-cache/invalidate`` or a GDPR deletion
  (the cache's ``invalidate`` event). The others apply the
  :class:`~wedcache.entry.Selector` to their memory tier.
- ``overwrite`` + ``key``: this replica computed and stored an answer (the cache's ``store``
  event: once per miss fill or background refresh, never on a hit). The others drop their
  memory copy of that key and read the new entry from Redis or PostgreSQL on the next request.
  The key names its organization (its hash tag ``ai:{<org>}:…``), so nothing else is sent.
- ``scaling`` + ``season``, ``traffic_multiplier``, ``cache_size_multiplier``, ``apply``:
  an operator configured (``apply`` false) or executed a seasonal plan here. The others adopt
  the plan and, for an execution, apply it (memory budget, TTL factor).

A message without ``kind`` is an ``invalidate`` (what replicas sent before there were kinds).

A replica whose subscription broke may have missed messages: when it is subscribed again it
drops its whole memory tier rather than serve what another replica invalidated or overwrote
meanwhile (the lower tiers still hold the valid entries, so this costs only memory hits). A
missed scaling message is not recovered; the next configure or execute (or the calendar's
season change, which every replica applies by itself) brings the replicas together again.

Publishing is best effort, with short timeouts (a refused connection fails at once): with
Redis down the change still reaches the publishing replica and PostgreSQL, and the other
replicas, whose subscriptions broke too, drop their memory tiers when Redis is back.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections import Counter
from typing import Any, Callable

import orjson
from redis.backoff import NoBackoff
from redis.retry import Retry

from .entry import CacheEntry, Selector
from .redis_client import ERRORS as REDIS_ERRORS
from .redis_client import redis_client

CHANNEL = "wedcache:invalidations"
RETRY_SECONDS = 1.0
"""How long the subscriber waits before subscribing again after Redis failed."""
PUBLISH_TIMEOUT_SECONDS = 0.2
"""Connect and read timeout of a PUBLISH (on the request path of a miss, so short)."""

log = logging.getLogger(__name__)


class CoherenceBus:
    """Publishes this replica's invalidations, overwrites and scaling changes; applies the others'.

    :param redis_url: the shared Redis; a ``redis+cluster://`` URL subscribes on one cluster
        node (PUBLISH reaches every node of a cluster).
    :param memory: this replica's memory tier (``invalidate(selector)``, ``delete(key)``,
        ``clear()``), or ``None`` when it has none (its changes are still published).
    :param scaling: what applies another replica's scaling change
        (:meth:`SeasonalControl.apply_change <wedcache.seasonal_control.SeasonalControl.apply_change>`);
        ``None`` ignores scaling messages.
    """

    def __init__(self, redis_url: str, memory: Any = None, *, scaling: Any = None, channel: str = CHANNEL):
        self.memory, self.scaling, self.channel = memory, scaling, channel
        self.replica_id = uuid.uuid4().hex[:16]
        self.applied: Counter[str] = Counter()
        """Messages from other replicas applied here, by kind."""
        self.resets = 0
        """Times the memory tier was dropped after a broken subscription."""
        self.unpublished = 0
        """Messages Redis did not take (the others reset when their subscriptions come back)."""
        self._handlers: dict[str, Callable[[dict], None]] = {
            "invalidate": self._invalidate, "overwrite": self._overwrite, "scaling": self._scale}
        self._publisher = redis_client(redis_url, socket_timeout=PUBLISH_TIMEOUT_SECONDS,
                                       socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 0))
        self._subscriber = redis_client(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="wedcache-coherence", daemon=True)
        self._thread.start()

    # -- publishing: listeners of the cache's events and of SeasonalControl ------------------
    def publish_invalidation(self, selector: Selector, **_: Any) -> bool:
        """Send ``selector`` (fits the cache's ``invalidate`` event)."""
        return self._publish("invalidate", selector=dataclasses.asdict(selector))

    def publish_overwrite(self, entry: CacheEntry, **_: Any) -> bool:
        """Send the key of a newly stored entry (fits the cache's ``store`` event)."""
        return self._publish("overwrite", key=entry.key)

    def publish_scaling(self, **change: Any) -> bool:
        """Send a configured or executed plan (fits :attr:`SeasonalControl.listeners
        <wedcache.seasonal_control.SeasonalControl.listeners>`)."""
        return self._publish("scaling", **change)

    def _publish(self, kind: str, **fields: Any) -> bool:
        """``False`` (logged and counted) when Redis cannot take the message."""
        message = orjson.dumps({"kind": kind, "from": self.replica_id, **fields})
        try:
            self._publisher.publish(self.channel, message)
            return True
        except REDIS_ERRORS as exc:
            self.unpublished += 1
            log.warning("%s not published to other replicas (they reset on reconnect): %s", kind, exc)
            return False

    def wait_subscribed(self, timeout: float = 5.0) -> bool:
        return self._subscribed.wait(timeout)

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._publisher.close()
        self._subscriber.close()

    # -- the subscriber ------------------------------------------------------------------
    def _listen(self) -> None:
        broken = False
        while not self._stopping.is_set():
            try:
                self._serve_subscription(reset=broken)
            except REDIS_ERRORS as exc:
                self._subscribed.clear()
                if not broken:
                    log.warning("coherence subscription lost (memory tier is dropped on reconnect): %s", exc)
                broken = True
                self._stopping.wait(RETRY_SECONDS)
            else:
                return

    def _serve_subscription(self, reset: bool) -> None:
        pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
            if reset and self.memory is not None:
                self.memory.clear()
                self.resets += 1
                log.info("coherence subscription back: memory tier dropped")
            self._subscribed.set()
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=0.2)
                if message is not None:
                    self._apply(message["data"])
        finally:
            pubsub.close()

    def _apply(self, data: bytes) -> None:
        """Apply one message from another replica; a bad one is logged and skipped, never fatal."""
        try:
            message = orjson.loads(data)
            if message["from"] == self.replica_id:
                return
            kind = message.pop("kind", "invalidate")
            self._handlers[kind](message)
            self.applied[kind] += 1
        except Exception as exc:  # noqa: BLE001  (the subscription must outlive any one message)
            log.warning("ignored a coherence message it could not apply (%s): %.200r", exc, data)

    def _invalidate(self, message: dict) -> None:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in message["selector"].items()}
        selector = Selector(**fields)
        if self.memory is not None:
            self.memory.invalidate(selector)

    def _overwrite(self, message: dict) -> None:
        key = message["key"]
        if not isinstance(key, str):
            raise TypeError(f"key: expected a string, not {type(key).__name__}")
        if self.memory is not None:
            self.memory.delete(key)

    def _scale(self, message: dict) -> None:
        del message["from"]
        if self.scaling is not None:
            self.scaling.apply_change(**message)
