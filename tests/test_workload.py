"""The workload model: reproducible requests, load profile, arrivals, catalogue, data changes, sampling."""
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from simulations.workload import (
    Catalogue, DataChanges, Workload, WorkloadSpec, arrival_times, change_rate_per_hour,
    daily_multiplier, iter_arrival_chunks, rate_at, rate_series, sample_batches, sample_keys,
    season_midpoint, seasonal_multiplier, weekly_multiplier,
)
from wedcache.context import check_query, parse_context
from wedcache.partition import LocationBasedCachePartitioner
from wedcache.policy import VENDOR_TYPES

UTC = timezone.utc
HOUR = 3600.0


def _requests(policy, seed, n=300):
    workload = Workload(WorkloadSpec(duration_seconds=HOUR, base_qps=2.0), policy, seed)
    return [request for _, request in zip(range(n), workload)]


def _share(codes, names, name):
    return np.mean(codes == names.index(name))


def test_same_seed_gives_identical_requests(policy):
    """Two workloads with one seed yield the same requests; another seed does not."""
    assert _requests(policy, 7) == _requests(policy, 7)
    assert _requests(policy, 7) != _requests(policy, 8)
    generator = Workload(WorkloadSpec(duration_seconds=HOUR), policy, np.random.default_rng(7))
    assert [r.time for r in generator] == [r.time for r in Workload(WorkloadSpec(duration_seconds=HOUR), policy, 7)]


def test_requests_come_in_time_order_and_iteration_replays(policy):
    """Requests are time-ordered inside the run, and iterating twice gives the same stream."""
    workload = Workload(WorkloadSpec(duration_seconds=2 * HOUR, base_qps=1.0), policy, 3)
    times = [r.time for r in workload]
    assert times == sorted(times) and 0 <= times[0] and times[-1] < 2 * HOUR
    assert [r.time for r in workload] == times


def test_batches_match_the_requests(policy):
    """``batches()`` carries the same times and query ids as the Request iterator."""
    workload = Workload(WorkloadSpec(duration_seconds=HOUR), policy, 5)
    times, ids = (np.concatenate(parts) for parts in zip(*workload.batches()))
    requests = list(workload)
    assert times.tolist() == [r.time for r in requests]
    assert ids.tolist() == [r.query_id for r in requests]
    assert requests[0].vendor_type == workload.catalogue.vendor_type(requests[0].query_id)


def test_poisson_arrivals_over_a_day_match_the_integrated_rate(policy):
    """A day's arrival count is within 3 standard deviations of the integrated rate."""
    spec = WorkloadSpec(start=datetime(2026, 6, 6, tzinfo=UTC), base_qps=0.5)
    expected = rate_series(np.arange(0.5, spec.duration_seconds), spec, policy).sum()
    count = arrival_times(spec, policy, np.random.default_rng(11)).size
    assert abs(count - expected) < 3 * np.sqrt(expected)


def test_uniform_arrivals_are_evenly_spaced_at_the_rate(policy):
    """Uniform arrivals: the count is the integrated rate, the spacing 1/rate."""
    spec = WorkloadSpec(arrivals="uniform", seasonal=False, weekly=False, daily=False, base_qps=2.0)
    times = arrival_times(spec, policy, np.random.default_rng(0))
    assert abs(times.size - 2.0 * spec.duration_seconds) <= 1
    assert np.allclose(np.diff(times), 0.5)


def test_chunks_cover_the_run_in_order(policy):
    """Each chunk lies inside its hour and is sorted; together they equal ``arrival_times``."""
    spec = WorkloadSpec(duration_seconds=5 * HOUR)
    chunks = list(iter_arrival_chunks(spec, policy, np.random.default_rng(2)))
    assert len(chunks) == 5
    for hour, chunk in enumerate(chunks):
        assert np.all(np.diff(chunk) >= 0) and np.all((hour * HOUR <= chunk) & (chunk < (hour + 1) * HOUR))
    assert np.array_equal(np.concatenate(chunks), arrival_times(spec, policy, np.random.default_rng(2)))


@pytest.mark.parametrize("season", ["spring", "summer", "fall", "winter"])
def test_seasonal_multiplier_is_the_policy_value_mid_season(policy, season):
    """In the middle of each season the multiplier is the policy's traffic_multiplier."""
    middle = season_midpoint(season, 2026, policy)
    assert policy.season_of(middle.date()) == season
    assert seasonal_multiplier(middle, policy) == pytest.approx(policy.seasons[season].traffic_multiplier)


def test_seasonal_multiplier_is_continuous_across_the_year(policy):
    """No jump above 2 % between consecutive days, New Year's Eve included."""
    days = [datetime(2025, 12, 1, tzinfo=UTC) + timedelta(days=i) for i in range(400)]
    values = np.array([seasonal_multiplier(day, policy) for day in days])
    assert np.max(np.abs(np.diff(values)) / values[:-1]) < 0.02
    new_year = [seasonal_multiplier(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s), policy) for s in (-1, 0)]
    assert new_year[0] == pytest.approx(new_year[1], rel=1e-6)


