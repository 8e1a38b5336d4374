"""ChatCompletionsOrigin against a local fake OpenAI-compatible API, over real HTTP on loopback.

Backoff waits go through a ManualClock, so nothing here really sleeps for a retry; the
tests check how far the clock moved, never wall-clock durations.
"""
from __future__ import annotations

import json
import socket
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Iterator

import httpx
import pytest

from fake_chat_api import FakeChatAPI
from wedcache.answering import WeddingAICacheService
from wedcache.assembly import build_cache
from wedcache.chat_origin import (MAX_RETRY_AFTER_SECONDS, ChatCompletionsOrigin, completions_url,
                                  retry_after_seconds)
from wedcache.clock import ManualClock
from wedcache.config import load_settings
from wedcache.context import WeddingContext, parse_context
from wedcache.errors import OriginUnavailable

API_KEY = "sk-test-wedding"
QUERY = "rustic barn venues near Austin for 120 guests"


@pytest.fixture
def fake() -> Iterator[FakeChatAPI]:
    with FakeChatAPI(api_key=API_KEY).running() as api:
        yield api


@pytest.fixture
def context() -> WeddingContext:
    return parse_context({"weddingId": "w-42", "weddingDate": "2026-06-06", "location": "Austin, TX",
                          "vendorTypes": ["venue", "caterer"], "guestCount": 120, "budget": 30000})


@pytest.fixture
def origin(fake, clock) -> Iterator[ChatCompletionsOrigin]:
    with ChatCompletionsOrigin(fake.base_url, model="wed-test-model", api_key=API_KEY,
                               timeout_seconds=5.0, retries=2, backoff_seconds=0.5, clock=clock) as chat:
        yield chat


def moved(clock: ManualClock, start: float) -> float:
    return clock.now() - start


# -- a normal answer ------------------------------------------------------------------------
def test_answer_comes_from_the_api(fake, origin, context):
    answer = origin.answer(QUERY, context)

    assert set(answer) == {"answer", "model", "usage"}
    assert QUERY in answer["answer"] and answer["answer"].startswith("Fake wedding advice")
    assert answer["model"] == "wed-test-model"
    assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"] > 0
    json.dumps(answer)  # JSON-serialisable, as the cache stores it


def test_request_carries_model_query_context_and_key(fake, origin, context):
    origin.answer(QUERY, context)

    [request] = fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json["model"] == "wed-test-model"
    assert [m["role"] for m in request.json["messages"]] == ["system", "user"]
    assert request.content("user") == QUERY
    system = request.content("system")
    assert "wedding-planning assistant" in system
    assert json.dumps(context.to_json(), sort_keys=True) in system


def test_answer_depends_on_query_and_context(origin, context):
    first = origin.answer(QUERY, context)["answer"]
    assert origin.answer(QUERY, context)["answer"] == first
    assert origin.answer("florists in Austin", context)["answer"] != first
    assert origin.answer(QUERY, WeddingContext(location="Boston, MA"))["answer"] != first


def test_no_authorization_header_without_key(clock, context):
    with FakeChatAPI().running() as api, ChatCompletionsOrigin(api.base_url, clock=clock) as chat:
        assert chat.answer(QUERY, context)["model"] == "gpt-4o-mini"
        assert "authorization" not in api.requests[0].headers


# -- retries --------------------------------------------------------------------------------
def test_two_500s_then_success(fake, origin, clock, context):
    fake.fail_next(2, status=500)
    start = clock.now()

    answer = origin.answer(QUERY, context)

    assert QUERY in answer["answer"]
    assert fake.request_count == 3
    assert moved(clock, start) == pytest.approx(0.5 + 1.0)  # exponential backoff


def test_429_retry_after_is_honoured(fake, origin, clock, context):
    fake.fail_next(1, status=429, retry_after=7)
    start = clock.now()

    assert QUERY in origin.answer(QUERY, context)["answer"]
    assert fake.request_count == 2
    assert moved(clock, start) == pytest.approx(7.0)


def test_retry_after_as_http_date_is_honoured(fake, origin, clock, context):
    when = datetime.fromtimestamp(clock.now() + 12, tz=timezone.utc)
    fake.fail_next(1, status=503, retry_after=format_datetime(when, usegmt=True))
    start = clock.now()

    origin.answer(QUERY, context)

    assert moved(clock, start) == pytest.approx(12.0, abs=1.0)  # HTTP dates have whole seconds


def test_retry_after_is_capped(fake, origin, clock, context):
    fake.fail_next(1, status=429, retry_after=3600)
    start = clock.now()

    origin.answer(QUERY, context)

    assert moved(clock, start) == pytest.approx(MAX_RETRY_AFTER_SECONDS)


def test_exhausted_retries_raise_naming_url_and_status(fake, origin, clock, context):
    fake.fail_next(10, status=503)
    start = clock.now()

    with pytest.raises(OriginUnavailable) as caught:
        origin.answer(QUERY, context)

    message = str(caught.value)
    assert f"{fake.base_url}/v1/chat/completions" in message
    assert "503" in message and "3 attempt" in message
    assert fake.request_count == 3  # 1 + retries
    assert moved(clock, start) == pytest.approx(0.5 + 1.0)


def test_timeout_is_retried(fake, clock, context):
    fake.delay_next(1.0)  # the server answers the first request too late
    with ChatCompletionsOrigin(fake.base_url, api_key=API_KEY, timeout_seconds=0.2, retries=1,
                               clock=clock) as chat:
        assert QUERY in chat.answer(QUERY, context)["answer"]
    assert fake.request_count == 2


