"""core.bundle: the licledger-proof/1 format (strict parsing naming the bad field, canonical encoding, the JSON
Schema in docs/), assemble_bundle's refusal of parts that do not belong together, public_view, QR payloads and
base45 (RFC 9285)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from verifykit import Mutator, World, replaced, scenario

from chaincode.anchoring import BATCH_RECORD_TYPE, STATUS_RECORD_TYPE
from core import canonical
from core.base45 import ALPHABET, Base45Error, b45decode, b45encode
from core.bundle import (
    FORMAT,
    MAX_BUNDLE_BYTES,
    OFFLINE_QR_PREFIX,
    QR_ALPHANUMERIC_40L,
    REFERENCE_QR_PREFIX,
    InvalidBundleError,
    ProofBundle,
    QrReference,
    assemble_bundle,
    from_qr_payload,
    public_view,
)
from core.errors import FormatError
from core.hashing import sm3

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "schemas" / "proof-bundle-v1.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)


def bundles() -> dict[str, ProofBundle]:
    s = scenario()
    full = {name: s.world.bundle(getattr(s, name), s.seq) for name in ("active", "revoked", "reinstated", "other")}
    return {**full, **{f"{name} public": public_view(b) for name, b in full.items()}}


# --- format ------------------------------------------------------------------------------------------------------


def test_bundles_round_trip_canonically() -> None:
    for name, bundle in bundles().items():
        data = bundle.to_json()
        assert canonical.decode_canonical(data) == bundle.to_dict(), name
        again = ProofBundle.from_json(data)
        assert again.to_json() == data and again.license_id == bundle.license_id
        assert json.loads(data)["format"] == FORMAT


def test_produced_bundles_validate_against_the_json_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    for name, bundle in bundles().items():
        errors = sorted(VALIDATOR.iter_errors(bundle.to_dict()), key=str)
        assert not errors, (name, [e.message for e in errors][:5])


def test_whatever_the_parser_accepts_the_schema_accepts() -> None:
    s = scenario()
    mutator = Mutator(s.world.bundle(s.active, s.seq).to_dict(), seed=5)
    accepted = 0
    for _ in range(3_000):
        value = mutator()
        try:
            ProofBundle.from_dict(value)
        except InvalidBundleError:
            continue
        accepted += 1
        assert not list(VALIDATOR.iter_errors(value)), value
    assert accepted > 300


def test_the_schema_refuses_a_seal_without_the_document() -> None:
    s = scenario()
    value = s.world.bundle(s.active, s.seq).to_dict()
    value["disclosure"] = None
    assert list(VALIDATOR.iter_errors(value))
    with pytest.raises(InvalidBundleError) as info:
        ProofBundle.from_dict(value)
    assert info.value.path == "seal"


@pytest.mark.parametrize(
    ("path", "new", "where"),
    [
        (("format",), "licledger-proof/2", "format"),
        (("batch", "record", "root"), "ABC", "batch.record.root"),
        (("leaf", "inclusion_proof", 0), 7, "leaf.inclusion_proof[0]"),
        (("leaf", "leaf_index"), -1, "leaf.leaf_index"),
        (("leaf", "leaf_index"), True, "leaf.leaf_index"),
        (("status", "proof", "bitmap"), "ff" * 32, "status.proof"),
        (("member", "record", "keys"), [], "member.record"),
        (("disclosure", "document", "holder", "citizen_id"), "110101199001011234", "disclosure.document.holder"),
        (("disclosure", "salt"), "00" * 31, "disclosure.salt"),
        (("seal", "signature"), "not base64!", "seal"),
        (("checkpoint",), "not a note", "checkpoint"),
        (("issuer",), "auditor-1", "issuer"),
        (("license_id",), "1.2.156.3005.2.X", "license_id"),
        (("batch", "record", "issuer"), "310000", "batch.record.issuer"),
    ],
)
def test_malformed_field_is_named_by_its_path(path: tuple[Any, ...], new: Any, where: str) -> None:
    s = scenario()
    value = replaced(s.world.bundle(s.revoked, s.seq).to_dict(), path, new)
    with pytest.raises(InvalidBundleError) as info:
        ProofBundle.from_json(json.dumps(value).encode())
    assert info.value.path == where or info.value.path.startswith(where + "."), str(info.value)
    assert isinstance(info.value, FormatError)


def test_unknown_and_missing_fields_are_refused() -> None:
    s = scenario()
    value = s.world.bundle(s.active, s.seq).to_dict()
    with pytest.raises(InvalidBundleError, match=r"unknown \['extra'\]"):
        ProofBundle.from_dict({**value, "extra": 1})
    del value["status"]
    with pytest.raises(InvalidBundleError, match=r"missing \['status'\]"):
        ProofBundle.from_dict(value)


def test_oversized_and_non_json_input_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidBundleError, match="more than"):
        ProofBundle.from_json(b"{" + b" " * MAX_BUNDLE_BYTES + b"}")
    for data in (b"\xff", b'{"a": 1.5}', b'{"a": 1, "a": 2}', b"NaN"):
        with pytest.raises(InvalidBundleError) as info:
            ProofBundle.from_json(data)
        assert info.value.path == "$"


def test_record_type_names_are_the_contracts() -> None:
    s = scenario()
    value = s.world.bundle(s.revoked, s.seq).to_dict()
    assert value["batch"]["record"]["type"] == BATCH_RECORD_TYPE
    assert value["status"]["record"]["type"] == STATUS_RECORD_TYPE


def test_to_dict_returns_a_copy() -> None:
    s = scenario()
    bundle = s.world.bundle(s.active, s.seq)
    value = bundle.to_dict()
    value["issuer"] = "310000"
    assert bundle.to_dict()["issuer"] == "110000"


# --- public view ----------------------------------------------------------------------------------------------------


def test_public_view_strips_document_salt_and_seal_and_keeps_the_proofs() -> None:
    s = scenario()
    full = s.world.bundle(s.active, s.seq)
    public = public_view(full)
    assert public.document is None and public.salt is None and public.seal is None and not public.disclosed
    value, full_value = public.to_dict(), full.to_dict()
    assert value["disclosure"] is None and value["seal"] is None
    for key in ("commitment", "leaf", "batch", "status", "member", "checkpoint", "license_id", "issuer"):
        assert value[key] == full_value[key]
    assert public_view(public).to_json() == public.to_json()


# --- assemble_bundle ------------------------------------------------------------------------------------------------


def _parts(w: World, issued: Any, seq: int) -> dict[str, Any]:
    cp = w.query("GetCheckpoint", str(seq))
    batch = w.query("GetBatch", issued.province, str(issued.batch_seq))
    return {
        "license_id": issued.license_id,
        "issuer": issued.province,
        "commitment_value": issued.commitment,
        "leaf_index": issued.leaf_index,
        "leaf_inclusion_proof": issued.tree.inclusion_proof(issued.leaf_index),
        "batch": batch,
        "log_inclusion": w.query("GetLogInclusionProof", str(batch["log_index"]), str(cp["fields"]["log_size"])),
        "status": w.query("GetStatus", str(issued.license_id), str(seq)),
        "member": w.query("GetMember", issued.province, str(seq)),
        "checkpoint": cp,
        "document": issued.license,
        "salt": issued.salt,
        "seal": issued.seal,
    }


@pytest.fixture(scope="module")
def two_checkpoints() -> tuple[World, Any, int, int]:
    w = World()
    issued = w.issue("110000", 3)
    first = w.checkpoint()
    w.issue("310000", 2)
    w.set_status(issued[1], "suspended")
    return w, issued[0], first, w.checkpoint()


def test_assemble_bundle_accepts_matching_parts_and_the_note_alone(two_checkpoints: Any) -> None:
    w, issued, _, seq = two_checkpoints
    parts = _parts(w, issued, seq)
    bundle = assemble_bundle(**parts)
    assert bundle.to_json() == assemble_bundle(**{**parts, "checkpoint": w.note(seq)}).to_json()
    public = assemble_bundle(**{**parts, "document": None, "salt": None, "seal": None})
    assert public.to_json() == public_view(bundle).to_json()


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("status", "checkpoint seq"),
        ("member", "checkpoint seq"),
        ("log_inclusion", "tree_size"),
    ],
)
def test_assemble_bundle_refuses_proofs_taken_at_another_checkpoint(
    two_checkpoints: Any, field: str, message: str
) -> None:
    w, issued, first, seq = two_checkpoints
    stale = _parts(w, issued, first)[field]
    with pytest.raises(ValueError, match=message):
        assemble_bundle(**{**_parts(w, issued, seq), field: stale})


def test_assemble_bundle_refuses_a_salt_that_does_not_open_the_commitment(two_checkpoints: Any) -> None:
    w, issued, _, seq = two_checkpoints
    with pytest.raises(ValueError, match="do not open the commitment"):
        assemble_bundle(**{**_parts(w, issued, seq), "salt": b"\x00" * 32})


def test_assemble_bundle_refuses_partial_disclosure(two_checkpoints: Any) -> None:
    w, issued, _, seq = two_checkpoints
    with pytest.raises(ValueError, match="go together"):
        assemble_bundle(**{**_parts(w, issued, seq), "seal": None})


def test_assemble_bundle_refuses_a_checkpoint_that_is_not_final() -> None:
    w = World()
    issued = w.issue("110000", 1)
    seq = w.checkpoint(["national"])
    with pytest.raises(ValueError, match="not final"):
        assemble_bundle(**_parts(w, issued[0], seq))


# --- QR --------------------------------------------------------------------------------------------------------------


def test_offline_qr_payload_round_trips_in_the_alphanumeric_set() -> None:
    s = scenario()
    for bundle in (public_view(s.world.bundle(s.active, s.seq)), s.world.bundle(s.active, s.seq)):
        payload = bundle.to_qr_payload(offline=True)
        assert payload.startswith(OFFLINE_QR_PREFIX) and set(payload) <= set(ALPHABET)
        assert len(payload) <= QR_ALPHANUMERIC_40L
        again = from_qr_payload(payload)
        assert isinstance(again, ProofBundle) and again.to_json() == bundle.to_json()


def test_reference_qr_payload_carries_id_issuer_commitment_and_node() -> None:
    s = scenario()
    bundle = s.world.bundle(s.active, s.seq)
    payload = bundle.to_qr_payload(node_url="https://node.bj.example/v1", offline=False)
    assert payload.startswith(REFERENCE_QR_PREFIX) and set(payload) <= set(ALPHABET)
    ref = from_qr_payload(payload)
    assert ref == QrReference(str(bundle.license_id), "110000", bundle.commitment, "https://node.bj.example/v1")
    assert from_qr_payload(QrReference(str(bundle.license_id), "110000", bundle.commitment).to_qr_payload()) == (
        QrReference(str(bundle.license_id), "110000", bundle.commitment, None)
    )


def test_offline_qr_that_does_not_fit_falls_back_to_a_reference_or_raises() -> None:
    s = scenario()
    value = s.world.bundle(s.active, s.seq).to_dict()
    # 64 incompressible proof hashes more no longer fit one QR code.
    big = replaced(value, ("batch", "inclusion_proof"), [sm3(bytes([i])).hex() for i in range(64)])
    bundle = ProofBundle.from_dict(big)
    assert bundle.to_qr_payload().startswith(REFERENCE_QR_PREFIX)
    with pytest.raises(ValueError, match="40-L"):
        bundle.to_qr_payload(offline=True)


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "HC1:ABC",
        OFFLINE_QR_PREFIX + "A",
        OFFLINE_QR_PREFIX + b45encode(b"not zlib"),
        OFFLINE_QR_PREFIX + b45encode(zlib.compress(b"{}")),
        OFFLINE_QR_PREFIX + b45encode(zlib.compress(b"\x00" * (MAX_BUNDLE_BYTES + 10))),
        OFFLINE_QR_PREFIX + b45encode(zlib.compress(b"{}") + b"trailing"),
        REFERENCE_QR_PREFIX + b45encode(b'{"issuer":"110000"}'),
        REFERENCE_QR_PREFIX + "lowercase",
        "X" * (QR_ALPHANUMERIC_40L + 1),
    ],
)
def test_malformed_qr_payloads_raise_invalid_bundle_error(payload: str) -> None:
    with pytest.raises(InvalidBundleError):
        from_qr_payload(payload)


def test_reference_with_a_non_http_node_url_is_refused() -> None:
    s = scenario()
    bundle = s.world.bundle(s.active, s.seq)
    with pytest.raises(InvalidBundleError, match="node"):
        QrReference(str(bundle.license_id), "110000", bundle.commitment, "javascript:alert(1)")


# --- base45 (RFC 9285 §4.3 examples) --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"), (b"ietf!", "QED8WEX0"), (b"", "")],
)
def test_base45_rfc9285_examples(raw: bytes, text: str) -> None:
    assert b45encode(raw) == text and b45decode(text) == raw


@pytest.mark.parametrize("text", ["GGW", "A", "ABCD", "aa", "::", "ZZZ"])
def test_base45_refuses_invalid_text(text: str) -> None:
    with pytest.raises(Base45Error):
        b45decode(text)


def test_base45_round_trips_every_byte_pair_edge() -> None:
    for raw in (bytes(range(256)), b"\xff\xff", b"\x00", b"\xff"):
        assert b45decode(b45encode(raw)) == raw