def test_weekly_profile_peaks_on_saturday_with_mean_one():
    """Mean over a week is 1; Saturday is the busiest day, then Sunday and Friday."""
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    minutes = np.array([weekly_multiplier(monday + timedelta(minutes=m)) for m in range(0, 7 * 1440, 10)])
    assert minutes.mean() == pytest.approx(1.0, abs=1e-3)
    by_day = minutes.reshape(7, -1).mean(axis=1)
    assert list(np.argsort(by_day)[::-1][:3]) == [5, 6, 4]
    assert np.max(np.abs(np.diff(minutes))) < 0.01


def test_daily_profile_peaks_in_the_evening_with_mean_one():
    """Mean over a day is 1; the peak is in the evening, the trough at night."""
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    values = np.array([daily_multiplier(midnight + timedelta(minutes=m)) for m in range(1440)])
    assert values.mean() == pytest.approx(1.0, abs=1e-3)
    assert 18 <= np.argmax(values) / 60 <= 22 and 1 <= np.argmin(values) / 60 <= 5
    assert np.max(np.abs(np.diff(values))) < 0.02


def test_rate_is_base_times_the_enabled_multipliers(policy):
    """``rate_at`` multiplies base_qps by exactly the profiles that are switched on."""
    when = datetime(2026, 7, 4, 20, 30, tzinfo=UTC)
    full = WorkloadSpec(base_qps=2.0)
    product = seasonal_multiplier(when, policy) * weekly_multiplier(when) * daily_multiplier(when)
    assert rate_at(when, full, policy) == pytest.approx(2.0 * product)
    flat = WorkloadSpec(base_qps=2.0, seasonal=False, daily=False)
    assert rate_at(when, flat, policy) == pytest.approx(2.0 * weekly_multiplier(when))


def test_zipf_head_share_is_one_over_the_harmonic_number(policy):
    """The most popular query's share of requests is about 1 / H(n, alpha)."""
    spec = WorkloadSpec(distinct=1000, zipf_alpha=0.9)
    ids = Catalogue(spec, np.random.default_rng(1)).sample(np.random.default_rng(2), 200_000)
    harmonic = np.sum(1.0 / np.arange(1, 1001) ** 0.9)
    assert np.mean(ids == 0) == pytest.approx(1 / harmonic, rel=0.05)
    assert ids.min() >= 0 and ids.max() < 1000


def test_market_and_vendor_mixes_match_their_shares():
    """Catalogue entries follow the spec's market and vendor shares."""
    spec = WorkloadSpec(distinct=20_000)
    cat = Catalogue(spec, np.random.default_rng(4))
    for tier, share in spec.market_mix.items():
        assert _share(cat.tier_codes, cat.tier_names, tier) == pytest.approx(share, abs=0.015)
    for vendor, share in spec.vendor_mix.items():
        assert _share(cat.vendor_codes, cat.vendor_names, vendor) == pytest.approx(share, abs=0.01)


def test_contexts_validate_and_locations_match_their_market(policy):
    """Every context passes ``parse_context``; the partitioner puts its location in the entry's tier."""
    cat = Catalogue(WorkloadSpec(distinct=500), np.random.default_rng(6))
    partitioner = LocationBasedCachePartitioner(policy)
    for q in range(cat.size):
        context = parse_context(cat.context(q))
        check_query(cat.query(q))
        assert context.wedding_date.weekday() == 5 and context.vendor_types == (cat.vendor_type(q),)
        assert partitioner.tier_of(context.location) == cat.market_tier(q)
        assert cat.org_id(q).startswith("org-")


def test_data_change_counts_follow_the_volatility_formula(policy):
    """Changes per vendor over 60 days match volatilityFactor / (baseTtl / 3600) per hour."""
    spec = WorkloadSpec(duration_seconds=60 * 86400.0)
    changes = DataChanges(spec, policy, np.random.default_rng(8))
    for vendor in VENDOR_TYPES:
        rate = policy.vendors[vendor].volatilityFactor / (policy.vendors[vendor].baseTtl / 3600)
        assert changes.rates_per_hour[vendor] == pytest.approx(rate)
        expected = rate * spec.duration_seconds / 3600
        assert abs(changes.times[vendor].size - expected) < 4 * np.sqrt(expected)


def test_a_set_data_change_rate_overrides_the_formula(policy):
    """``data_change_rate_per_hour`` applies to every vendor type."""
    spec = WorkloadSpec(data_change_rate_per_hour=0.25)
    assert {change_rate_per_hour(v, spec, policy) for v in VENDOR_TYPES} == {0.25}


