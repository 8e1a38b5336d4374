"""How wedcache runs an ASGI app on uvicorn: :func:`run_uvicorn` (``wedcache serve``, the
service benchmark) and :class:`NoDelayH11Protocol`.

uvicorn's ``--workers`` mode binds the listening socket itself with ``socket.socket(family)``,
whose protocol number is 0; asyncio sets ``TCP_NODELAY`` only on accepted sockets whose
protocol is ``IPPROTO_TCP``, so with several workers every connection keeps Nagle's
algorithm. h11 writes a response's headers and its body in two writes: the body then waits
for the client's delayed ACK, about 40 ms on every keep-alive request (a memory hit measured
44 ms with two workers, 2 ms with one). :class:`NoDelayH11Protocol` sets ``TCP_NODELAY`` on
each connection itself, whatever bound the socket.

Run an app as the service is run: ``python -m wedcache.service.server MODULE:FACTORY --port N --workers W``.
"""
from __future__ import annotations

import argparse
import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

SHUTDOWN_GRACE_SECONDS = 30


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with ``TCP_NODELAY`` on the connection (see the module docstring)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on ``transport``'s TCP socket (nothing for other sockets)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def run_uvicorn(app: str, *, host: str = "127.0.0.1", port: int = 3000, workers: int = 1,
                log_level: str = "info") -> None:
    """Serve the factory ``app`` (``module:function``) until SIGINT/SIGTERM; in-flight
    requests get :data:`SHUTDOWN_GRACE_SECONDS` to finish."""
    import uvicorn

    uvicorn.run(app, factory=True, host=host, port=port, workers=workers, log_level=log_level,
                http=NoDelayH11Protocol, timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS, access_log=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wedcache.service.server", description=__doc__.split("\n")[0])
    parser.add_argument("app", help="the app factory, module:function")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    run_uvicorn(args.app, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)


if __name__ == "__main__":
    main()
