"""Field-level encryption and integrity tags for cache entries: :class:`EntrySealer`, :func:`load_key`.

With ``AI_CACHE_ENCRYPTION_ENABLED`` the cache seals every entry before any tier stores it
and opens it after a tier returns it, so memory, Redis and PostgreSQL hold only ciphertext.

**Keys.** One 32-byte master key (:func:`load_key`: ``AI_CACHE_ENCRYPTION_KEY``, else
``<state dir>/encryption.key``, created with mode 0600 and a warning when absent). HKDF-SHA256
derives two independent keys from it: one for AES-256-GCM, one for the HMAC-SHA256 tag.

**What is encrypted.** The entry's ``value`` (the AI answer) and the *personal* fields of its
``context``, each as its own AES-GCM ciphertext object ``{"enc": "v1", "n": <b64 nonce>,
"c": <b64 ciphertext>}`` (fresh 96-bit random nonce; associated data: the entry's key, its
organization and the field's name, so a ciphertext cannot be moved to another entry,
organization or field). The sealed value is the envelope ``{"sealed": "v1", "tag": <b64>,
"value": <ciphertext object, or the plaintext when encrypt=False>}``: CacheEntry has no spare
field, and a JSON object fits both ``CacheEntry.encode`` and PostgreSQL's JSONB columns.

**Personal context fields.** Every context field is personal except those in
:data:`PUBLIC_CONTEXT_FIELDS`: ``weddingId`` (an opaque id the cache already keeps as a
column), ``weddingDate``, ``location`` (a city or region that sets the market tier),
``vendorTypes``, ``guestCount`` and ``seasonalFactors`` (season, market demand, weather).
They describe a market, not a person, and stay readable so that operators and invalidation
can still select entries by them. ``budget`` is personal (a couple's finances), and so is any
field not listed — names, emails, phones, guest lists, addresses, free-text notes — so a field
added to the context later is encrypted until someone decides otherwise.

**The tag.** HMAC-SHA256 over a canonical encoding (orjson, sorted keys) of the entry's
identity (key, organization, cache type, query, wedding, market tier, vendor types), its
times and its sealed value and context. Two details keep a tag valid across tiers:
:meth:`EntrySealer.seal` rounds ``created_at`` and ``expires_at`` to the millisecond
(PostgreSQL keeps microseconds and converts through floats), and the encoding writes a float
that equals an integer as that integer (JSONB returns ``1e+16`` or ``-0.0`` as an integer).
Because the times are covered, a sealed entry must not be re-stamped (``CacheEntry.renewed``):
open it, renew the plaintext, seal again.

**Limits.** Random nonces allow about 2**32 encryptions per master key (NIST SP 800-38D);
rotate the key well before that. An entry stored before sealing (plaintext, no envelope)
opens as is unless the sealer is built with ``accept_legacy=False``; whoever can write a tier
can also plant such an entry, so turn legacy off once old entries have expired.
"""
from __future__ import annotations

import base64
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .entry import CacheEntry
from .errors import ConfigError, InvalidInput, TamperedEntry

__all__ = ["EntrySealer", "TamperedEntry", "load_key", "personal_fields", "PUBLIC_CONTEXT_FIELDS",
           "KEY_ENV", "KEY_FILE"]

log = logging.getLogger(__name__)

KEY_ENV = "AI_CACHE_ENCRYPTION_KEY"
KEY_FILE = "encryption.key"
KEY_BYTES = 32
SEAL_VERSION = "v1"
CIPHER_VERSION = "v1"
NONCE_BYTES = 12

PUBLIC_CONTEXT_FIELDS = frozenset({"weddingId", "weddingDate", "location", "vendorTypes", "guestCount",
                                   "seasonalFactors"})
"""Context fields stored in plaintext (camelCase, as ``WeddingContext.to_json`` writes them)."""

_ENVELOPE_KEYS = frozenset({"sealed", "tag", "value"})
_CIPHER_KEYS = frozenset({"enc", "n", "c"})


