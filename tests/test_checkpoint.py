"""Cosigned checkpoints (core.checkpoint): format strictness and quorum verification under attack."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    Cosignature,
    QuorumError,
    cosign,
    key_hint,
    parse_checkpoint,
    render,
    verify_cosignatures,
)
from core.errors import FormatError, VerificationError
from core.hashing import sm3
from core.sm2 import PrivateKey, PublicKey

NAMES = ("110000", "310000", "440000", "national")


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {name: PrivateKey.generate() for name in NAMES}


@pytest.fixture(scope="module")
def members(keys: dict[str, PrivateKey]) -> dict[str, list[PublicKey]]:
    return {name: [key.public_key] for name, key in keys.items()}


@pytest.fixture(scope="module")
def checkpoint() -> Checkpoint:
    return Checkpoint(
        origin="licledger.example/consortium-demo",
        height=42,
        log_size=1000,
        log_root=sm3(b"log"),
        status_root=sm3(b"status"),
        membership_root=sm3(b"members"),
        block_hash=sm3(b"block"),
        timestamp_ms=1_763_870_000_000,
    )


@pytest.fixture(scope="module")
def cosigs(checkpoint: Checkpoint, keys: dict[str, PrivateKey]) -> list[Cosignature]:
    return [cosign(checkpoint, name, key) for name, key in keys.items()]


@pytest.fixture(scope="module")
def note(checkpoint: Checkpoint, cosigs: list[Cosignature]) -> bytes:
    return render(checkpoint, cosigs)


# --- format ----------------------------------------------------------------------------------------------


def test_body_layout(checkpoint: Checkpoint) -> None:
    lines = checkpoint.body().decode().split("\n")
    assert lines[:2] == ["licledger.example/consortium-demo", "1000"]
    assert base64.b64decode(lines[2]) == sm3(b"log")
    assert [line.split(" ")[0] for line in lines[3:-1]] == [
        "height", "status-root", "membership-root", "block-hash", "timestamp",
    ]  # fmt: skip
    assert lines[-1] == "" and lines[3] == "height 42" and lines[7] == "timestamp 1763870000000"


def test_round_trip(checkpoint: Checkpoint, cosigs: list[Cosignature], note: bytes) -> None:
    parsed, parsed_sigs = parse_checkpoint(note)
    assert parsed == checkpoint and parsed_sigs == cosigs
    assert Checkpoint.from_body(checkpoint.body()) == checkpoint
    assert note.startswith(checkpoint.body() + b"\n\xe2\x80\x94 110000 ")
    assert render(parsed, parsed_sigs) == note


def test_key_hint_is_sm3_of_name_type_and_spki(keys: dict[str, PrivateKey]) -> None:
    public = keys["110000"].public_key
    assert key_hint("110000", public) == sm3(b"110000\n\x04" + public.to_der())[:4]
    assert key_hint("310000", public) != key_hint("110000", public)


def _replace_line(note: bytes, index: int, new: bytes) -> bytes:
    lines = note.split(b"\n")
    lines[index] = new
    return b"\n".join(lines)


def _padding_bit_set(b64: bytes) -> bytes:
    """The same 32 bytes spelled with a non-zero padding bit (RFC 4648 §3.5)."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(b64[-2])
    return b64[:-2] + bytes([alphabet[last ^ 1]]) + b"="


