"""The block format and hash chain (network/peer/blocks.py): determinism and every kind of alteration."""

from __future__ import annotations

import base64

import pytest

from core.canonical import encode
from core.hashing import sm3
from network.peer.blocks import Block, TxRecord, block_timestamp, decode_payload, encode_payload
from network.peer.errors import BlockFormatError, BlockIntegrityError

ENVS = [b'{"a":1}', b"\x00\xffbinary", b"x" * 300]


def _records() -> list[TxRecord]:
    return [
        TxRecord("t1", True, writes={"k/1": b"v1", "k/2": None}, events=({"type": "Anchored", "seq": 0},)),
        TxRecord("t2", False, "BAD_SIGNATURE", "signature does not verify"),
    ]


def _block(number: int = 1, prev: bytes = b"\x11" * 32, prev_commit: bytes = b"\x22" * 32) -> Block:
    return Block.build(
        number=number,
        prev_hash=prev,
        prev_commit_hash=prev_commit,
        prev_timestamp=5,
        payload=encode_payload(ENVS),
        records=_records(),
        valid_tx_times=[7],
    )


def test_payload_round_trip_keeps_order_and_bytes() -> None:
    assert decode_payload(encode_payload(ENVS)) == ENVS


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"kind":"licledger.batch/1","txs":[]}',
        b'{"kind":"other","txs":["AA=="]}',
        b'{"kind":"licledger.batch/1","txs":["!!"]}',
        b'{"kind":"licledger.batch/1","txs":[1]}',
        b'{"txs":["AA=="],"kind":"licledger.batch/1"}',  # valid JSON, not canonical
        b'{"extra":1,"kind":"licledger.batch/1","txs":["AA=="]}',
    ],
)
def test_malformed_payload_becomes_one_malformed_envelope(payload: bytes) -> None:
    assert decode_payload(payload) == [payload]


def test_same_inputs_same_block() -> None:
    a, b = _block(), _block()
    assert a == b and a.block_hash == b.block_hash and a.commit_hash == b.commit_hash
    a.verify(prev_hash=b"\x11" * 32, prev_commit_hash=b"\x22" * 32)


def test_timestamp_comes_from_transactions_never_goes_back() -> None:
    assert block_timestamp(5, [7, 3]) == 7
    assert block_timestamp(9, [7]) == 9
    assert block_timestamp(9, []) == 9
    assert _block().header.timestamp == 7


def test_header_hash_is_sm3_of_canonical_header() -> None:
    b = _block()
    h = b.header
    expected = sm3(
        encode(
            {
                "version": 1,
                "number": 1,
                "prev_hash": h.prev_hash.hex(),
                "data_hash": sm3(b.payload).hex(),
                "state_writes_hash": h.state_writes_hash.hex(),
                "timestamp": 7,
            }
        )
    )
    assert b.block_hash == expected


def _altered(block: Block, **changes: object) -> Block:
    fields = {
        "header": block.header,
        "payload": block.payload,
        "records": block.records,
        "block_hash": block.block_hash,
        "commit_hash": block.commit_hash,
    }
    fields.update(changes)
    return Block(**fields)  # type: ignore[arg-type]


def test_altered_payload_is_detected_as_data_hash() -> None:
    b = _block()
    bad = _altered(b, payload=b.payload.replace(b"eyJhIjoxfQ", b"eyJhIjoyfQ"))
    with pytest.raises(BlockIntegrityError) as exc:
        bad.verify(prev_hash=b"\x11" * 32, prev_commit_hash=b"\x22" * 32)
    assert exc.value.what == "data_hash" and exc.value.number == 1


def test_flipped_validity_flag_is_detected_as_state_writes_hash() -> None:
    b = _block()
    forged = (b.records[0], TxRecord("t2", True))
    with pytest.raises(BlockIntegrityError) as exc:
        _altered(b, records=forged).verify(prev_hash=b"\x11" * 32, prev_commit_hash=b"\x22" * 32)
    assert exc.value.what == "state_writes_hash"


def test_altered_written_value_is_detected() -> None:
    b = _block()
    forged = (
        TxRecord("t1", True, writes={"k/1": b"evil", "k/2": None}, events=b.records[0].events),
        b.records[1],
    )
    with pytest.raises(BlockIntegrityError, match="state_writes_hash"):
        _altered(b, records=forged).verify(prev_hash=b"\x11" * 32, prev_commit_hash=b"\x22" * 32)


def test_rehashed_block_breaks_the_link_to_its_predecessor() -> None:
    b = _block()
    with pytest.raises(BlockIntegrityError) as exc:
        b.verify(prev_hash=b"\x33" * 32, prev_commit_hash=b"\x22" * 32)
    assert exc.value.what == "prev_hash"
    with pytest.raises(BlockIntegrityError, match="commit_hash"):
        b.verify(prev_hash=b"\x11" * 32, prev_commit_hash=b"\x44" * 32)


def test_json_round_trip() -> None:
    b = _block()
    assert Block.from_json(b.to_json()) == b


@pytest.mark.parametrize(
    "mutate",
    [
        lambda j: j.pop("payload"),
        lambda j: j.update(payload="!!"),
        lambda j: j.update(block_hash="zz" * 32),
        lambda j: j.update(number=-1),
        lambda j: j.update(number=True),
        lambda j: j.update(txs="x"),
        lambda j: j["txs"][0].update(valid="yes"),
        lambda j: j["txs"][0]["writes"].update({"k/1": 5}),
        lambda j: j["txs"][1].update(writes={"k": base64.b64encode(b"x").decode()}),
    ],
)
def test_malformed_served_block_is_a_format_error(mutate: object) -> None:
    j = _block().to_json()
    mutate(j)  # type: ignore[operator]
    with pytest.raises(BlockFormatError):
        Block.from_json(j)


def test_invalid_record_cannot_carry_writes() -> None:
    with pytest.raises(ValueError):
        TxRecord("t", False, "X", None, {"k": b"v"})
    with pytest.raises(ValueError):
        TxRecord("t", True, "X")
