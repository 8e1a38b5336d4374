"""A loopback TCP round-robin balancer: :class:`Balancer`.

Several ``wedcache serve`` replicas need one address in front of them (the fleet, the
distributed gate, the fault drills). This is a byte pipe, not an HTTP proxy: each accepted
connection goes to the next backend, in turn, that accepts a TCP connection, and stays
pinned to it for its whole life (HTTP keep-alive keeps talking to one replica). A backend
that refuses (a killed replica) is skipped, so new connections go to the others at once;
:meth:`Balancer.mark_down` takes a backend out of the rotation on purpose. When no backend
accepts, the client's connection is closed.

It runs an asyncio server on a loop of its own in a daemon thread (:meth:`Balancer.start`,
:meth:`Balancer.stop`, or ``with Balancer(...) as b:``), so a blocking caller can use it.
"""
from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Sequence

HOST = "127.0.0.1"
CONNECT_TIMEOUT_SECONDS = 2.0
CHUNK_BYTES = 64 * 1024
START_TIMEOUT_SECONDS = 10.0


class Balancer:
    """Round-robin over ``backends`` (ports on 127.0.0.1), listening on ``port`` (0: a free one).

    :attr:`connections` counts, per backend index, the connections it was given.
    """

    def __init__(self, backends: Sequence[int], port: int = 0):
        if not backends:
            raise ValueError("backends: at least one backend port is needed")
        self.backends = list(backends)
        self.port = port
        self.connections: Counter[int] = Counter()
        self.refused = 0
        """Connections no backend accepted (closed at once)."""
        self._down: set[int] = set()
        self._next = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # -- rotation -------------------------------------------------------------------------
    def mark_down(self, index: int) -> None:
        """Give backend ``index`` no new connections (open ones carry on)."""
        self._check(index)
        with self._lock:
            self._down.add(index)

    def mark_up(self, index: int) -> None:
        """Put backend ``index`` back into the rotation."""
        self._check(index)
        with self._lock:
            self._down.discard(index)

    def candidates(self) -> list[int]:
        """The backends to try for the next connection, in order: every one that is not
        down, starting after the one that got the previous connection."""
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.backends)
            order = [(start + k) % len(self.backends) for k in range(len(self.backends))]
            return [i for i in order if i not in self._down]

    def _check(self, index: int) -> None:
        if not 0 <= index < len(self.backends):
            raise IndexError(f"backend index {index}: the balancer has {len(self.backends)} backends")

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "Balancer":
        """Listen (in a background thread) and return once connections are accepted."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_server(self._handle, HOST, self.port))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001  (reported to start())
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(_cancel_all(loop))
            loop.close()

        self._thread = threading.Thread(target=run, name="wedcache-balancer", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS) or failure:
            raise RuntimeError(f"the balancer could not listen on {HOST}:{self.port}: "
                               f"{failure[0] if failure else 'timed out'}")
        return self

    def stop(self) -> None:
        """Stop listening, close every piped connection and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        def shut() -> None:
            if self._server is not None:
                self._server.close()
            loop.stop()

        loop.call_soon_threadsafe(shut)
        thread.join(START_TIMEOUT_SECONDS)
        self._loop = self._thread = None

    def __enter__(self) -> "Balancer":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- one connection -------------------------------------------------------------------
    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        backend = await self._connect()
        if backend is None:
            self.refused += 1
            client_writer.close()
            return
        backend_reader, backend_writer = backend
        try:
            await asyncio.gather(_pump(client_reader, backend_writer), _pump(backend_reader, client_writer))
        except asyncio.CancelledError:
            pass  # the balancer stops: end quietly (asyncio's stream callback logs a cancelled handler)
        finally:
            for writer in (client_writer, backend_writer):
                writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the first candidate backend that accepts one."""
        for index in self.candidates():
            try:
                pair = await asyncio.wait_for(asyncio.open_connection(HOST, self.backends[index]),
                                              CONNECT_TIMEOUT_SECONDS)
            except (OSError, asyncio.TimeoutError):
                continue
            self.connections[index] += 1
            return pair
        return None


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until EOF, then half-close the other side; a reset ends both directions."""
    try:
        while chunk := await reader.read(CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        writer.close()  # a reset on one side: drop the other one too


async def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