MALFORMED: dict[str, Callable[[bytes], bytes]] = {
    "no blank line": lambda n: n.replace(b"\n\n", b"\n", 1),
    "no signatures": lambda n: n[: n.index(b"\n\n") + 2],
    "missing final newline": lambda n: n[:-1],
    "extra final newline": lambda n: n + b"\n",
    "crlf": lambda n: n.replace(b"\n", b"\r\n"),
    "leading zero size": lambda n: _replace_line(n, 1, b"01000"),
    "negative size": lambda n: _replace_line(n, 1, b"-1000"),
    "size 2^63": lambda n: _replace_line(n, 1, str(2**63).encode()),
    "short root": lambda n: _replace_line(n, 2, b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="),
    "noncanonical base64": lambda n: _replace_line(n, 2, _padding_bit_set(n.split(b"\n")[2])),
    "bad base64": lambda n: _replace_line(n, 2, b"!" * 44),
    "missing extension": lambda n: n.replace(b"height 42\n", b""),
    "extra body line": lambda n: n.replace(b"height 42\n", b"height 42\nextra 1\n"),
    "swapped extensions": lambda n: n.replace(b"height 42\n", b"").replace(b"timestamp", b"height 42\ntimestamp"),
    "uppercase key": lambda n: n.replace(b"height 42", b"Height 42"),
    "double space": lambda n: n.replace(b"height 42", b"height  42"),
    "tab": lambda n: n.replace(b"height 42", b"height\t42"),
    "origin with space": lambda n: n.replace(b"licledger.example/", b"licledger example/"),
    "origin json": lambda n: _replace_line(n, 0, b"{}"),
    "empty origin": lambda n: _replace_line(n, 0, b""),
    "non-ascii body": lambda n: n.replace(b"consortium", "联盟".encode()),
    "hyphen for em dash": lambda n: n.replace("— 110000".encode(), b"- 110000"),
    "plus in name": lambda n: n.replace("— 110000".encode(), "— 110+000".encode()),
    "no signature base64": lambda n: n.replace("— 110000 ".encode(), "— 110000".encode()),
    "signature too short": lambda n: _replace_line(n, 9, "— 110000 AAAAAA==".encode()),
    "signature not utf-8": lambda n: n + b"\xff\n",
    "trailing text": lambda n: n + b"garbage",
    "too many signatures": lambda n: n + n[n.index(b"\n\n") + 2 :] * 30,
}


@pytest.mark.parametrize("mutation", sorted(MALFORMED))
def test_malformed_notes_are_format_errors(note: bytes, mutation: str) -> None:
    bad = MALFORMED[mutation](note)
    assert bad != note
    with pytest.raises(FormatError):
        parse_checkpoint(bad)


def test_signature_count_limit(checkpoint: Checkpoint, cosigs: list[Cosignature]) -> None:
    many = (cosigs * MAX_SIGNATURES)[:MAX_SIGNATURES]
    assert len(parse_checkpoint(render(checkpoint, many))[1]) == MAX_SIGNATURES
    with pytest.raises(ValueError):
        render(checkpoint, [*many, cosigs[0]])
    with pytest.raises(ValueError):
        render(checkpoint, [])


def test_constructor_misuse_is_value_error(checkpoint: Checkpoint) -> None:
    for change in (
        {"origin": "has space"},
        {"origin": "{json"},
        {"height": -1},
        {"log_size": True},
        {"timestamp_ms": 2**63},
        {"log_root": bytes(31)},
        {"block_hash": "00" * 32},
    ):
        with pytest.raises(ValueError):
            dataclasses.replace(checkpoint, **change)
    with pytest.raises(ValueError):
        Cosignature("bad name", bytes(4), b"sig")
    with pytest.raises(ValueError):
        Cosignature("ok", bytes(3), b"sig")


@settings(max_examples=200)
@given(data=st.data())
def test_mutated_note_never_crashes_and_never_verifies_a_changed_body(
    note: bytes, checkpoint: Checkpoint, members: dict[str, list[PublicKey]], data: st.DataObject
) -> None:
    blob = bytearray(note)
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] = data.draw(st.integers(0, 255).filter(lambda b: b != note[pos]))
    try:
        parsed, sigs = parse_checkpoint(bytes(blob))
    except FormatError:
        return
    if parsed != checkpoint:
        with pytest.raises(QuorumError) as info:
            verify_cosignatures(parsed, sigs, members, 1)
        assert info.value.got == 0
    else:  # the change was in a signature line: that line at most stops counting
        verified = verify_cosignatures(parsed, sigs, members, 3)
        assert len(verified) >= 3


# --- verification ----------------------------------------------------------------------------------------


def test_all_members_verify(
    checkpoint: Checkpoint, cosigs: list[Cosignature], members: dict[str, list[PublicKey]]
) -> None:
    assert verify_cosignatures(checkpoint, cosigs, members, 4) == list(NAMES)
    assert verify_cosignatures(checkpoint, cosigs[:3], members, 3) == list(NAMES[:3])


def test_below_quorum(checkpoint: Checkpoint, cosigs: list[Cosignature], members: dict[str, list[PublicKey]]) -> None:
    with pytest.raises(QuorumError) as info:
        verify_cosignatures(checkpoint, cosigs[:2], members, 3)
    error = info.value
    assert isinstance(error, VerificationError)
    assert (error.needed, error.got, error.verified_names, error.failures) == (3, 2, list(NAMES[:2]), [])
    assert "2 of the 3" in str(error)


