"""The peer's block store and world state, in one SQL database through SQLAlchemy 2 (Core, no ORM).

The store is the peer's source of truth (the Raft journal is not fsync'd). SQLite is the default: WAL journal
and ``PRAGMA synchronous=FULL``, so a block the store acknowledged survives power loss; any SQLAlchemy URL
works (PostgreSQL is tested by the node package). Tables:

* ``blocks``: number, the header fields, block hash, commit hash, the ordered payload, local commit time (the
  commit time is informational and is hashed nowhere);
* ``txs``: one row per transaction of a block: tx_id, validity flag, reason code, message, events;
* ``writes``: the state writes of the valid transactions (``NULL`` value = delete), so the world state can be
  re-derived from the blocks and checked;
* ``state``: key -> value and the number of the block that last wrote it;
* ``meta``: the network's genesis hash, so a store is never opened against another network.

One database transaction per block: the block row, its transaction rows, its writes and the state changes
commit together or not at all (:meth:`BlockStore.commit_block`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.canonical import decode, encode
from core.hashing import sm3
from network.peer.blocks import Block, BlockHeader, TxRecord
from network.peer.errors import BlockIntegrityError

_KEY = sa.String().with_variant(sa.String(collation="C"), "postgresql")

metadata = sa.MetaData()

blocks = sa.Table(
    "blocks",
    metadata,
    sa.Column("number", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("data_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("state_writes_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("block_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("commit_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("committed_at_ms", sa.BigInteger, nullable=False),
)

txs = sa.Table(
    "txs",
    metadata,
    sa.Column("block_number", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("tx_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tx_id", sa.String, nullable=False, index=True),
    sa.Column("valid", sa.Boolean, nullable=False),
    sa.Column("reason", sa.String, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("events", sa.LargeBinary, nullable=False),
)

writes = sa.Table(
    "writes",
    metadata,
    sa.Column("block_number", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("tx_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("key", _KEY, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=True),
    sa.Index("ix_writes_key", "key", "block_number", "tx_index"),
)

state = sa.Table(
    "state",
    metadata,
    sa.Column("key", _KEY, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("block_number", sa.BigInteger, nullable=False),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """Outcome of :meth:`BlockStore.verify_chain`: the verified prefix and the first failure, if any."""

    hashes: list[tuple[bytes, bytes]]
    failure: BlockIntegrityError | None


class StoredRecordError(BlockIntegrityError):
    """A stored transaction record of a block is self-contradictory (e.g. valid with a rejection reason):
    the row was edited after commit, since no peer ever writes such a record."""

    def __init__(self, number: int, detail: str) -> None:
        super().__init__(number, f"stored record ({detail})", b"", b"")
        self.args = (f"block {number} altered: stored record {detail}",)

    def __str__(self) -> str:
        return str(self.args[0])


class StateIntegrityError(BlockIntegrityError):
    """The ``state`` table differs from the state re-derived from the blocks' recorded writes."""

    def __init__(self, key: str, expected: bytes | None, stored: bytes | None, block: int) -> None:
        self.key = key
        super().__init__(block, f"state of key {key!r}", sm3(expected or b""), sm3(stored or b""))