def load_key(env_value: str | None, state_dir: Path) -> bytes:
    """The 32-byte master key: ``env_value`` (``AI_CACHE_ENCRYPTION_KEY``, urlsafe base64 of
    32 bytes), else ``<state_dir>/encryption.key``, created there (mode 0600) with a warning.

    :raises ConfigError: naming ``AI_CACHE_ENCRYPTION_KEY`` when the value or the file is not a key.
    """
    if env_value and env_value.strip():
        key = _decode_key(env_value)
        if key is None:
            raise ConfigError(KEY_ENV, f"must be urlsafe base64 of {KEY_BYTES} bytes")
        return key
    path = Path(state_dir) / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    key = _decode_key(path.read_bytes().decode("ascii", "replace"))
    if key is None:
        raise ConfigError(KEY_ENV, f"is unset and {path} does not hold urlsafe base64 of {KEY_BYTES} bytes")
    return key


def _decode_key(text: str) -> bytes | None:
    """The key in ``text`` (padded or not, as ``secrets.token_urlsafe(32)`` writes it), else None."""
    text = text.strip()
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None
    return key if len(key) == KEY_BYTES else None


def _create_key_file(path: Path) -> None:
    """Write a new key to ``path`` unless another process gets there first (never replaces one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii") + "\n")
        os.link(temporary, path)
    except FileExistsError:
        return
    finally:
        os.unlink(temporary)
    log.warning("%s is unset: created a new encryption key in %s. Back it up (or set %s): "
                "entries sealed with it cannot be read without it.", KEY_ENV, path, KEY_ENV)


def _derive(master_key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose).derive(master_key)


# -- sealing -------------------------------------------------------------------------------
def personal_fields(context: dict | None) -> list[str]:
    """The fields of ``context`` that hold personal data (all but :data:`PUBLIC_CONTEXT_FIELDS`)."""
    return [name for name in context or () if name not in PUBLIC_CONTEXT_FIELDS]


class EntrySealer:
    """The cache's codec: seals entries before any tier stores them, opens them after a read.

    ``encrypt=False`` only adds the integrity tag. Either way the sealer opens entries sealed
    in both modes, so the mode can change while sealed entries are cached.
    """

    def __init__(self, master_key: bytes, *, encrypt: bool = True, accept_legacy: bool = True):
        if len(master_key) != KEY_BYTES:
            raise InvalidInput("master_key", f"must be {KEY_BYTES} bytes")
        self.encrypt = encrypt
        self.accept_legacy = accept_legacy
        self._aead = AESGCM(_derive(master_key, b"wedcache/entry-encryption/v1"))
        self._mac = hmac.HMAC(_derive(master_key, b"wedcache/entry-integrity/v1"), hashes.SHA256())

    def is_sealed(self, entry: CacheEntry) -> bool:
        """Whether ``entry.value`` is a seal envelope (False for a legacy plaintext entry)."""
        value = entry.value
        return isinstance(value, dict) and value.get("sealed") == SEAL_VERSION

    def seal(self, entry: CacheEntry) -> CacheEntry:
        """A sealed copy of ``entry`` (times rounded to the millisecond); a sealed entry as is."""
        if self.is_sealed(entry):
            return entry
        sealed = CacheEntry(entry.key, None, _to_millis(entry.created_at), _to_millis(entry.expires_at),
                            entry.org_id, entry.cache_type, entry.query, entry.wedding_id, entry.market_tier,
                            entry.vendor_types, self._seal_context(entry))
        inner = self._encrypt(entry, "value", entry.value) if self.encrypt else entry.value
        sealed.value = {"sealed": SEAL_VERSION, "tag": _b64(self._tag(sealed, inner)), "value": inner}
        return sealed

    def open(self, entry: CacheEntry) -> CacheEntry:
        """The plaintext copy of a sealed entry; a legacy entry as is.

        :raises TamperedEntry: when the tag or an AES-GCM check fails, the envelope is malformed,
            or the entry is unsealed and ``accept_legacy`` is off.
        """
        if not self.is_sealed(entry):
            if self.accept_legacy:
                return entry
            raise TamperedEntry(entry.key, "not sealed")
        inner = self._checked_inner(entry)
        value = self._decrypt(entry, "value", inner) if _is_cipher(inner) else inner
        return CacheEntry(entry.key, value, entry.created_at, entry.expires_at, entry.org_id, entry.cache_type,
                          entry.query, entry.wedding_id, entry.market_tier, entry.vendor_types,
                          self._open_context(entry))

    def verify(self, entry: CacheEntry) -> bool:
        """True when ``entry`` is sealed and its tag and ciphertexts check out (False for legacy)."""
        if not self.is_sealed(entry):
            return False
        try:
            self.open(entry)
        except TamperedEntry:
            return False
        return True

    # -- parts ---------------------------------------------------------------------------
    def _seal_context(self, entry: CacheEntry) -> dict | None:
        context = entry.context
        personal = personal_fields(context) if self.encrypt else []
        if not personal:
            return context
        sealed = dict(context)
        for name in personal:
            sealed[name] = self._encrypt(entry, f"context.{name}", context[name])
        return sealed

    def _open_context(self, entry: CacheEntry) -> dict | None:
        context = entry.context
        if not context:
            return context
        return {name: self._decrypt(entry, f"context.{name}", data) if _is_cipher(data) else data
                for name, data in context.items()}

    def _checked_inner(self, entry: CacheEntry) -> Any:
        """The envelope's inner value once the tag over the entry checks out."""
        envelope = entry.value
        if envelope.keys() != _ENVELOPE_KEYS or not isinstance(envelope["tag"], str):
            raise TamperedEntry(entry.key, "malformed seal")
        mac = self._mac.copy()
        mac.update(_canonical(entry, envelope["value"]))
        try:
            mac.verify(_unb64(envelope["tag"]))
        except (InvalidSignature, ValueError):
            raise TamperedEntry(entry.key, "integrity tag mismatch") from None
        return envelope["value"]

    def _tag(self, entry: CacheEntry, inner: Any) -> bytes:
        mac = self._mac.copy()
        mac.update(_canonical(entry, inner))
        return mac.finalize()

    def _encrypt(self, entry: CacheEntry, field: str, data: Any) -> dict:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._aead.encrypt(nonce, orjson.dumps(data), _associated_data(entry, field))
        return {"enc": CIPHER_VERSION, "n": _b64(nonce), "c": _b64(ciphertext)}

    def _decrypt(self, entry: CacheEntry, field: str, box: dict) -> Any:
        try:
            plaintext = self._aead.decrypt(_unb64(box["n"]), _unb64(box["c"]), _associated_data(entry, field))
        except (InvalidTag, ValueError):
            raise TamperedEntry(entry.key, f"{field} does not decrypt") from None
        return orjson.loads(plaintext)


