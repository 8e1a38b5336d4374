"""Cache keys: :func:`normalise_query`, :func:`organization_uuid`, :func:`cache_key`.

A key is ``ai:{<organization uuid>}:<cache type>:<digest>``. The digest is a BLAKE2b hash
of the normalised query (Unicode NFKC, case-folded, whitespace collapsed) and of the
context fields that change the answer (date, location, vendor types, guest count, budget,
seasonal factors); the wedding id is not one of them, so weddings with the same question
share an answer. The organization is part of the key, so two organizations never share
an entry; the braces make it a Redis Cluster hash tag, so an organization's keys and index
sets live in one slot. Keys are the same in every process and on every machine.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid

import orjson

from .context import WeddingContext
from .errors import ContextError

# A fixed namespace: organization and wedding names map to the same UUID everywhere.
WEDCACHE_NAMESPACE = uuid.UUID("6f1c1a52-8d3e-5b7a-9c2d-0e4f5a6b7c8d")
_SPACES = re.compile(r"\s+")

CACHE_TYPES: tuple[str, ...] = (
    "chat_response", "vendor_recommendation", "venue_search", "budget_estimate",
    "timeline_planning", "guest_management", "content_generation", "general",
)


def normalise_query(query: str) -> str:
    """NFKC, case-folded, whitespace collapsed and trimmed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", query).casefold()).strip()


def organization_uuid(org: str | uuid.UUID, field: str = "organization_id") -> str:
    """``org`` as a canonical UUID string; a name maps to a stable UUID (uuid5)."""
    if isinstance(org, uuid.UUID):
        return str(org)
    if not isinstance(org, str) or not org.strip() or len(org) > 200:
        raise ContextError(field, "must be a UUID or a name of 1-200 characters")
    try:
        return str(uuid.UUID(org))
    except ValueError:
        return str(uuid.uuid5(WEDCACHE_NAMESPACE, org.strip().casefold()))


def check_cache_type(cache_type: str) -> str:
    if cache_type not in CACHE_TYPES:
        raise ContextError("cache_type", f"must be one of {', '.join(CACHE_TYPES)}")
    return cache_type


def answer_fields(context: WeddingContext) -> dict:
    """The context fields that change an answer, normalised."""
    fields = context.model_dump(mode="json", exclude={"wedding_id"}, exclude_none=True)
    if context.location:
        fields["location"] = normalise_query(context.location)
    fields["vendor_types"] = sorted(context.vendor_types)
    if context.budget is not None:
        fields["budget"] = round(context.budget, 2)
    return fields


def cache_key(org_id: str, query: str, context: WeddingContext, cache_type: str = "general") -> str:
    """The key of ``query`` in ``context`` for organization ``org_id`` (already a UUID)."""
    material = orjson.dumps([normalise_query(query), answer_fields(context)], option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(material, digest_size=16).hexdigest()
    return f"ai:{{{org_id}}}:{cache_type}:{digest}"


def key_organization(key: str) -> str:
    """The organization UUID inside ``key``."""
    return key[key.index("{") + 1:key.index("}")]
