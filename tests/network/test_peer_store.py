"""The peer's block store (network/peer/store.py) on a real SQLite file: atomic commits and tamper
detection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.errors import EncodingError
from network.peer.blocks import Block, BlockHeader, TxRecord, encode_payload
from network.peer.errors import BlockIntegrityError
from network.peer.state import DictState, PendingState
from network.peer.store import BlockStore, StateIntegrityError


def _chain(store: BlockStore, n: int) -> list[Block]:
    prev = prev_commit = bytes(32)
    out = []
    for i in range(n):
        records = [
            TxRecord(f"tx{i}a", True, writes={f"k/{i}": f"v{i}".encode(), "k/shared": f"s{i}".encode()}),
            TxRecord(f"tx{i}b", False, "BAD_SIGNATURE", "no"),
        ]
        if i == 3:
            records.append(TxRecord(f"tx{i}c", True, writes={"k/1": None}))
        block = Block.build(
            number=i,
            prev_hash=prev,
            prev_commit_hash=prev_commit,
            prev_timestamp=0,
            payload=encode_payload([f"env{i}".encode()]),
            records=records,
            valid_tx_times=[1000 + i],
        )
        store.commit_block(block)
        prev, prev_commit = block.block_hash, block.commit_hash
        out.append(block)
    return out


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


def test_commit_and_read_back(db: Path) -> None:
    store = BlockStore(f"sqlite:///{db}")
    blocks = _chain(store, 6)
    assert store.height() == 6
    assert store.read_blocks(0, 10) == blocks
    check = store.verify_chain(page=4)
    assert check.failure is None and [h for h, _ in check.hashes] == [b.block_hash for b in blocks]
    store.verify_state()
    with store.snapshot() as s:
        assert s.get("k/1") is None and s.get("k/2") == b"v2" and s.get("k/shared") == b"s5"
        assert [k for k, _ in s.range("k/", "k/4")] == ["k/0", "k/2", "k/3"]
        assert s.valid_tx_ids(["tx1a", "tx1b", "nope"]) == {"tx1a"}
    assert store.find_tx("tx2b") == (2, 1, False, "BAD_SIGNATURE", "no")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_block_that_does_not_extend_the_chain_is_refused_and_nothing_is_written(db: Path) -> None:
    store = BlockStore(f"sqlite:///{db}")
    blocks = _chain(store, 2)
    with pytest.raises(ValueError):
        store.commit_block(blocks[1])
    assert store.height() == 2
    store.verify_state()


def test_failed_commit_leaves_no_partial_block(db: Path) -> None:
    store = BlockStore(f"sqlite:///{db}")
    genesis = _chain(store, 1)[0]
    # Events that cannot be encoded canonically make the commit fail after the block row was inserted.
    header = BlockHeader(1, genesis.block_hash, bytes(32), bytes(32), 0)
    records = (TxRecord("x", True, writes={"k/new": b"v"}, events=({"f": 1.5},)),)
    with pytest.raises(EncodingError, match="float"):
        store.commit_block(Block(header, b"p", records, bytes(32), bytes(32)))
    assert store.height() == 1
    with store.snapshot() as s:
        assert s.get("k/new") is None
    store.verify_state()


def test_payload_edited_in_the_sqlite_file_is_detected(db: Path) -> None:
    store = BlockStore(f"sqlite:///{db}")
    _chain(store, 5)
    store.close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE blocks SET payload = ? WHERE number = 2", (encode_payload([b"forged"]),))
    check = BlockStore(f"sqlite:///{db}").verify_chain()
    assert isinstance(check.failure, BlockIntegrityError)
    assert check.failure.number == 2 and check.failure.what == "data_hash"
    assert len(check.hashes) == 2


def test_validity_flag_flipped_in_the_sqlite_file_is_detected(db: Path) -> None:
    store = BlockStore(f"sqlite:///{db}")
    _chain(store, 5)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE txs SET valid = 1, reason = NULL, message = NULL WHERE block_number = 3 AND tx_index = 1")
    check = store.verify_chain()
    assert check.failure is not None and (check.failure.number, check.failure.what) == (
        3,
        "state_writes_hash",
    )


def test_consistently_rehashed_block_is_caught_by_the_next_link(db: Path) -> None:
    store = BlockStore(f"sqlite:///{db}")
    blocks = _chain(store, 5)
    forged = Block.build(
        number=2,
        prev_hash=blocks[1].block_hash,
        prev_commit_hash=blocks[1].commit_hash,
        prev_timestamp=0,
        payload=encode_payload([b"forged"]),
        records=list(blocks[2].records),
        valid_tx_times=[1002],
    )
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE blocks SET payload = ?, data_hash = ?, block_hash = ? WHERE number = 2",
            (forged.payload, forged.header.data_hash, forged.block_hash),
        )
    check = store.verify_chain()
    assert check.failure is not None and (check.failure.number, check.failure.what) == (3, "prev_hash")


def test_state_value_edited_in_the_sqlite_file_is_detected(db: Path) -> None:
    store = BlockStore(f"sqlite:///{db}")
    _chain(store, 5)
    store.verify_state()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE state SET value = ? WHERE key = 'k/2'", (b"evil",))
    with pytest.raises(StateIntegrityError, match="k/2"):
        store.verify_state()


def test_deleted_state_row_and_resurrected_key_are_detected(db: Path) -> None:
    store = BlockStore(f"sqlite:///{db}")
    _chain(store, 5)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM state WHERE key = 'k/0'")
    with pytest.raises(StateIntegrityError, match="k/0"):
        store.verify_state()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO state VALUES ('k/0', ?, 0)", (b"v0",))
        conn.execute("INSERT INTO state VALUES ('k/1', ?, 1)", (b"v1",))  # deleted in block 3
    with pytest.raises(StateIntegrityError, match="k/1"):
        store.verify_state()


def test_store_refuses_another_networks_genesis(db: Path) -> None:
    store = BlockStore(f"sqlite:///{db}")
    store.bind_network(b"\x01" * 32)
    store.bind_network(b"\x01" * 32)
    with pytest.raises(ValueError, match="belongs to network"):
        store.bind_network(b"\x02" * 32)


def test_pending_writes_shadow_committed_state_in_ranges() -> None:
    base = DictState({"a": b"1", "b": b"2", "d": b"4", "f": b"6"})
    pending = PendingState(base)
    pending.apply({"b": None, "c": b"3", "d": b"44", "z": b"26"})
    assert list(pending.range("a", "f")) == [("a", b"1"), ("c", b"3"), ("d", b"44")]
    assert list(pending.range("", "\uffff")) == [
        ("a", b"1"),
        ("c", b"3"),
        ("d", b"44"),
        ("f", b"6"),
        ("z", b"26"),
    ]
    assert pending.get("b") is None and pending.get("f") == b"6"


def test_self_contradictory_record_edited_in_the_file_is_reported_as_that_block(db: Path) -> None:
    store = BlockStore(f"sqlite:///{db}")
    _chain(store, 5)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE txs SET reason = 'FORGED' WHERE block_number = 3 AND tx_index = 0")
    check = store.verify_chain(page=2)
    assert check.failure is not None and check.failure.number == 3
    assert "block 3 altered" in str(check.failure) and len(check.hashes) == 3


def test_range_with_empty_end_has_no_upper_bound(db: Path) -> None:
    store = BlockStore(f"sqlite:///{db}")
    _chain(store, 3)
    with store.snapshot() as s:
        assert [k for k, _ in s.range("k/2", "")] == ["k/2", "k/shared"]
    pending = PendingState(DictState({"a": b"1"}))
    pending.apply({"b": b"2"})
    assert list(pending.range("", "")) == [("a", b"1"), ("b", b"2")]
