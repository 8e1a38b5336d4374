"""Operations over what the service stores: the library behind ``wedcache cache …``.

Each module is one report or one job over the same PostgreSQL and Redis the service writes,
and returns a plain, JSON-ready ``dict`` (camelCase keys, times as ISO 8601 UTC strings,
rates as fractions 0-1, times in milliseconds or seconds as the key says):

- :mod:`.analytics` — per-request metric rows: hit rate and response time per group, slow queries;
- :mod:`.analyze` — stored entries: query patterns, key counts and hot keys, vendors, entry sizes;
- :mod:`.scaling_status` — the season, its plan, stored seasonal configs, scaling audit rows;
- :mod:`.config_review` — the effective settings and policy figures, with warnings;
- :mod:`.warm` — pre-loading queries from a file through the real cache;
- :mod:`.stats` — entries and bytes per tier, by organization and cache type.

Clean-up and retention live in :mod:`wedcache.maintenance`. Every function takes the time
(``now``, epoch seconds) or a :class:`~wedcache.clock.Clock` from its caller, and builds its
SQL from fixed text and :mod:`psycopg.sql` identifiers; user input only ever travels as a
query parameter. :mod:`.db` holds what they share.
"""
