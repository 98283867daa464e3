"""The consortium: genesis document, member records and their SM2 keys (I/O-free).

Rules, before any code:

1. **Members.** A member is one of three roles: ``province`` (named by its provincial-level GB/T 2260 code,
e.g. ``110000``, or ``660000`` for the XPCC; it lists the unified social credit codes (GB 32100) of the
issuing authorities whose licenses it anchors), ``national`` (exactly one, named ``national``) and ``auditor``
(a lower-case name such as ``auditor-1``). Only provinces carry issuers; one issuer belongs to one province.
2. **Keys.** Each member has SM2 keys (GB/T 32918) named by their key id, the lower-case hex SM3 of the DER
   SubjectPublicKeyInfo (:attr:`core.sm2.PublicKey.key_id`). A key is valid at time ``t`` (milliseconds since
   the Unix epoch, the transaction timestamp) iff ``valid_from_ms <= t`` and (``valid_until_ms`` is null or
   ``t < valid_until_ms``). Keys are never removed from a record, only retired (``valid_until_ms`` set), so a
   record still proves that a retired key was valid when it signed. A key id is used by one member only.
3. **Records.** A :class:`MemberRecord` carries a ``seq`` that grows by one with each change (AddMember makes
   0). The ledger commits to the membership in a sparse Merkle tree keyed by :func:`member_key` with value
   :meth:`MemberRecord.record_hash` (SM3 of the canonical record).
4. **Genesis.** The canonical document ``{"v": 1, "network", "created_ms", "quorum", "members"}``; the
   *network id* is the lower-case hex SM3 of its canonical bytes. Members are sorted by name; ``quorum`` is
   null (a majority of the members when a checkpoint is proposed) or a fixed count in ``[1, len(members)]``.

Every parser here raises :class:`~core.errors.FormatError` naming the bad field. :func:`build_consortium`
makes a genesis and all member keys deterministically from a seed (for tests, demos and ``network init``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core import codes
from core.canonical import MAX_SAFE_INTEGER, encode
from core.divisions import PROVINCES
from core.errors import FormatError, KeyFormatError
from core.hashing import sm3
from core.sm2 import CURVE, PrivateKey, PublicKey

__all__ = [
    "AUDITOR",
    "GENESIS_VERSION",
    "NATIONAL",
    "PROVINCE",
    "ROLES",
    "Consortium",
    "Genesis",
    "KeyRecord",
    "MemberRecord",
    "build_consortium",
    "default_quorum",
    "derive_key",
    "member_key",
    "parse_int",
    "public_key_from_spki",
    "synthetic_uscc",
    "validate_member_name",
    "validate_uscc",
]

PROVINCE = "province"
NATIONAL = "national"
AUDITOR = "auditor"
ROLES = (PROVINCE, NATIONAL, AUDITOR)
GENESIS_VERSION = 1
MAX_ISSUERS = 256
MAX_KEYS = 256
MAX_MEMBERS = 256
MAX_NETWORK_NAME = 64

_AUDITOR_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_NETWORK_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def parse_int(value: object, what: str, *, minimum: int = 0) -> int:
    """A JSON integer (not a bool) in ``[minimum, 2^53 - 1]``; :class:`FormatError` otherwise."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"{what} must be an integer, got {type(value).__name__}")
    if not minimum <= value <= MAX_SAFE_INTEGER:
        raise FormatError(f"{what} must be in [{minimum}, 2^53 - 1], got {value}")
    return value


