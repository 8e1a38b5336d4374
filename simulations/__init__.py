"""The lab around the cache: workload model (:mod:`simulations.workload`), and later the SimPy
model, tier and origin models, trace replay and tuning. Nothing here re-implements cache logic;
every driver calls :class:`wedcache.TieredCache`.
"""
