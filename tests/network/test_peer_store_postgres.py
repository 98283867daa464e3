"""The peer's block store on a real PostgreSQL (127.0.0.1:5432, started by .ci/run): same behaviour as SQLite,
including byte-order key ranges (the ``C`` collation) and tamper detection by direct SQL edits."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from network.peer.blocks import Block, TxRecord, encode_payload
from network.peer.store import BlockStore, StateIntegrityError

pytestmark = pytest.mark.integration

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"licledger_peer_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


KEYS = ["a/B", "a/b", "a/_", "a/Z", "a/\u00e9", "a/~", "b"]


def _blocks() -> list[Block]:
    prev = prev_commit = bytes(32)
    out = []
    for i, key in enumerate(KEYS):
        block = Block.build(
            number=i,
            prev_hash=prev,
            prev_commit_hash=prev_commit,
            prev_timestamp=0,
            payload=encode_payload([key.encode()]),
            records=[TxRecord(f"t{i}", True, writes={key: bytes([i + 1])}), TxRecord(f"x{i}", False, "R", "m")],
            valid_tx_times=[i],
        )
        prev, prev_commit = block.block_hash, block.commit_hash
        out.append(block)
    return out


def test_postgres_store_matches_the_sqlite_store(pg_url: str, tmp_path: Path) -> None:
    pg = BlockStore(pg_url)
    lite = BlockStore(f"sqlite:///{tmp_path}/l.sqlite")
    for block in _blocks():
        pg.commit_block(block)
        lite.commit_block(block)
    assert pg.verify_chain().failure is None
    pg.verify_state()
    assert pg.read_blocks(0, 100) == lite.read_blocks(0, 100)
    assert pg.state_digest() == lite.state_digest()
    with pg.snapshot() as a, lite.snapshot() as b:
        assert (
            list(a.range("a/", "a/~"))
            == list(b.range("a/", "a/~"))
            == sorted((k, bytes([KEYS.index(k) + 1])) for k in KEYS if "a/" <= k < "a/~")
        )
        assert list(a.range("a/_", "")) == list(b.range("a/_", ""))


def test_postgres_rows_edited_by_sql_are_detected(pg_url: str) -> None:
    store = BlockStore(pg_url)
    for block in _blocks():
        store.commit_block(block)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE txs SET valid = true, reason = NULL, message = NULL WHERE block_number = 4"))
    check = store.verify_chain()
    assert check.failure is not None and check.failure.number == 4
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE state SET value = '\\x00' WHERE key = 'b'"))
    with pytest.raises(StateIntegrityError, match="'b'"):
        store.verify_state()