def _parse_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _exact_keys(d: object, keys: Iterable[str], what: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise FormatError(f"{what} must be an object, got {type(d).__name__}")
    want = set(keys)
    if set(d) != want:
        missing, extra = sorted(want - set(d)), sorted(set(d) - want)
        raise FormatError(f"{what} must have exactly the fields {sorted(want)} (missing {missing}, extra {extra})")
    return d


def validate_uscc(value: object, what: str = "issuer") -> str:
    """A unified social credit code (GB 32100-2015, :func:`core.codes.validate_uscc`);
    :class:`FormatError`."""
    code = _parse_str(value, what)
    try:
        return codes.validate_uscc(code)
    except FormatError as exc:
        raise FormatError(f"{what} {code!r}: {exc}") from None


def synthetic_uscc(province: str, index: int) -> str:
    """A well-formed USCC of a government issuing authority (registration code 1, type 1) in ``province``.

    Deterministic: the nine-character organisation code is derived from ``province`` and ``index`` by SM3.
    """
    digest = sm3(f"licledger/uscc/{province}/{index}".encode())
    org = "".join(codes.USCC_CHARSET[b % 31] for b in digest[:9])
    return codes.make_uscc("1", "1", province, org)


def validate_member_name(name: object, role: str) -> str:
    """Check that ``name`` fits ``role`` (rule 1); :class:`FormatError` otherwise."""
    text = _parse_str(name, "member name")
    if role == PROVINCE:
        if text not in PROVINCES:
            raise FormatError(f"province member name {text!r} is not a provincial-level GB/T 2260 code")
    elif role == NATIONAL:
        if text != NATIONAL:
            raise FormatError(f"the national authority must be named {NATIONAL!r}, got {text!r}")
    elif role == AUDITOR:
        if not _AUDITOR_NAME.fullmatch(text) or text == NATIONAL:
            raise FormatError(f"auditor name {text!r} must match [a-z][a-z0-9-]{{0,31}} and not be 'national'")
    else:
        raise FormatError(f"role {role!r} is not one of {list(ROLES)}")
    return text


def member_key(name: str) -> bytes:
    """The membership sparse-Merkle-tree key of a member: SM3 of its UTF-8 name."""
    return sm3(name.encode("utf-8"))


def default_quorum(member_count: int) -> int:
    """A majority of ``member_count`` members."""
    return member_count // 2 + 1


_PUBLIC_KEY_CACHE: dict[bytes, PublicKey] = {}


def public_key_from_spki(spki: bytes) -> PublicKey:
    """:meth:`PublicKey.from_der`, memoised (a pure function; keeps each key's cached SM2 ``Z`` value)."""
    key = _PUBLIC_KEY_CACHE.get(spki)
    if key is None:
        key = PublicKey.from_der(spki)
        if len(_PUBLIC_KEY_CACHE) >= 1024:
            _PUBLIC_KEY_CACHE.clear()
        _PUBLIC_KEY_CACHE[bytes(spki)] = key
    return key


def parse_spki_hex(value: object, what: str) -> bytes:
    """Lower-case hex of a DER SubjectPublicKeyInfo for an SM2 key; :class:`FormatError` otherwise."""
    text = _parse_str(value, what)
    if len(text) > 1024 or not _HEX.fullmatch(text):
        raise FormatError(f"{what} must be lower-case hex of a DER SubjectPublicKeyInfo")
    spki = bytes.fromhex(text)
    try:
        public_key_from_spki(spki)
    except KeyFormatError as exc:
        raise FormatError(f"{what} is not an SM2 public key: {exc}") from None
    return spki


def parse_key_id(value: object, what: str = "key_id") -> str:
    text = _parse_str(value, what)
    if not _HEX64.fullmatch(text):
        raise FormatError(f"{what} must be 64 lower-case hex digits, got {text!r}")
    return text


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One SM2 key of a member and its validity interval (rule 2)."""

    key_id: str
    spki: bytes
    valid_from_ms: int
    valid_until_ms: int | None = None

    @classmethod
    def for_key(cls, public_key: PublicKey, valid_from_ms: int) -> KeyRecord:
        return cls(public_key.key_id, public_key.to_der(), valid_from_ms, None)

    def valid_at(self, timestamp_ms: int) -> bool:
        """Whether the key is valid at ``timestamp_ms`` (``valid_from <= t < valid_until``)."""
        return self.valid_from_ms <= timestamp_ms and (
            self.valid_until_ms is None or timestamp_ms < self.valid_until_ms
        )

    @property
    def public_key(self) -> PublicKey:
        return public_key_from_spki(self.spki)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "spki": self.spki.hex(),
            "valid_from_ms": self.valid_from_ms,
            "valid_until_ms": self.valid_until_ms,
        }

    @classmethod
    def from_dict(cls, d: object, what: str = "key") -> KeyRecord:
        m = _exact_keys(d, ("key_id", "spki", "valid_from_ms", "valid_until_ms"), what)
        spki = parse_spki_hex(m["spki"], f"{what}.spki")
        key_id = parse_key_id(m["key_id"], f"{what}.key_id")
        if public_key_from_spki(spki).key_id != key_id:
            raise FormatError(f"{what}.key_id {key_id} is not the SM3 of its spki")
        valid_from = parse_int(m["valid_from_ms"], f"{what}.valid_from_ms")
        until_raw = m["valid_until_ms"]
        valid_until = None if until_raw is None else parse_int(until_raw, f"{what}.valid_until_ms")
        if valid_until is not None and valid_until < valid_from:
            raise FormatError(f"{what}: valid_until_ms {valid_until} is before valid_from_ms {valid_from}")
        return cls(key_id, spki, valid_from, valid_until)


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A member of the consortium as committed in the membership tree (rules 1-3)."""

    name: str
    role: str
    issuers: tuple[str, ...] = ()
    keys: tuple[KeyRecord, ...] = ()
    seq: int = 0

    def key(self, key_id: str) -> KeyRecord | None:
        for k in self.keys:
            if k.key_id == key_id:
                return k
        return None

    def valid_keys_at(self, timestamp_ms: int) -> list[KeyRecord]:
        return [k for k in self.keys if k.valid_at(timestamp_ms)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "issuers": list(self.issuers),
            "keys": [k.to_dict() for k in self.keys],
            "seq": self.seq,
        }

    def canonical(self) -> bytes:
        return encode(self.to_dict())

    def record_hash(self) -> bytes:
        """SM3 of the canonical record: the membership tree's value for :func:`member_key` (rule 3)."""
        return sm3(self.canonical())

    @classmethod
    def from_dict(cls, d: object, what: str = "member") -> MemberRecord:
        m = _exact_keys(d, ("name", "role", "issuers", "keys", "seq"), what)
        role = _parse_str(m["role"], f"{what}.role")
        name = validate_member_name(m["name"], role)
        issuers_raw = m["issuers"]
        if not isinstance(issuers_raw, list) or len(issuers_raw) > MAX_ISSUERS:
            raise FormatError(f"{what}.issuers must be a list of at most {MAX_ISSUERS} codes")
        issuers = tuple(validate_uscc(x, f"{what}.issuers[{i}]") for i, x in enumerate(issuers_raw))
        if role != PROVINCE and issuers:
            raise FormatError(f"{what}: only provinces list issuers, {name} is a {role}")
        if list(issuers) != sorted(set(issuers)):
            raise FormatError(f"{what}.issuers must be sorted and without duplicates")
        keys_raw = m["keys"]
        if not isinstance(keys_raw, list) or not 1 <= len(keys_raw) <= MAX_KEYS:
            raise FormatError(f"{what}.keys must be a list of 1 to {MAX_KEYS} keys")
        keys = tuple(KeyRecord.from_dict(k, f"{what}.keys[{i}]") for i, k in enumerate(keys_raw))
        if len({k.key_id for k in keys}) != len(keys):
            raise FormatError(f"{what}.keys lists a key twice")
        seq = parse_int(m["seq"], f"{what}.seq")
        return cls(name, role, issuers, keys, seq)

    @classmethod
    def from_bytes(cls, data: bytes) -> MemberRecord:
        from core.canonical import decode_canonical

        return cls.from_dict(decode_canonical(data))


@dataclass(frozen=True, slots=True)
class Genesis:
    """The genesis document that creates a consortium (rule 4)."""

    network: str
    created_ms: int
    members: tuple[MemberRecord, ...]
    quorum: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": GENESIS_VERSION,
            "network": self.network,
            "created_ms": self.created_ms,
            "quorum": self.quorum,
            "members": [m.to_dict() for m in self.members],
        }

    def canonical(self) -> bytes:
        return encode(self.to_dict())

    @property
    def network_id(self) -> str:
        """Lower-case hex SM3 of the canonical genesis document."""
        return sm3(self.canonical()).hex()

    def member(self, name: str) -> MemberRecord | None:
        for m in self.members:
            if m.name == name:
                return m
        return None

    @classmethod
    def from_dict(cls, d: object) -> Genesis:
        m = _exact_keys(d, ("v", "network", "created_ms", "quorum", "members"), "genesis")
        if m["v"] != GENESIS_VERSION or isinstance(m["v"], bool):
            raise FormatError(f"genesis.v must be {GENESIS_VERSION}, got {m['v']!r}")
        network = _parse_str(m["network"], "genesis.network")
        if not _NETWORK_NAME.fullmatch(network):
            raise FormatError(f"genesis.network {network!r} must match [a-z0-9][a-z0-9._-]{{0,63}}")
        created = parse_int(m["created_ms"], "genesis.created_ms")
        members_raw = m["members"]
        if not isinstance(members_raw, list) or not 1 <= len(members_raw) <= MAX_MEMBERS:
            raise FormatError(f"genesis.members must be a list of 1 to {MAX_MEMBERS} members")
        members = tuple(MemberRecord.from_dict(x, f"genesis.members[{i}]") for i, x in enumerate(members_raw))
        names = [x.name for x in members]
        if names != sorted(set(names)):
            raise FormatError("genesis.members must be sorted by name, without duplicates")
        if sum(1 for x in members if x.role == NATIONAL) != 1:
            raise FormatError("genesis must have exactly one national member")
        for x in members:
            if x.seq != 0:
                raise FormatError(f"genesis member {x.name} must have seq 0")
        key_ids = [k.key_id for x in members for k in x.keys]
        if len(set(key_ids)) != len(key_ids):
            raise FormatError("genesis uses a key for two members")
        issuers = [i for x in members for i in x.issuers]
        if len(set(issuers)) != len(issuers):
            raise FormatError("genesis gives an issuer to two provinces")
        quorum_raw = m["quorum"]
        quorum = None if quorum_raw is None else parse_int(quorum_raw, "genesis.quorum", minimum=1)
        if quorum is not None and quorum > len(members):
            raise FormatError(f"genesis.quorum {quorum} exceeds the {len(members)} members")
        return cls(network, created, members, quorum)