def _is_cipher(data: Any) -> bool:
    return (isinstance(data, dict) and data.keys() == _CIPHER_KEYS and data["enc"] == CIPHER_VERSION
            and isinstance(data["n"], str) and isinstance(data["c"], str))


def _associated_data(entry: CacheEntry, field: str) -> bytes:
    return orjson.dumps([entry.key, entry.org_id, field])


def _canonical(entry: CacheEntry, inner: Any) -> bytes:
    """What the tag covers: identity, times (integer milliseconds) and the sealed content."""
    return orjson.dumps([entry.key, entry.org_id, entry.cache_type, entry.query, entry.wedding_id,
                         entry.market_tier, entry.vendor_types, round(entry.created_at * 1000),
                         round(entry.expires_at * 1000), _as_stored(inner), _as_stored(entry.context)],
                        option=orjson.OPT_SORT_KEYS)


def _as_stored(data: Any) -> Any:
    """``data`` as every tier returns it: JSONB reads a float equal to an integer back as that integer."""
    if isinstance(data, float):
        return int(data) if data.is_integer() else data
    if isinstance(data, dict):
        return {name: _as_stored(item) for name, item in data.items()}
    if isinstance(data, (list, tuple)):
        return [_as_stored(item) for item in data]
    return data


def _to_millis(seconds: float) -> float:
    return round(seconds * 1000) / 1000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64; anything else raises ``binascii.Error`` (a ValueError)."""
    return base64.b64decode(text, validate=True)
