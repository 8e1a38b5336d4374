"""Field-level encryption and integrity tags (:mod:`wedcache.encryption`): pure unit tests, no servers."""
from __future__ import annotations

import base64
import logging
import os
import stat

import orjson
import pytest

from wedcache.encryption import KEY_ENV, KEY_FILE, EntrySealer, TamperedEntry, load_key, personal_fields
from wedcache.entry import CacheEntry
from wedcache.errors import ConfigError, WedcacheError

ORG = "5b0e4c43-6f4e-4b7a-9a51-0c2d3e4f5a6b"
OTHER_ORG = "9d1c2b3a-4e5f-4a6b-8c7d-1e2f3a4b5c6d"
WEDDING = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
CONTEXT = {"weddingId": WEDDING, "weddingDate": "2026-06-06", "location": "Austin, TX",
           "vendorTypes": ["venue", "florist"], "guestCount": 120, "budget": 38500.5,
           "coupleNames": "Ana Ruiz & Sam Lee", "email": "ana.ruiz@example.com"}
ANSWER = {"venues": [{"name": "Cedar Barn", "priceRange": "$$$", "capacity": 180}],
          "summary": "Three rustic barns near Austin fit 120 guests.", "score": 0.875}


@pytest.fixture
def master_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def sealer(master_key) -> EntrySealer:
    return EntrySealer(master_key)


def make_entry(**changes) -> CacheEntry:
    entry = CacheEntry(key=f"ai:{{{ORG}}}:venue_search:ab12cd34", value=ANSWER, created_at=1_780_000_000.123456,
                       expires_at=1_780_003_600.654321, org_id=ORG, cache_type="venue_search",
                       query="rustic barn venues near austin", wedding_id=WEDDING, market_tier="tier_2",
                       vendor_types=("venue", "florist"), context=dict(CONTEXT))
    return entry.replace(**changes)


