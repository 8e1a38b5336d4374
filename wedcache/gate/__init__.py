"""The CI performance gate: serve the real service, load it with Locust, check the SLA.

``wedcache gate run`` (:func:`~wedcache.gate.run.run_gate`) starts ``python -m wedcache serve``
on a free loopback port against real Redis and PostgreSQL, warms the cache with queries of
the locustfile's own workload generator, runs headless Locust (``loadtests/locustfile.py``,
bounded by ``-t`` and writing ``--csv``), reads Locust's stats CSV and the server's
``/api/metrics`` and ``/api/ai-cache/statistics``, and evaluates named checks
(:mod:`~wedcache.gate.checks`) whose thresholds come from the policy's ``[sla]`` or the
profile, overridable by a TOML file. Results are ``gate.json`` plus a
:class:`~wedcache.reporting.Report` (:mod:`~wedcache.gate.report`). ``wedcache gate compare``
(:mod:`~wedcache.gate.compare`) compares two ``gate.json`` files.
"""
from .errors import GateError, GateInputError

__all__ = ["GateError", "GateInputError"]
