"""Injection attempts in request text: :func:`find_injection` and :func:`refuse_injection`.

wedcache itself is not injectable by request text: every SQL statement is parameterised,
answers are JSON, and keys are digests. Text carrying SQL, script or prompt-injection
signatures is refused anyway (``CACHE_007``, with a ``SECURITY_VIOLATION`` audit row of risk
``high``): a cached answer is shown to the product's users and the query reaches an LLM, so
such text is an attack on what stands behind the cache, and the attempt is worth a record.
The signatures are narrow on purpose (``UNION SELECT``, ``'; DROP TABLE``, ``' OR 1=1 --``,
``<script``, ``javascript:``, ``onerror=``, "ignore previous instructions"), so that
ordinary wedding questions ("drop-off times", "select a florist", "union hall venues")
pass.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from ..apikeys import ApiKey
from .errors import ApiError

SIGNATURES: dict[str, re.Pattern[str]] = {
    "sql": re.compile(r"\bunion\s+(all\s+)?select\b|;\s*(drop|truncate|alter|delete|insert|update)\s+\w"
                      r"|'\s*or\s+'?\w+'?\s*=\s*'?\w+'?\s*(--|#|;|$)|\bpg_sleep\s*\(|\bsleep\s*\(\s*\d+\s*\)"
                      r"|/\*.*?\*/\s*(select|union|drop)\b", re.IGNORECASE),
    "script": re.compile(r"<\s*/?\s*(script|iframe|object|embed)\b|javascript\s*:|\bon(error|load|click|mouseover|"
                         r"focus)\s*=", re.IGNORECASE),
    "prompt": re.compile(r"\b(ignore|disregard|forget)\s+(all\s+|any\s+)?(the\s+|your\s+)?(previous|prior|above|"
                         r"earlier)\s+(instructions|prompts?|rules)\b", re.IGNORECASE),
}


def find_injection(fields: Mapping[str, Iterable[Any]]) -> tuple[str, str] | None:
    """``(field, kind)`` of the first text in ``fields`` (name -> values) that carries a
    signature, or ``None``; values that are not strings are skipped."""
    for field, values in fields.items():
        for value in values:
            if not isinstance(value, str):
                continue
            for kind, pattern in SIGNATURES.items():
                if pattern.search(value):
                    return field, kind
    return None


def refuse_injection(state: Any, request: Any, key: ApiKey, found: tuple[str, str]) -> None:
    """Audit the attempt (``SECURITY_VIOLATION``, risk ``high``) and raise ``CACHE_007`` naming
    the field. Writes to the database: an async endpoint calls it from the thread pool."""
    field, kind = found
    state.audit_violation(request, key, f"{kind} injection attempt", {"field": field, "kind": kind}, "high")
    raise ApiError("CACHE_007", f"{field}: the text looks like a {kind} injection attempt and was refused",
                   {"field": field, "kind": kind})