def flip_byte(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode("ascii")


# -- round trip ------------------------------------------------------------------------------
def test_seal_then_open_gives_back_value_and_context(sealer):
    entry = make_entry()
    opened = sealer.open(sealer.seal(entry))
    assert opened.value == ANSWER
    assert opened.context == CONTEXT
    assert (opened.key, opened.org_id, opened.wedding_id, opened.vendor_types) == \
           (entry.key, entry.org_id, entry.wedding_id, entry.vendor_types)
    assert opened.created_at == pytest.approx(entry.created_at, abs=5e-4)
    assert opened.expires_at == pytest.approx(entry.expires_at, abs=5e-4)


def test_sealed_entry_holds_no_plaintext_of_personal_data(sealer):
    sealed = sealer.seal(make_entry())
    data = sealed.encode()
    for secret in ("Cedar Barn", "Three rustic barns", "Ana Ruiz", "ana.ruiz@example.com", "38500"):
        assert secret.encode() not in data
    assert sealed.value["sealed"] == "v1"
    assert set(sealed.value["value"]) == {"enc", "n", "c"}
    assert set(sealed.context["budget"]) == {"enc", "n", "c"}


def test_public_context_fields_stay_plaintext(sealer):
    context = sealer.seal(make_entry()).context
    for name in ("weddingId", "weddingDate", "location", "vendorTypes", "guestCount"):
        assert context[name] == CONTEXT[name]
    assert sorted(personal_fields(CONTEXT)) == ["budget", "coupleNames", "email"]
    assert personal_fields(None) == []


def test_each_seal_uses_a_fresh_nonce(sealer):
    entry = make_entry()
    assert sealer.seal(entry).value["value"] != sealer.seal(entry).value["value"]


def test_sealed_entry_survives_encode_and_decode(sealer):
    sealed = sealer.seal(make_entry())
    decoded = CacheEntry.decode(sealed.encode())
    assert sealer.verify(decoded)
    assert sealer.open(decoded).value == ANSWER


def test_seal_is_idempotent(sealer):
    sealed = sealer.seal(make_entry())
    assert sealer.seal(sealed) is sealed
    assert sealer.open(sealer.seal(sealed)).value == ANSWER


def test_entry_without_context_or_with_scalar_value(sealer):
    entry = make_entry(value="just text", context=None)
    opened = sealer.open(sealer.seal(entry))
    assert (opened.value, opened.context) == ("just text", None)


# -- tampering ------------------------------------------------------------------------------
def test_flipped_ciphertext_byte_is_tampering(sealer):
    sealed = sealer.seal(make_entry())
    sealed.value["value"]["c"] = flip_byte(sealed.value["value"]["c"])
    with pytest.raises(TamperedEntry) as caught:
        sealer.open(sealed)
    assert caught.value.key == sealed.key
    assert isinstance(caught.value, WedcacheError)
    assert not sealer.verify(sealed)


def test_flipped_context_ciphertext_is_tampering(sealer):
    sealed = sealer.seal(make_entry())
    sealed.context["email"]["c"] = flip_byte(sealed.context["email"]["c"])
    assert not sealer.verify(sealed)


@pytest.mark.parametrize("change", [
    {"org_id": OTHER_ORG},
    {"key": f"ai:{{{OTHER_ORG}}}:venue_search:ab12cd34"},
    {"org_id": OTHER_ORG, "key": f"ai:{{{OTHER_ORG}}}:venue_search:ab12cd34"},
    {"expires_at": 1_780_090_000.0},
    {"created_at": 1_780_000_500.0},
    {"wedding_id": None},
    {"vendor_types": ("venue",)},
    {"market_tier": "tier_1"},
    {"query": "cheap barn venues near austin"},
], ids=lambda change: "+".join(change))
def test_changed_identity_or_times_is_tampering(sealer, change):
    moved = sealer.seal(make_entry()).replace(**change)
    with pytest.raises(TamperedEntry):
        sealer.open(moved)


def test_changed_public_context_field_is_tampering(sealer):
    sealed = sealer.seal(make_entry())
    sealed.context["guestCount"] = 40
    assert not sealer.verify(sealed)


def test_ciphertext_swapped_between_entries_is_tampering(sealer):
    first = sealer.seal(make_entry())
    second = sealer.seal(make_entry(value={"other": "answer"}))
    second.value["value"] = first.value["value"]
    assert not sealer.verify(second)


def test_replaced_or_missing_tag_is_tampering(sealer):
    sealed = sealer.seal(make_entry())
    forged = sealed.replace(value={**sealed.value, "tag": base64.b64encode(b"x" * 32).decode()})
    broken = sealed.replace(value={"sealed": "v1", "value": sealed.value["value"]})
    garbled = sealed.replace(value={**sealed.value, "tag": "not base64!"})
    for entry in (forged, broken, garbled):
        with pytest.raises(TamperedEntry):
            sealer.open(entry)


def test_another_master_key_cannot_open(sealer):
    sealed = sealer.seal(make_entry())
    with pytest.raises(TamperedEntry):
        EntrySealer(os.urandom(32)).open(sealed)


# -- legacy and tag-only entries -------------------------------------------------------------
def test_legacy_plaintext_entry_opens_as_is(sealer):
    legacy = make_entry()
    assert not sealer.is_sealed(legacy)
    assert sealer.open(legacy) is legacy
    assert not sealer.verify(legacy)


def test_legacy_entries_refused_when_not_accepted(master_key):
    with pytest.raises(TamperedEntry):
        EntrySealer(master_key, accept_legacy=False).open(make_entry())


def test_tag_only_keeps_plaintext_and_detects_tampering(master_key):
    sealer = EntrySealer(master_key, encrypt=False)
    sealed = sealer.seal(make_entry())
    assert sealed.value["value"] == ANSWER and sealed.context == CONTEXT
    assert sealer.open(sealed).value == ANSWER
    sealed.value["value"]["summary"] = "Cheaper barns exist."
    with pytest.raises(TamperedEntry):
        sealer.open(sealed)


def test_sealers_open_entries_sealed_in_either_mode(master_key):
    encrypting, tagging = EntrySealer(master_key), EntrySealer(master_key, encrypt=False)
    assert tagging.open(encrypting.seal(make_entry())).context == CONTEXT
    assert encrypting.open(tagging.seal(make_entry())).value == ANSWER


def test_tag_survives_what_jsonb_does_to_numbers_and_key_order(master_key):
    """PostgreSQL JSONB reorders object keys and reads 1e+16 or -0.0 back as integers."""
    sealer = EntrySealer(master_key, encrypt=False)
    sealed = sealer.seal(make_entry(value={"b": 1e16, "a": -0.0, "c": 2.5}))
    as_jsonb = sealed.replace(value={"value": {"a": 0, "b": 10**16, "c": 2.5}, "tag": sealed.value["tag"],
                                                  "sealed": "v1"})
    assert sealer.verify(as_jsonb)


def test_tag_survives_microsecond_rounding_of_times(sealer):
    """PostgreSQL keeps times to the microsecond; a sealed entry's times sit on whole milliseconds."""
    sealed = sealer.seal(make_entry(created_at=1_780_000_000.0005, expires_at=1_780_003_600.0015))
    from_postgres = sealed.replace(created_at=sealed.created_at + 1e-6,
                                        expires_at=sealed.expires_at - 1e-6)
    assert sealer.verify(from_postgres)
    assert sealer.verify(CacheEntry.decode(orjson.dumps(orjson.loads(sealed.encode()))))


# -- the master key ----------------------------------------------------------------------------
def test_key_from_environment(tmp_path):
    key = os.urandom(32)
    assert load_key(base64.urlsafe_b64encode(key).decode(), tmp_path) == key
    assert load_key(base64.urlsafe_b64encode(key).decode().rstrip("="), tmp_path) == key
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize("bad", ["not a key", base64.urlsafe_b64encode(b"short").decode(),
                                 base64.urlsafe_b64encode(os.urandom(48)).decode()])
def test_invalid_key_in_environment_names_the_variable(tmp_path, bad):
    with pytest.raises(ConfigError) as caught:
        load_key(bad, tmp_path)
    assert caught.value.field == KEY_ENV == "AI_CACHE_ENCRYPTION_KEY"


def test_key_created_in_state_folder_with_a_warning(tmp_path, caplog):
    state = tmp_path / "state"
    with caplog.at_level(logging.WARNING, logger="wedcache.encryption"):
        key = load_key(None, state)
    assert len(key) == 32
    assert any(KEY_ENV in record.getMessage() and record.levelno == logging.WARNING for record in caplog.records)
    path = state / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(state.iterdir()) == [path]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="wedcache.encryption"):
        assert load_key("", state) == key
    assert not caplog.records


def test_corrupt_key_file_names_the_variable(tmp_path):
    (tmp_path / KEY_FILE).write_text("garbage")
    with pytest.raises(ConfigError) as caught:
        load_key(None, tmp_path)
    assert caught.value.field == KEY_ENV
