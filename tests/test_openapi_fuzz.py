"""Property-based fuzzing of the HTTP API from its own ``/openapi.json`` (schemathesis).

Every operation the service documents gets a bounded number of generated requests, valid
and invalid (schemathesis's positive and negative modes), sent in-process to the real app
over real Redis and PostgreSQL with an instant origin. Each response must not be a 5xx, and
must conform to the document: a documented status code, the documented content type and
headers, and a body matching the documented schema (the error envelope included).

Every request carries an admin key on the ``enterprise`` plan (unlimited rate), so the
fuzzer reaches the handlers rather than bouncing off ``CACHE_002``/``CACHE_003``, and admin-only
paths (``scope: global`` invalidation) are exercised too.

How it is wired (schemathesis 4.32 under pytest 9.2):

* The schema is what ``create_app()`` serves at ``/openapi.json``, fetched over ASGI by
  ``schemathesis.openapi.from_asgi`` at import time from a document-only instance of the app
  whose state is a stub (the document does not depend on the state, and importing the module
  must not open servers). ``schemathesis.pytest.from_fixture`` (the lazy loader that would take
  the app from a fixture) cannot be used: under pytest 9.2 it fails with ``AttributeError:
  'Function' object has no attribute '_nodeid'``. :func:`test_the_fuzzed_document_is_the_served_one`
  checks that the document equals the one the fixture-built app generates.
* Each generated request goes to the fixture-built app (``call_and_validate(app=...)``).
  schemathesis's ASGI transport runs that app's lifespan itself (started on the first call,
  ended by schemathesis's pytest plugin at the test's teardown), so ``app.state.wedcache``
  exists while it calls the app. No ``TestClient`` is opened alongside: a second lifespan would
  build a second :class:`~wedcache.service.state.ServiceState`, and whichever shut down first
  would close the other's (``app.state.wedcache`` is one attribute).
"""
from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from wedcache.apikeys import ApiKeyStore
from wedcache.config import load_settings
from wedcache.service import create_app

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, allow_header_conformance, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_app(services, redis_url, migrated_database_url):
    settings_ = load_settings(redis_url=redis_url, database_url=migrated_database_url, origin_latency_median_ms=0,
                              origin_latency_p95_ms=0, memory_size_mb=64)
    return create_app(settings_)


@pytest.fixture(scope="module")
def admin_headers(migrated_database_url) -> dict[str, str]:
    _, secret = ApiKeyStore(migrated_database_url).create(str(uuid.uuid4()), "enterprise", "admin")
    return {"Authorization": f"Bearer {secret}"}


class _NoState:
    """The state of the document-only app: nothing to open, nothing to close."""

    def close(self) -> None:
        pass


schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(load_settings(), open_state=_NoState))


OPERATIONS = {
    ("POST", "/api/ai-cache/query"), ("DELETE", "/api/ai-cache/invalidate"), ("POST", "/api/ai-cache/seasonal-scaling"),
    ("GET", "/api/ai-cache/seasonal-scaling"), ("GET", "/api/ai-cache/statistics"), ("POST", "/api/ai-cache/security"),
    ("GET", "/api/metrics"), ("GET", "/healthz"), ("GET", "/readyz"),
}


def test_the_fuzzed_document_is_the_served_one(fuzzed_app):
    assert schema.raw_schema == fuzzed_app.openapi()
    documented = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert documented == OPERATIONS


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
def test_no_server_error_and_responses_match_the_document(case, fuzzed_app, admin_headers):
    case.call_and_validate(app=fuzzed_app, headers=admin_headers, checks=CHECKS)
