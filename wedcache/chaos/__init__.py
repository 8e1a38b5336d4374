"""Fault drills (``wedcache chaos run``, ``make chaos``): break Redis, PostgreSQL and a replica
under steady load against a fleet, and measure errors, hit rates, recovery and a stampede.

One idea per module: :mod:`~wedcache.chaos.faults` (the drill's own servers and outages),
:mod:`~wedcache.chaos.origin` (an origin that counts calls), :mod:`~wedcache.chaos.load`
(steady load and the stampede), :mod:`~wedcache.chaos.probe` (is a tier in use again),
:mod:`~wedcache.chaos.recovery` (the arithmetic), :mod:`~wedcache.chaos.checks` (the targets),
:mod:`~wedcache.chaos.drill` (the sequence) and :mod:`~wedcache.chaos.report` (the files).
"""
