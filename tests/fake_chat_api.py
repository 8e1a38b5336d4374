"""A small local fake of an OpenAI-compatible chat-completions API, for tests.

:class:`FakeChatAPI` is a FastAPI app serving ``POST /v1/chat/completions``: a valid
OpenAI-shaped completion whose text depends on the query (the last user message) and on the
whole conversation (so a different wedding context gives a different answer). Knobs script
what the next requests get — :meth:`~FakeChatAPI.fail_next` (e.g. 500, or 429 with
``Retry-After``), :meth:`~FakeChatAPI.reply_raw_next` (any status and body, e.g. malformed
JSON), :meth:`~FakeChatAPI.delay_next` (a slow answer) — and ``api_key`` makes it answer 401
to any other bearer token. Every request is recorded in :attr:`~FakeChatAPI.requests`.

:meth:`FakeChatAPI.running` serves it with uvicorn in a background thread, on 127.0.0.1 and a
port the OS picks, and stops it on exit::

    with FakeChatAPI(api_key="sk-test").running() as fake:
        ChatCompletionsOrigin(fake.base_url, api_key="sk-test").answer(...)
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

HOST = "127.0.0.1"
COMPLETIONS_PATH = "/v1/chat/completions"
STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received: lower-cased headers and the body (``json`` if it parsed)."""

    path: str
    headers: dict[str, str]
    raw: bytes
    json: Any

    def messages(self) -> list[dict[str, Any]]:
        body = self.json if isinstance(self.json, dict) else {}
        messages = body.get("messages")
        return messages if isinstance(messages, list) else []

    def content(self, role: str) -> str | None:
        """The content of the last message with ``role``."""
        found = [m.get("content") for m in self.messages() if isinstance(m, dict) and m.get("role") == role]
        return found[-1] if found else None


@dataclass(frozen=True)
class _Scripted:
    """What one upcoming request gets instead of (or before) the normal answer."""

    status: int | None = None  # None: the normal answer
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"
    delay_seconds: float = 0.0


class FakeChatAPI:
    """The fake API's state and app.

    :param api_key: when set, requests without ``Authorization: Bearer <api_key>`` get 401.
    """

    def __init__(self, api_key: str | None = None):
        self.api_key = api_key
        self.base_url: str | None = None  # set while :meth:`running`
        self._requests: list[RecordedRequest] = []
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self.app = self._build_app()

    # -- knobs --------------------------------------------------------------------------
    def fail_next(self, count: int = 1, *, status: int = 500, retry_after: float | str | None = None,
                  message: str = "The server had an error while processing your request.") -> None:
        """The next ``count`` requests get ``status`` with an OpenAI-style error (and ``Retry-After``)."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        self._push(count, _Scripted(status, json.dumps(_error_body(status, message)), headers))

    def reply_raw_next(self, body: str, *, count: int = 1, status: int = 200,
                       media_type: str = "application/json") -> None:
        """The next ``count`` requests get exactly ``body`` with ``status`` (e.g. malformed JSON)."""
        self._push(count, _Scripted(status, body, media_type=media_type))

    def delay_next(self, seconds: float, *, count: int = 1) -> None:
        """The next ``count`` requests are answered normally, after ``seconds`` of wall time."""
        self._push(count, _Scripted(delay_seconds=seconds))

    def _push(self, count: int, scripted: _Scripted) -> None:
        with self._lock:
            self._script.extend([scripted] * count)

    # -- what it saw --------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    # -- the app ------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI(title="fake chat-completions API")
        app.add_api_route(COMPLETIONS_PATH, self._completions, methods=["POST"])
        return app

    async def _completions(self, request: Request) -> Response:
        raw = await request.body()
        body = _json_or_none(raw)
        self._record(RecordedRequest(request.url.path, dict(request.headers), raw, body))
        if not self._authorised(request.headers.get("authorization")):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        scripted = self._next_scripted()
        if scripted.delay_seconds:
            await asyncio.sleep(scripted.delay_seconds)
        if scripted.status is not None:
            return Response(scripted.body, scripted.status, scripted.headers, scripted.media_type)
        problem = _invalid_request(body)
        if problem:
            return _error(400, problem, "invalid_request_error")
        return JSONResponse(completion(body))

    def _record(self, recorded: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(recorded)

    def _authorised(self, authorization: str | None) -> bool:
        return self.api_key is None or authorization == f"Bearer {self.api_key}"

    def _next_scripted(self) -> _Scripted:
        with self._lock:
            return self._script.popleft() if self._script else _Scripted()

    # -- serving ------------------------------------------------------------------------
    @contextmanager
    def running(self) -> Iterator[FakeChatAPI]:
        """Serve on 127.0.0.1 (a free port) in a background thread; stop on exit."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((HOST, 0))
        server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                               lifespan="off", timeout_graceful_shutdown=2))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                  name="fake-chat-api", daemon=True)
        thread.start()
        try:
            _wait_started(server, thread)
            self.base_url = f"http://{HOST}:{sock.getsockname()[1]}"
            yield self
        finally:
            self.base_url = None
            _stop(server, thread)
            sock.close()


def completion(request: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-shaped completion answering the last user message of ``request``."""
    messages = request["messages"]
    query = next(m["content"] for m in reversed(messages) if m.get("role") == "user")
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:8]
    text = f"Fake wedding advice for {query!r}: book early and compare three quotes (ref {digest})."
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
    completion_tokens = len(text.split())
    return {"id": f"chatcmpl-{digest}", "object": "chat.completion", "created": int(time.time()),
            "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def _invalid_request(body: Any) -> str | None:
    """Why ``body`` is not a usable chat-completions request, or ``None``."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "'model' is required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "'messages' must be a list of objects"
    if not any(m.get("role") == "user" and isinstance(m.get("content"), str) for m in messages):
        return "a user message is required"
    return None


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _error_body(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    kind = kind or ("rate_limit_exceeded" if status == 429 else "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(_error_body(status, message, kind), status_code=status)


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the fake chat API stopped during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fake chat API did not start within {STARTUP_TIMEOUT_SECONDS} s")
        time.sleep(0.01)


def _stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(SHUTDOWN_TIMEOUT_SECONDS)
    if thread.is_alive():
        server.force_exit = True
        thread.join(SHUTDOWN_TIMEOUT_SECONDS)