def test_duplicate_cosignature_counts_once(
    checkpoint: Checkpoint,
    keys: dict[str, PrivateKey],
    cosigs: list[Cosignature],
    members: dict[str, list[PublicKey]],
) -> None:
    again = cosign(checkpoint, "110000", keys["110000"])  # a second, different signature by the same member
    with pytest.raises(QuorumError) as info:
        verify_cosignatures(checkpoint, [cosigs[0], cosigs[0], again, cosigs[1]], members, 3)
    assert info.value.got == 2 and info.value.verified_names == ["110000", "310000"]


def test_unknown_signer_is_a_failure_not_fatal(
    checkpoint: Checkpoint, cosigs: list[Cosignature], members: dict[str, list[PublicKey]]
) -> None:
    stranger = cosign(checkpoint, "999999", PrivateKey.generate())
    assert verify_cosignatures(checkpoint, [stranger, *cosigs[:3]], members, 3) == list(NAMES[:3])
    with pytest.raises(QuorumError) as info:
        verify_cosignatures(checkpoint, [stranger, *cosigs[:2]], members, 3)
    assert [(f.name, f.reason) for f in info.value.failures] == [("999999", "not a member")]


def test_forged_cosignature_under_member_name(
    checkpoint: Checkpoint, cosigs: list[Cosignature], members: dict[str, list[PublicKey]]
) -> None:
    attacker = PrivateKey.generate()
    wrong_hint = cosign(checkpoint, "440000", attacker)
    right_hint = dataclasses.replace(wrong_hint, key_hint=cosigs[2].key_hint)
    with pytest.raises(QuorumError) as info:
        verify_cosignatures(checkpoint, [*cosigs[:2], wrong_hint, right_hint], members, 3)
    reasons = [f.reason for f in info.value.failures]
    assert reasons[0] == "key hint matches none of its keys"
    assert reasons[1].startswith("signature does not verify under key")


def test_signature_over_another_checkpoint_fails(
    checkpoint: Checkpoint,
    keys: dict[str, PrivateKey],
    cosigs: list[Cosignature],
    members: dict[str, list[PublicKey]],
) -> None:
    older = dataclasses.replace(checkpoint, height=41)
    replayed = cosign(older, "440000", keys["440000"])
    with pytest.raises(QuorumError):
        verify_cosignatures(checkpoint, [*cosigs[:2], replayed], members, 3)
    for field, value in (
        ("height", 43), ("log_size", 1001), ("log_root", sm3(b"x")), ("status_root", sm3(b"x")),
        ("membership_root", sm3(b"x")), ("block_hash", sm3(b"x")), ("timestamp_ms", 1), ("origin", "other"),
    ):  # fmt: skip
        changed = dataclasses.replace(checkpoint, **{field: value})  # type: ignore[arg-type]
        with pytest.raises(QuorumError) as info:
            verify_cosignatures(changed, cosigs, members, 1)
        assert info.value.got == 0 and len(info.value.failures) == 4


def test_malformed_signature_bytes_are_a_failure(
    checkpoint: Checkpoint, cosigs: list[Cosignature], members: dict[str, list[PublicKey]]
) -> None:
    broken = dataclasses.replace(cosigs[3], signature=b"\x30\x00")
    assert verify_cosignatures(checkpoint, [*cosigs[:3], broken], members, 3) == list(NAMES[:3])
    with pytest.raises(QuorumError) as info:
        verify_cosignatures(checkpoint, [*cosigs[:2], broken], members, 3)
    assert info.value.failures[0].reason.startswith("malformed signature")


def test_rotated_member_key(checkpoint: Checkpoint, keys: dict[str, PrivateKey], cosigs: list[Cosignature]) -> None:
    new_key = PrivateKey.generate()
    members = {name: [key.public_key] for name, key in keys.items()}
    members["national"] = [keys["national"].public_key, new_key.public_key]
    fresh = cosign(checkpoint, "national", new_key)
    assert verify_cosignatures(checkpoint, [*cosigs[:2], fresh], members, 3) == [
        "110000",
        "310000",
        "national",
    ]
    members["national"] = [new_key.public_key]  # the old key was removed: its signature no longer counts
    with pytest.raises(QuorumError):
        verify_cosignatures(checkpoint, [*cosigs[:2], cosigs[3]], members, 3)


def test_quorum_misuse(checkpoint: Checkpoint, cosigs: list[Cosignature], members: dict[str, list[PublicKey]]) -> None:
    for quorum in (0, -1, 5, True):
        with pytest.raises(ValueError):
            verify_cosignatures(checkpoint, cosigs, members, quorum)
