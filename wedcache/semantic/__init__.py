"""Semantic matching with a wedding-aware guard: more hits from paraphrases, no false answers.

Exact keys are always tried first (that is :class:`~wedcache.cache.TieredCache`'s job);
this package answers the question "is there a stored answer to a question that *means*
the same?". One idea per module:

* :mod:`.embedder` — a sentence-embedding model shipped inside a pip package (WordLlama),
  loaded offline; ``embed(texts)`` gives unit-length float32 rows.
* :mod:`.entities` (+ :mod:`.lexicon`, its words) — what changes a wedding answer, read
  from the query and the ``weddingContext``: date, location, vendor types, guest-count and
  budget ranges, polarity words, style, what is asked, other figures.
* :mod:`.guard` — a near match counts only when those agree; each rejection has a named
  reason, counted in ``ai_cache_semantic_rejections_total{reason}``.
* :mod:`.index` — the memory tier's vector index, one per organization and cache type.
* :mod:`.pgvector` — the PostgreSQL side (``0006_semantic.sql``, HNSW, organization first).
* :mod:`.matcher` — :class:`SemanticMatcher`: embed, search memory then PostgreSQL, guard.
* :mod:`.settings` — the policy's ``[semantic]`` table (``enabled``, ``threshold``, ``model``,
  ``cache_types``) as :class:`SemanticSettings`.
* :mod:`.pairs`, :mod:`.tuning`, :mod:`.bench` — labelled pairs, the threshold choice
  (``wedcache tune semantic``) and ``wedcache bench-semantic``.

The model needs the optional extra: ``pip install -e ".[semantic]"``.
"""