def test_timeouts_exhausted_name_the_timeout(fake, clock, context):
    fake.delay_next(1.0, count=2)
    with ChatCompletionsOrigin(fake.base_url, api_key=API_KEY, timeout_seconds=0.2, retries=1,
                               clock=clock) as chat, pytest.raises(OriginUnavailable, match="Timeout"):
        chat.answer(QUERY, context)


# -- permanent failures ---------------------------------------------------------------------
def test_401_fails_at_once_without_retry(fake, clock, context):
    start = clock.now()
    with ChatCompletionsOrigin(fake.base_url, api_key="sk-wrong", clock=clock) as chat:
        with pytest.raises(OriginUnavailable) as caught:
            chat.answer(QUERY, context)

    message = str(caught.value)
    assert "401" in message and f"{fake.base_url}/v1/chat/completions" in message
    assert "sk-wrong" not in message
    assert fake.request_count == 1
    assert clock.now() == start


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_fail_at_once(fake, origin, clock, context, status):
    fake.reply_raw_next(json.dumps({"error": {"message": "nope"}}), status=status)
    start = clock.now()

    with pytest.raises(OriginUnavailable, match=str(status)):
        origin.answer(QUERY, context)

    assert fake.request_count == 1
    assert clock.now() == start


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that is bound but not listening, so connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_connection_refused_is_retried_then_unavailable(refused_port, clock, context):
    url = f"http://127.0.0.1:{refused_port}"
    start = clock.now()
    with ChatCompletionsOrigin(url, retries=1, backoff_seconds=0.25, clock=clock) as chat:
        with pytest.raises(OriginUnavailable) as caught:
            chat.answer(QUERY, context)

    message = str(caught.value)
    assert f"{url}/v1/chat/completions" in message and "ConnectError" in message
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert moved(clock, start) == pytest.approx(0.25)


@pytest.mark.parametrize("body", [
    "{this is not json",
    "[]",
    json.dumps({"id": "x", "choices": []}),
    json.dumps({"choices": [{"message": {"role": "assistant", "content": None}}]}),
    json.dumps({"choices": [{"message": {"role": "assistant", "content": "   "}}]}),
    json.dumps({"choices": [{"text": "legacy completion shape"}]}),
])
def test_malformed_response_fails_at_once(fake, origin, clock, context, body):
    fake.reply_raw_next(body)
    start = clock.now()

    with pytest.raises(OriginUnavailable, match="malformed"):
        origin.answer(QUERY, context)

    assert fake.request_count == 1
    assert clock.now() == start


# -- in the service -------------------------------------------------------------------------
def test_service_caches_the_api_answer(fake, origin, clock, org_id):
    cache = build_cache(load_settings({}), clock=clock)  # memory only: no server needed
    service = WeddingAICacheService(cache, origin.answer)
    wedding = {"weddingDate": "2026-06-06", "location": "Austin, TX", "vendorTypes": ["venue"]}

    first = service.query(org_id, QUERY, wedding)
    second = service.query(org_id, QUERY, wedding)

    assert first["success"] and not first["cached"] and QUERY in first["data"]["answer"]
    assert second["cached"] and second["data"] == first["data"]
    assert fake.request_count == 1


# -- helpers and lifecycle ------------------------------------------------------------------
@pytest.mark.parametrize("base, expected", [
    ("http://127.0.0.1:8099", "http://127.0.0.1:8099/v1/chat/completions"),
    ("http://127.0.0.1:8099/", "http://127.0.0.1:8099/v1/chat/completions"),
    ("https://api.example.com/v1", "https://api.example.com/v1/chat/completions"),
    ("https://gw.example.com/openai/", "https://gw.example.com/openai/v1/chat/completions"),
])
def test_completions_url(base, expected):
    assert completions_url(base) == expected


@pytest.mark.parametrize("base", ["", "127.0.0.1:8099", "ftp://example.com", "http://"])
def test_bad_base_url_is_rejected(base):
    with pytest.raises(ValueError, match="base_url"):
        ChatCompletionsOrigin(base)


@pytest.mark.parametrize("kwargs", [{"retries": -1}, {"timeout_seconds": 0}, {"backoff_seconds": -1},
                                    {"model": ""}])
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        ChatCompletionsOrigin("http://127.0.0.1:8099", **kwargs)


def test_retry_after_parsing():
    now = 1_800_000_000.0
    in_30s = format_datetime(datetime.fromtimestamp(now + 30, tz=timezone.utc), usegmt=True)
    assert retry_after_seconds("5", now) == 5.0
    assert retry_after_seconds("1.5", now) == 1.5
    assert retry_after_seconds("-3", now) == 0.0
    assert retry_after_seconds(in_30s, now) == pytest.approx(30.0)
    for junk in (None, "", "soon", "nan", "inf"):
        assert retry_after_seconds(junk, now) is None


def test_close_closes_only_an_owned_client():
    owned = ChatCompletionsOrigin("http://127.0.0.1:8099")
    owned.close()
    assert owned._client.is_closed

    with httpx.Client() as client:
        borrowed = ChatCompletionsOrigin("http://127.0.0.1:8099", client=client)
        borrowed.close()
        assert not client.is_closed


def test_fake_stops_on_exit():
    api = FakeChatAPI()
    with api.running():
        url = api.base_url
        assert httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "user", "content": "hi"}]}).status_code == 200
    assert api.base_url is None
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}/v1/chat/completions", json={}, timeout=2.0)