# --- deterministic consortium for tests, demos and `network init`
# --------------------------------------------


def derive_key(seed: bytes | str, name: str, index: int = 0) -> PrivateKey:
    """The SM2 key number ``index`` of member ``name``, derived from ``seed`` (SM3, reduced to ``[1, n-2]``).

    For tests and local networks only: whoever knows the seed knows every key.
    """
    seed_bytes = seed.encode("utf-8") if isinstance(seed, str) else bytes(seed)
    material = sm3(b"licledger/testnet-key/v1\x00" + seed_bytes + b"\x00" + f"{name}/{index}".encode())
    d = int.from_bytes(material, "big") % (CURVE.n - 2) + 1
    return PrivateKey.from_bytes(d.to_bytes(32, "big"))


@dataclass(frozen=True)
class Consortium:
    """A genesis and the private keys of its members (key index 0), as :func:`build_consortium` made them."""

    genesis: Genesis
    keys: dict[str, PrivateKey] = field(default_factory=dict)
    seed: bytes = b""

    @property
    def network_id(self) -> str:
        return self.genesis.network_id

    def key(self, name: str, index: int = 0) -> PrivateKey:
        """Member ``name``'s key number ``index`` (0 is the genesis key; rotations use 1, 2, ...)."""
        if index == 0:
            return self.keys[name]
        return derive_key(self.seed, name, index)