def test_changed_between_agrees_with_brute_force(policy):
    """``changed_between`` answers as a scan of the change times would, for scalars and arrays."""
    changes = DataChanges(WorkloadSpec(duration_seconds=10 * 86400.0), policy, np.random.default_rng(9))
    rng = np.random.default_rng(10)
    t0 = rng.random(500) * 10 * 86400
    t1 = t0 + rng.exponential(3 * HOUR, 500)
    for vendor in ("florist", "venue"):
        times = changes.times[vendor]
        brute = np.array([np.any((times > a) & (times <= b)) for a, b in zip(t0, t1)])
        assert np.array_equal(changes.changed_between(vendor, t0, t1), brute)
        assert changes.changed_between(vendor, float(t0[0]), float(t1[0])) is bool(brute[0])
    assert 0 < brute.sum() < brute.size


def test_spatial_sampling_keeps_the_rate_and_is_deterministic():
    """About ``rate`` of the distinct ids survive; the same salt keeps the same ids."""
    ids = np.arange(200_000)
    kept = sample_keys(ids, 0.1, salt=42)
    assert kept.mean() == pytest.approx(0.1, abs=0.005)
    assert np.array_equal(kept, sample_keys(ids, 0.1, salt=42))
    assert not np.array_equal(kept, sample_keys(ids, 0.1, salt=43))
    assert not sample_keys(ids, 0.0).any() and sample_keys(ids, 1.0).all()


def test_sampled_batches_keep_every_request_of_a_kept_key(policy):
    """A kept query id keeps all its requests; a dropped one loses all of them."""
    workload = Workload(WorkloadSpec(duration_seconds=HOUR, distinct=200), policy, 12)
    kept = np.concatenate([ids for _, ids in sample_batches(workload.batches(), 0.3, salt=1)])
    every = np.concatenate([ids for _, ids in workload.batches()])
    assert np.array_equal(kept, every[sample_keys(every, 0.3, salt=1)])


@pytest.mark.parametrize("field,value", [
    ("duration_seconds", 0), ("base_qps", -1.0), ("arrivals", "bursty"), ("distinct", 0),
    ("zipf_alpha", -0.5), ("organizations", 2.5), ("market_mix", {"tier_9": 1.0}),
    ("vendor_mix", {"venue": -1.0}), ("data_change_rate_per_hour", -2.0),
    ("paraphrase_variants", 4), ("paraphrase_variants", -1), ("near_miss_share", 1.0),
])
def test_bad_spec_fields_are_named(field, value):
    """An invalid spec value raises ValueError naming the field."""
    with pytest.raises(ValueError, match=field):
        WorkloadSpec(**{field: value})


def test_naive_start_is_read_as_utc():
    """A naive start becomes the same wall time in UTC."""
    assert WorkloadSpec(start=datetime(2026, 5, 1)).start == datetime(2026, 5, 1, tzinfo=UTC)


def test_paraphrases_keep_the_slots_and_near_misses_change_one(policy):
    """Variant texts keep the canonical query's entities in other words; the near misses give
    another city of the same market tier, or a guest count in another range."""
    from simulations.semantic_workload import Variants
    from simulations.workload import LOCATIONS

    catalogue = Catalogue(WorkloadSpec(distinct=200), np.random.default_rng(4))
    variants = Variants(3, 0.1)
    for query in range(200):
        base = query * variants.per_query
        texts = [variants.describe(catalogue, base + v)[1] for v in range(variants.per_query)]
        assert texts[0] == catalogue.query(query) and len(set(texts[:5])) == 5  # the guest count may be in the context only
        assert all(check_query(t) for t in texts)
        city = variants.describe(catalogue, base + 4)[2]["location"]
        assert city != catalogue.location(query)
        assert city in LOCATIONS[catalogue.market_tier(query)]
        guests = variants.describe(catalogue, base + 5)[2]["guestCount"]
        assert guests in (2 * catalogue.guest_counts[query], catalogue.guest_counts[query] // 2)


def test_variant_draws_are_replayable_and_off_without_variants(policy):
    spec = WorkloadSpec(duration_seconds=HOUR, base_qps=2.0, distinct=50, paraphrase_variants=2, near_miss_share=0.2)
    workload = Workload(spec, policy, 3)
    plain = Workload(WorkloadSpec(duration_seconds=HOUR, base_qps=2.0, distinct=50), policy, 3)
    assert [list(ids) for _, ids in workload.batches()] == [list(ids) for _, ids in plain.batches()]
    draw = lambda: np.concatenate([ids for _, ids in workload.variants.apply(workload.batches(), workload.variants_rng)])  # noqa: E731
    first = draw()
    assert (first == draw()).all() and (first // workload.variants.per_query < 50).all()
    assert not plain.variants.enabled and plain.variants.per_query == 1
