"""The drill's origin: :class:`CountingOrigin`, an OpenAI-compatible endpoint that counts its calls.

The service's own simulated origin counts calls per worker process and exports no total, and
the stampede figure must be exact across replicas and workers. So the drill points every
replica at this small ``POST /v1/chat/completions`` (``AI_CACHE_ORIGIN_URL``, answered by
:class:`~wedcache.chat_origin.ChatCompletionsOrigin`), served by uvicorn in a background
thread on a free loopback port. Each answer waits ``latency_seconds`` (so a stampede's
requests really arrive while the first one computes) and is counted in :attr:`calls`.
"""
from __future__ import annotations

import asyncio
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

HOST = "127.0.0.1"
START_SECONDS = 10.0
ORIGIN_MODEL = "wedcache-chaos-origin"


class CountingOrigin:
    """The app and its call counter; :meth:`running` serves it."""

    def __init__(self, latency_seconds: float = 0.05):
        from fastapi import FastAPI

        self.latency_seconds = latency_seconds
        self.calls = 0
        self.base_url: str | None = None
        self._lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self._complete)

    async def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        await asyncio.sleep(self.latency_seconds)
        query = next((m.get("content") for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
        return {"object": "chat.completion", "model": body.get("model") or ORIGIN_MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": f"Advice for {query!r}."},
                             "finish_reason": "stop"}], "usage": {}}

    def env(self) -> dict[str, str]:
        """The service's environment variables that make this the origin."""
        assert self.base_url, "the origin is not running"
        return {"AI_CACHE_ORIGIN_URL": self.base_url, "AI_CACHE_ORIGIN_MODEL": ORIGIN_MODEL}

    @contextmanager
    def running(self) -> Iterator["CountingOrigin"]:
        """Serve on a free loopback port in a daemon thread; stopped on exit."""
        import socket

        import uvicorn

        sock = socket.create_server((HOST, 0))
        server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                               timeout_graceful_shutdown=2))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="chaos-origin", daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + START_SECONDS
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the drill's origin did not start")
                time.sleep(0.02)
            self.base_url = f"http://{HOST}:{sock.getsockname()[1]}"
            yield self
        finally:
            server.should_exit = True
            thread.join(START_SECONDS)
            sock.close()
            self.base_url = None