def build_consortium(
    provinces: Sequence[str],
    seed: bytes | str,
    *,
    auditors: Sequence[str] = (),
    network: str = "licledger-test",
    created_ms: int = 1_700_000_000_000,
    quorum: int | None = None,
    issuers_per_province: int = 2,
) -> Consortium:
    """A genesis with the national authority, ``provinces`` and ``auditors``, deterministically from ``seed``.

    Each province gets ``issuers_per_province`` synthetic issuer USCCs (:func:`synthetic_uscc`); every member
    one key (:func:`derive_key` index 0) valid from ``created_ms``. Same arguments, same genesis and keys.
    """
    seed_bytes = seed.encode("utf-8") if isinstance(seed, str) else bytes(seed)
    specs: list[tuple[str, str, tuple[str, ...]]] = [(NATIONAL, NATIONAL, ())]
    for code in provinces:
        validate_member_name(code, PROVINCE)
        specs.append((code, PROVINCE, tuple(sorted(synthetic_uscc(code, i) for i in range(issuers_per_province)))))
    for name in auditors:
        validate_member_name(name, AUDITOR)
        specs.append((name, AUDITOR, ()))
    names = [s[0] for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate member names in {names}")
    keys: dict[str, PrivateKey] = {}
    members = []
    for name, role, issuers in sorted(specs):
        key = derive_key(seed_bytes, name, 0)
        keys[name] = key
        members.append(MemberRecord(name, role, issuers, (KeyRecord.for_key(key.public_key, created_ms),), 0))
    genesis = Genesis(network, created_ms, tuple(members), quorum)
    Genesis.from_dict(genesis.to_dict())  # the builder must produce what the parser accepts
    return Consortium(genesis, keys, seed_bytes)
