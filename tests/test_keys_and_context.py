"""Keys and wedding-context validation."""
import pytest

from wedcache.context import check_query, parse_context
from wedcache.entry import Selector
from wedcache.errors import ContextError
from wedcache.keys import cache_key, key_organization, normalise_query, organization_uuid

CTX = {"weddingDate": "2026-06-06", "location": "Austin, TX", "vendorTypes": ["venue"], "guestCount": 150}
ORG = organization_uuid("acme-weddings")


def test_normalisation_folds_case_width_and_spaces():
    assert normalise_query("  Barn\tVENUES   near ＡＵＳＴＩＮ ") == "barn venues near austin"


def test_keys_are_stable_and_ignore_spelling_noise():
    a = cache_key(ORG, "Barn venues near Austin", parse_context(CTX))
    b = cache_key(ORG, "  barn  VENUES near austin", parse_context(dict(CTX, vendorTypes=["venue"])))
    assert a == b
    # a fixed value: keys are the same in every process and on every machine
    assert a == cache_key(organization_uuid("acme-weddings"), "barn venues near austin", parse_context(CTX))
    assert a.startswith(f"ai:{{{ORG}}}:general:") and key_organization(a) == ORG


def test_two_organizations_never_share_a_key():
    other = organization_uuid("other-org")
    assert cache_key(ORG, "q", parse_context(CTX)) != cache_key(other, "q", parse_context(CTX))


@pytest.mark.parametrize("change", [{"location": "Dallas, TX"}, {"weddingDate": "2026-06-07"},
                                    {"guestCount": 50}, {"vendorTypes": ["florist"]}, {"budget": 20000}])
def test_fields_that_change_the_answer_change_the_key(change):
    assert cache_key(ORG, "q", parse_context(CTX)) != cache_key(ORG, "q", parse_context({**CTX, **change}))


def test_wedding_id_does_not_split_the_key():
    assert cache_key(ORG, "q", parse_context(CTX)) == cache_key(ORG, "q", parse_context({**CTX, "weddingId": "w1"}))


def test_organization_names_map_to_stable_uuids():
    assert organization_uuid("Acme") == organization_uuid(" acme ")
    assert organization_uuid("acme") != organization_uuid("acme2")
    uid = "123e4567-e89b-12d3-a456-426614174000"
    assert organization_uuid(uid.upper()) == uid


@pytest.mark.parametrize("data,field", [
    ({"weddingDate": "06/06/2026"}, "weddingContext.weddingDate"),
    ({"vendorTypes": ["juggler"]}, "weddingContext.vendorTypes.0"),
    ({"guestCount": 0}, "weddingContext.guestCount"),
    ({"guestCount": "many"}, "weddingContext.guestCount"),
    ({"budget": -1}, "weddingContext.budget"),
    ({"location": "x" * 201}, "weddingContext.location"),
    ({"seasonalFactors": {"season": "monsoon", "marketDemand": "high"}}, "weddingContext.seasonalFactors.season"),
    ({"weddingdate": "2026-06-06"}, "weddingContext.weddingdate"),
])
def test_invalid_context_names_the_field(data, field):
    with pytest.raises(ContextError) as err:
        parse_context(data)
    assert err.value.field == field


@pytest.mark.parametrize("query", ["", "   ", None, 5, "x" * 4001])
def test_invalid_query_is_refused(query):
    with pytest.raises(ContextError) as err:
        check_query(query)
    assert err.value.field == "query"


def test_selector_validation_names_the_field():
    with pytest.raises(ContextError, match="organization_id"):
        Selector.build(scope="organization")
    with pytest.raises(ContextError, match="weddingId"):
        Selector.build(scope="wedding", org_id="acme")
    with pytest.raises(ContextError, match="vendorTypes"):
        Selector.build(org_id="acme", vendor_types=["juggler"])
    with pytest.raises(ContextError, match="scope"):
        Selector.build(scope="planet", org_id="acme")