def _sqlite_engine(url: str) -> Engine:
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (SQLAlchemy's documented SQLite
        # recipe), so a read transaction is a consistent snapshot.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


_GET_VALUE = {
    "qmark": "SELECT value FROM state WHERE key = ?",
    "format": "SELECT value FROM state WHERE key = %s",
    "pyformat": "SELECT value FROM state WHERE key = %s",
}
"""The one-key read of :meth:`ConnectionState.get` in the positional DBAPI parameter styles (PEP 249): pysqlite's
and psycopg's; a driver with another style reads through SQLAlchemy Core."""
_GET_VALUE_CORE = sa.select(state.c.value).where(state.c.key == sa.bindparam("key"))


class ConnectionState:
    """The committed world state as seen by one open connection (a consistent snapshot inside a
    transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._dbapi = conn.connection.dbapi_connection
        self._get_sql = _GET_VALUE.get(conn.dialect.paramstyle) if self._dbapi is not None else None

    def get(self, key: str) -> bytes | None:
        # Chaincode reads one key at a time, dozens per transaction and per query: through the DBAPI cursor of
        # this very connection (so inside its snapshot), about 3 us a read against about 135 us for a Core
        # SELECT built and compiled per call.
        if self._get_sql is None or self._dbapi is None:
            row = self._conn.execute(_GET_VALUE_CORE, {"key": key}).first()
            return None if row is None else bytes(row[0])
        cursor = self._dbapi.cursor()
        try:
            cursor.execute(self._get_sql, (key,))
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else bytes(row[0])

    def height(self) -> int:
        """Number of blocks committed as of this snapshot."""
        top = self._conn.execute(sa.select(sa.func.max(blocks.c.number))).scalar()
        return 0 if top is None else int(top) + 1

    def valid_tx_ids(self, tx_ids: list[str]) -> set[str]:
        """Which of ``tx_ids`` already appear as valid transactions (Fabric's duplicate-txid check)."""
        found: set[str] = set()
        for i in range(0, len(tx_ids), 500):
            chunk = tx_ids[i : i + 500]
            rows = self._conn.execute(sa.select(txs.c.tx_id).where(txs.c.tx_id.in_(chunk), txs.c.valid.is_(True)))
            found.update(r[0] for r in rows)
        return found

    def range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        query = sa.select(state.c.key, state.c.value).where(state.c.key >= start).order_by(state.c.key)
        if end != "":
            query = query.where(state.c.key < end)
        for key, value in self._conn.execute(query):
            yield key, bytes(value)


class BlockStore:
    """Blocks, transaction records and world state of one peer."""

    def __init__(self, url: str) -> None:
        if not isinstance(url, str) or not url:
            raise ValueError("a database URL is required")
        self.url = url
        self.engine = _sqlite_engine(url) if url.startswith("sqlite") else sa.create_engine(url, pool_pre_ping=True)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- identity ------------------------------------------------------------------------------------------

    def bind_network(self, genesis_hash: bytes) -> None:
        """Record the network's genesis hash, or check it: one store never serves two networks."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(meta.c.value).where(meta.c.name == "genesis_hash")).first()
            if row is None:
                conn.execute(meta.insert().values(name="genesis_hash", value=genesis_hash))
            elif bytes(row[0]) != genesis_hash:
                raise ValueError(f"store {self.url} belongs to network {bytes(row[0]).hex()}, not {genesis_hash.hex()}")

    # --- reading -------------------------------------------------------------------------------------------

    def height(self) -> int:
        """Number of blocks stored (the next block's number)."""
        with self.engine.connect() as conn:
            top = conn.execute(sa.select(sa.func.max(blocks.c.number))).scalar()
        return 0 if top is None else int(top) + 1

    @contextmanager
    def snapshot(self) -> Iterator[ConnectionState]:
        """A read-only consistent view of the committed state (one database transaction)."""
        with self.engine.connect() as conn, conn.begin():
            yield ConnectionState(conn)

    def read_blocks(self, start: int, limit: int) -> list[Block]:
        """Blocks ``start .. start+limit-1`` as stored (nothing verified here)."""
        if start < 0 or limit < 1:
            raise ValueError("start must be >= 0 and limit >= 1")
        end = start + limit
        with self.engine.connect() as conn, conn.begin():
            rows = conn.execute(
                sa.select(blocks).where(blocks.c.number >= start, blocks.c.number < end).order_by(blocks.c.number)
            ).all()
            tx_rows = conn.execute(
                sa.select(txs)
                .where(txs.c.block_number >= start, txs.c.block_number < end)
                .order_by(txs.c.block_number, txs.c.tx_index)
            ).all()
            write_rows = conn.execute(
                sa.select(writes).where(writes.c.block_number >= start, writes.c.block_number < end)
            ).all()
        by_tx: dict[tuple[int, int], dict[str, bytes | None]] = {}
        for w in write_rows:
            by_tx.setdefault((w.block_number, w.tx_index), {})[w.key] = None if w.value is None else bytes(w.value)
        records: dict[int, list[TxRecord]] = {}
        for t in tx_rows:
            try:
                events = decode(bytes(t.events))
                record = TxRecord(
                    tx_id=t.tx_id,
                    valid=bool(t.valid),
                    reason=t.reason,
                    message=t.message,
                    writes=by_tx.get((t.block_number, t.tx_index), {}),
                    events=tuple(events),
                )
            except (ValueError, TypeError) as exc:  # EncodingError is a ValueError
                raise StoredRecordError(int(t.block_number), f"tx {t.tx_index}: {exc}") from None
            records.setdefault(t.block_number, []).append(record)
        out = []
        for r in rows:
            header = BlockHeader(
                int(r.number),
                bytes(r.prev_hash),
                bytes(r.data_hash),
                bytes(r.state_writes_hash),
                int(r.timestamp),
            )
            out.append(
                Block(
                    header,
                    bytes(r.payload),
                    tuple(records.get(r.number, [])),
                    bytes(r.block_hash),
                    bytes(r.commit_hash),
                )
            )
        return out

    def committed_at_ms(self, number: int) -> int | None:
        """Local wall-clock time at which block ``number`` was committed (informational, never hashed)."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(blocks.c.committed_at_ms).where(blocks.c.number == number)).scalar()
        return None if value is None else int(value)

    def find_tx(self, tx_id: str) -> tuple[int, int, bool, str | None, str | None] | None:
        """``(block, index, valid, reason, message)`` of the first record of ``tx_id``, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(txs.c.block_number, txs.c.tx_index, txs.c.valid, txs.c.reason, txs.c.message)
                .where(txs.c.tx_id == tx_id)
                .order_by(txs.c.block_number, txs.c.tx_index)
                .limit(1)
            ).first()
        if row is None:
            return None
        return int(row[0]), int(row[1]), bool(row[2]), row[3], row[4]

    # --- writing -------------------------------------------------------------------------------------------

    def commit_block(self, block: Block, *, expected_number: int | None = None) -> None:
        """Store ``block`` with its records, writes and state changes in one database transaction."""
        number = block.number
        now_ms = int(time.time() * 1000)
        with self.engine.begin() as conn:
            top = conn.execute(sa.select(sa.func.max(blocks.c.number))).scalar()
            height = 0 if top is None else int(top) + 1
            if number != height or (expected_number is not None and number != expected_number):
                raise ValueError(f"block {number} does not extend the store at height {height}")
            h = block.header
            conn.execute(
                blocks.insert().values(
                    number=number,
                    prev_hash=h.prev_hash,
                    data_hash=h.data_hash,
                    state_writes_hash=h.state_writes_hash,
                    timestamp=h.timestamp,
                    block_hash=block.block_hash,
                    commit_hash=block.commit_hash,
                    payload=block.payload,
                    committed_at_ms=now_ms,
                )
            )
            tx_rows = []
            write_rows = []
            final: dict[str, bytes | None] = {}
            for i, rec in enumerate(block.records):
                tx_rows.append(
                    {
                        "block_number": number,
                        "tx_index": i,
                        "tx_id": rec.tx_id,
                        "valid": rec.valid,
                        "reason": rec.reason,
                        "message": rec.message,
                        "events": encode(list(rec.events)),
                    }
                )
                for key, value in rec.writes.items():
                    write_rows.append({"block_number": number, "tx_index": i, "key": key, "value": value})
                    final[key] = value
            if tx_rows:
                conn.execute(txs.insert(), tx_rows)
            if write_rows:
                conn.execute(writes.insert(), write_rows)
            if final:
                keys = sorted(final)
                for i in range(0, len(keys), 500):
                    conn.execute(state.delete().where(state.c.key.in_(keys[i : i + 500])))
                puts = [{"key": k, "value": v, "block_number": number} for k, v in final.items() if v is not None]
                if puts:
                    conn.execute(state.insert(), puts)

    # --- verification
    # ----------------------------------------------------------------------------------------

    def verify_chain(self, *, page: int = 256) -> ChainCheck:
        """Recompute every stored block's hashes and links from block 0 (:meth:`Block.verify`).

        Returns the ``(block_hash, commit_hash)`` of every block that verified, in order, and the failure of
        the first block that did not (``None`` if the whole chain verified). Blocks after a failure are not
        trusted.
        """
        chain: list[tuple[bytes, bytes]] = []
        prev_hash = prev_commit = bytes(32)
        start = 0
        while True:
            try:
                batch = self.read_blocks(start, page)
            except StoredRecordError as exc:
                batch = self.read_blocks(start, exc.number - start) if exc.number > start else []
                failure: BlockIntegrityError | None = exc
            else:
                failure = None
            for block in batch:
                if block.number != len(chain):
                    gap = BlockIntegrityError(
                        len(chain),
                        "block number",
                        len(chain).to_bytes(8, "big"),
                        block.number.to_bytes(8, "big"),
                    )
                    return ChainCheck(chain, gap)
                try:
                    block.verify(prev_hash=prev_hash, prev_commit_hash=prev_commit)
                except BlockIntegrityError as exc:
                    return ChainCheck(chain, exc)
                chain.append((block.block_hash, block.commit_hash))
                prev_hash, prev_commit = block.block_hash, block.commit_hash
            if failure is not None:
                return ChainCheck(chain, failure)
            if len(batch) < page:
                return ChainCheck(chain, None)
            start += page

    def verify_state(self) -> None:
        """Check the ``state`` table against the state re-derived from the recorded writes of every block.

        Raises :class:`StateIntegrityError` naming the first key whose stored value or writer differs.
        """
        with self.engine.connect() as conn, conn.begin():
            derived = self._derived_state(conn)
            stored = iter(
                conn.execute(sa.select(state.c.key, state.c.value, state.c.block_number).order_by(state.c.key))
            )
            want = next(derived, None)
            have = next(stored, None)
            while want is not None or have is not None:
                if have is None or (want is not None and want[0] < have.key):
                    assert want is not None
                    raise StateIntegrityError(want[0], want[1], None, want[2])
                if want is None or have.key < want[0]:
                    raise StateIntegrityError(have.key, None, bytes(have.value), int(have.block_number))
                if bytes(have.value) != want[1] or int(have.block_number) != want[2]:
                    raise StateIntegrityError(have.key, want[1], bytes(have.value), want[2])
                want = next(derived, None)
                have = next(stored, None)

    @staticmethod
    def _derived_state(conn: Connection) -> Iterator[tuple[str, bytes, int]]:
        rows = conn.execute(
            sa.select(writes.c.key, writes.c.value, writes.c.block_number).order_by(
                writes.c.key, writes.c.block_number, writes.c.tx_index
            )
        )
        current: tuple[str, bytes | None, int] | None = None
        for key, value, number in rows:
            if current is not None and current[0] != key and current[1] is not None:
                yield current[0], current[1], current[2]
            current = (key, None if value is None else bytes(value), int(number))
        if current is not None and current[1] is not None:
            yield current[0], current[1], current[2]

    def state_digest(self) -> tuple[int, bytes]:
        """SM3 over the canonical list of ``[key, SM3(value)]`` in key order: equal digests, equal world
        states."""
        h: list[list[str]] = []
        with self.engine.connect() as conn, conn.begin():
            height = ConnectionState(conn).height()
            for key, value in conn.execute(sa.select(state.c.key, state.c.value).order_by(state.c.key)):
                h.append([key, sm3(bytes(value)).hex()])
        return height, sm3(encode(h))

    def size_bytes(self) -> dict[str, int]:
        """Bytes held per table (payloads, records, writes, state): for the ledger-size benchmark."""
        with self.engine.connect() as conn:
            payload = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(blocks.c.payload)), 0))
            ).scalar()
            wvals = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(writes.c.value)), 0))).scalar()
            svals = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(state.c.value)), 0))).scalar()
            nblocks = conn.execute(sa.select(sa.func.count()).select_from(blocks)).scalar()
        return {
            "payload": int(payload or 0),
            "write_values": int(wvals or 0),
            "state_values": int(svals or 0),
            "blocks": int(nblocks or 0),
        }
