"""An origin backed by a real LLM: :class:`ChatCompletionsOrigin`.

It answers a wedding query by POSTing to an OpenAI-compatible ``/v1/chat/completions``
endpoint: a system message says it is a wedding-planning assistant and carries the wedding
context as JSON, the user message is the query. The answer is
``{"answer": <assistant text>, "model": ..., "usage": {...}}``.

Transient failures (connect errors, timeouts, HTTP 429 and 5xx) are retried with exponential
backoff, honouring ``Retry-After`` (capped); every wait goes through the injected
:class:`~wedcache.clock.Clock`, so tests on a :class:`~wedcache.clock.ManualClock` never
really sleep. Anything else (another 4xx, a malformed body) fails at once. Every failure is
an :class:`~wedcache.errors.OriginUnavailable` naming the URL and the cause — never the API
key.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .clock import Clock, SystemClock
from .context import WeddingContext
from .errors import OriginUnavailable

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
MAX_RETRY_AFTER_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0
MAX_CONNECT_TIMEOUT_SECONDS = 10.0
BODY_SNIPPET_CHARS = 200

SYSTEM_PROMPT = ("You are a wedding-planning assistant. Answer the planner's question concisely "
                 "and practically for this wedding. Wedding context (JSON): {context}")


@dataclass(frozen=True)
class _Failure:
    """A retryable failure of one attempt."""

    reason: str
    retry_after: float | None = None
    cause: BaseException | None = None


class ChatCompletionsOrigin:
    """Answers a wedding query by POSTing to ``{base_url}/v1/chat/completions`` (OpenAI-compatible).

    :param base_url: the API's base URL, e.g. ``http://127.0.0.1:8099`` (a trailing ``/v1`` is
        accepted and not repeated).
    :param model: the model named in each request.
    :param api_key: sent as ``Authorization: Bearer <api_key>`` when given (empty means none).
    :param timeout_seconds: per-attempt read/write/pool timeout; connect is capped at 10 s.
    :param retries: further attempts after the first on a retryable failure.
    :param backoff_seconds: first backoff; doubles per retry, capped at 30 s.
    :param clock: what the backoff waits on (default :class:`~wedcache.clock.SystemClock`).
    :param client: an ``httpx.Client`` to use (the caller closes it); default: an owned,
        pooled client closed by :meth:`close`.
    """

    def __init__(self, base_url: str, model: str = "gpt-4o-mini", api_key: str | None = None, *,
                 timeout_seconds: float = 30.0, retries: int = 2, backoff_seconds: float = 0.5,
                 clock: Clock | None = None, client: httpx.Client | None = None):
        _check_settings(model, timeout_seconds, retries, backoff_seconds)
        self.url = completions_url(base_url)
        self.model = model
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.clock = clock or SystemClock()
        self._headers = _headers(api_key)
        self._timeout = httpx.Timeout(timeout_seconds,
                                      connect=min(timeout_seconds, MAX_CONNECT_TIMEOUT_SECONDS))
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=self._timeout)

    # -- the origin ---------------------------------------------------------------------
    def __call__(self, query: str, context: WeddingContext) -> dict[str, Any]:
        return self.answer(query, context)

    def answer(self, query: str, context: WeddingContext) -> dict[str, Any]:
        """The assistant's answer to ``query`` in ``context``.

        :raises OriginUnavailable: after the retries are exhausted, on a 4xx other than 429,
            or on a malformed response.
        """
        body = self.request_body(query, context)
        failure: _Failure | None = None
        for attempt in range(self.retries + 1):
            if failure is not None:
                self.clock.sleep(self.wait_seconds(attempt, failure.retry_after))
            result = self._attempt(body)
            if not isinstance(result, _Failure):
                return result
            failure = result
        assert failure is not None
        raise OriginUnavailable(f"chat origin POST {self.url} failed after {self.retries + 1} "
                                f"attempt(s): {failure.reason}") from failure.cause

    def request_body(self, query: str, context: WeddingContext) -> dict[str, Any]:
        """The chat-completions request for ``query`` in ``context``."""
        return {"model": self.model,
                "messages": [{"role": "system", "content": system_prompt(context)},
                             {"role": "user", "content": query}]}

    def wait_seconds(self, attempt: int, retry_after: float | None) -> float:
        """The wait before ``attempt`` (1 = the first retry): ``Retry-After`` or the backoff."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_SECONDS)
        return min(self.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)

    # -- one attempt --------------------------------------------------------------------
    def _attempt(self, body: dict[str, Any]) -> dict[str, Any] | _Failure:
        """The parsed answer, or a retryable failure; raises on a permanent one."""
        try:
            response = self._client.post(self.url, json=body, headers=self._headers,
                                         timeout=self._timeout)
        except httpx.TransportError as exc:  # connect errors, timeouts, broken connections
            return _Failure(f"{type(exc).__name__}: {exc}", cause=exc)
        if _retryable(response.status_code):
            retry_after = retry_after_seconds(response.headers.get("retry-after"), self.clock.now())
            return _Failure(_describe(response), retry_after)
        if not response.is_success:
            raise OriginUnavailable(f"chat origin POST {self.url} was refused: {_describe(response)}")
        return self._parse(response)

    def _parse(self, response: httpx.Response) -> dict[str, Any]:
        try:
            return parse_completion(response.json(), self.model)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise OriginUnavailable(f"chat origin POST {self.url} returned a malformed response "
                                    f"({exc}): {_snippet(response.text)}") from exc

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Close the HTTP client if this origin created it (an injected one is the caller's)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> ChatCompletionsOrigin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChatCompletionsOrigin(url={self.url!r}, model={self.model!r})"


def completions_url(base_url: str) -> str:
    """``{base_url}/v1/chat/completions``; a base URL already ending in ``/v1`` is not doubled."""
    url = httpx.URL(base_url.strip())
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    base = str(url).rstrip("/")
    if base.endswith("/v1"):
        base = base[:-len("/v1")]
    return base + CHAT_COMPLETIONS_PATH


def system_prompt(context: WeddingContext) -> str:
    """The system message: the assistant's role and the wedding context as JSON."""
    return SYSTEM_PROMPT.format(context=json.dumps(context.to_json(), sort_keys=True, ensure_ascii=False))


def parse_completion(data: Any, default_model: str) -> dict[str, Any]:
    """``{"answer", "model", "usage"}`` from a chat-completions body; raises ``ValueError`` if malformed."""
    if not isinstance(data, dict):
        raise ValueError("the body is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("no choices")
    content = choices[0]["message"]["content"]
    if not isinstance(content, str) or not content.strip():
        raise ValueError("the first choice has no text content")
    usage = data.get("usage")
    model = data.get("model")
    return {"answer": content, "model": model if isinstance(model, str) and model else default_model,
            "usage": usage if isinstance(usage, dict) else {}}


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or ``None``."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until(value, now)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _seconds_until(http_date: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(http_date.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp() - now


def _check_settings(model: str, timeout_seconds: float, retries: int, backoff_seconds: float) -> None:
    if not model:
        raise ValueError("model must not be empty")
    if not timeout_seconds > 0:
        raise ValueError("timeout_seconds must be > 0")
    if retries < 0:
        raise ValueError("retries must be >= 0")
    if backoff_seconds < 0:
        raise ValueError("backoff_seconds must be >= 0")


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "wedcache-chat-origin"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _describe(response: httpx.Response) -> str:
    return f"HTTP {response.status_code} {response.reason_phrase}: {_snippet(response.text)}"


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= BODY_SNIPPET_CHARS else text[:BODY_SNIPPET_CHARS] + "…"
