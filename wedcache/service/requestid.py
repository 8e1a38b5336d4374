"""``X-Request-ID``: :class:`RequestIdMiddleware`.

A plain ASGI middleware (no per-request task, unlike Starlette's ``BaseHTTPMiddleware``):
it takes the caller's ``X-Request-ID`` when it is a sane token (up to 128 characters of
letters, digits and ``-_.:``), otherwise makes one, keeps it in ``request.state.request_id``
for logs and error envelopes, and echoes it on every response.
"""
from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9\-_.:]{1,128}")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), b"")
        rid = given if _SANE.fullmatch(given) else secrets.token_hex(16).encode()  # uuid4's format, a third of its cost
        scope.setdefault("state", {})["request_id"] = rid.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER, rid)]
            await send(message)

        await self.app(scope, receive, send_with_id)
