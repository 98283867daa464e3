"""Migrations on databases that hold data: migration 0002 rebuilds the outbox on SQLite (batch mode), which
``anchor_receipts`` rows reference once anything was anchored. With foreign keys enforced its ``DROP TABLE
outbox`` failed, so a pre-0002 SQLite node that had anchored anything could not start (node.db.migrate)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from nodekit import NodeUnderTest, fresh_postgres_database, nurses, start_node

from core import merkle
from node import outbox
from node.db.engine import make_engine
from node.db.migrate import current_revision, downgrade, head_revision, upgrade
from node.db.models import RECEIPTS_VIEW_SQL

pytestmark = pytest.mark.integration

TABLES = ("licenses", "license_versions", "outbox", "anchor_batches", "anchor_receipts")


def _issue_and_anchor(n: NodeUnderTest, count: int, seed: int) -> list[str]:
    """``count`` nurses issued, then anchored in one batch (:func:`_anchor_everything_locally`); their base ids."""
    issued = [n.issue(doc) for doc in nurses(count, seed=seed)]
    assert [r.status_code for r in issued] == [201] * count
    _anchor_everything_locally(n)
    return [r.json()["base_id"] for r in issued]


def _anchor_everything_locally(n: NodeUnderTest) -> None:
    """What the anchoring worker records for one batch (no ledger needed): batch, receipts, states."""
    with n.ctx.sessions() as session, session.begin():
        leaves = outbox.pending_leaves(session, 100)
        outbox.record_batch(
            session,
            batch_seq=0,
            outbox_ids=[leaf.outbox_id for leaf in leaves],
            root_hash=merkle.root_hash([leaf.leaf_hash for leaf in leaves]),
            tx_id="ab" * 32,
            envelope=b"{}",
            now_ms=n.ctx.clock(),
        )
    with n.ctx.sessions() as session, session.begin():
        assert outbox.record_batch_anchored(session, batch_seq=0, block_number=7, log_index=0, now_ms=n.ctx.clock())


@contextmanager
def _node(kind: str, directory: Path) -> Iterator[NodeUnderTest]:
    if kind == "postgresql":
        with fresh_postgres_database() as url:
            n = start_node(directory, database_url=url)
            try:
                yield n
            finally:
                n.client.close()
                n.ctx.close()
    else:
        n = start_node(directory)
        try:
            yield n
        finally:
            n.client.close()
            n.ctx.close()


@contextmanager
def _database_of(n: NodeUnderTest) -> Iterator[sa.Engine]:
    """The node stopped (its context closed) and an engine of the test's own on the node's database, as a
    migration run by hand meets it; disposed afterwards."""
    n.ctx.close()
    engine = make_engine(n.ctx.settings.url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_0002_applies_to_a_database_with_anchor_receipts(kind: str, tmp_path: Path) -> None:
    with _node(kind, tmp_path / "node") as n:
        _issue_and_anchor(n, 3, seed=90)
        counts = {t: n.count(t) for t in TABLES}
        assert counts["anchor_receipts"] == 3
        with _database_of(n) as engine:
            downgrade(engine, "0001")
            assert current_revision(engine) == "0001"
            upgrade(engine)  # raised IntegrityError (FOREIGN KEY constraint failed) on SQLite before the fix
            assert current_revision(engine) == head_revision()
            with engine.connect() as conn:
                assert {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES} == counts
                if kind == "sqlite":
                    assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1  # enforced again
                    assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def _receipts(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT version_id, outbox_id, batch_seq, leaf_index, batch_root, tx_id, block_number, log_index,"
                    " anchored_ms FROM anchor_receipts ORDER BY outbox_id"
                )
            )
        ]


def _leaf_states(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text("SELECT id, state, block_number, anchored_ms FROM outbox WHERE kind = 'leaf' ORDER BY id")
            )
        ]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_0003_turns_the_receipts_into_a_view_and_back(kind: str, tmp_path: Path) -> None:
    """0003 drops the receipts table for a view of the same rows; the leaf entries of anchored batches go from
    ``anchored`` to ``batched`` (their block and time stay in the batch row); downgrading restores both."""
    with _node(kind, tmp_path / "node") as n:
        bases = _issue_and_anchor(n, 4, seed=91)
        for doc in nurses(2, seed=92):  # pending leaves, in no batch: untouched both ways
            assert n.issue(doc).status_code == 201
        suspended = n.client.post(
            f"/v1/licenses/{bases[0]}/events",
            json={"type": "suspend", "reason": "review"},
            headers=n.auth("operator"),
        )
        assert suspended.status_code == 201, suspended.text
        with _database_of(n) as engine:
            receipts = _receipts(engine)
            assert len(receipts) == 4 and {r[6] for r in receipts} == {7}
            leaves = _leaf_states(engine)
            assert [s for _, s, _, _ in leaves] == ["batched"] * 4 + ["pending"] * 2
            downgrade(engine, "0002")
            assert _receipts(engine) == receipts  # now a table again, the same rows
            old = _leaf_states(engine)
            assert [(s, b) for _, s, b, _ in old] == [("anchored", 7)] * 4 + [("pending", None)] * 2
            upgrade(engine)
            assert current_revision(engine) == head_revision()
            assert _receipts(engine) == receipts and _leaf_states(engine) == leaves
            with engine.connect() as conn:  # the view the migration created is the one the models describe
                for a, b in (
                    ("anchor_receipts", f"({RECEIPTS_VIEW_SQL}) AS m"),
                    (f"({RECEIPTS_VIEW_SQL}) AS m", "anchor_receipts"),
                ):
                    assert conn.execute(sa.text(f"SELECT * FROM {a} EXCEPT SELECT * FROM {b}")).all() == []
            # one leaf per version, now by the partial unique index: a second leaf entry for a version, under an
            # event that has no leaf entry (the suspension's), breaks that index and nothing else
            with engine.connect() as conn, pytest.raises(sa.exc.IntegrityError, match="version_id"):
                conn.execute(
                    sa.text(
                        "INSERT INTO outbox (dedup_key, kind, license_id, version_id, event_id, state, created_ms)"
                        " SELECT 'leaf:copy', 'leaf', s.license_id, s.version_id, s.event_id, 'pending', 0"
                        " FROM outbox AS s WHERE s.kind = 'status'"
                    )
                )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_0003_refuses_receipts_that_disagree_and_changes_nothing(kind: str, tmp_path: Path) -> None:
    with _node(kind, tmp_path / "node") as n:
        _issue_and_anchor(n, 3, seed=93)
        with _database_of(n) as engine:
            downgrade(engine, "0002")
            with engine.begin() as conn:  # a receipt that says another block than its batch
                conn.execute(sa.text("UPDATE anchor_receipts SET block_number = 8 WHERE leaf_index = 1"))
            receipts, leaves = _receipts(engine), _leaf_states(engine)
            with pytest.raises(RuntimeError, match=r"anchor_receipts rows of outbox entries \[\d+\]"):
                upgrade(engine)
            assert current_revision(engine) == "0002"
            assert _receipts(engine) == receipts and _leaf_states(engine) == leaves


def _references(engine: sa.Engine) -> list[tuple[object, ...]]:
    """Every version's and outbox entry's license and event (what migration 0004 re-keys)."""
    with engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT id, license_id, event_id FROM license_versions ORDER BY id")).all()
        entries = conn.execute(sa.text("SELECT id, license_id, version_id, event_id FROM outbox ORDER BY id")).all()
    return [("v", *r) for r in versions] + [("o", *r) for r in entries]


def _crossed(conn: sa.Connection) -> tuple[int, int, int, int]:
    """A suspension event ``s`` (cited by no version), a version ``v`` of another license, that version's event
    ``e`` and the outbox status entry ``o`` of the suspension: ``(s, v, e, o)``. Citing ``s`` from ``v``, or
    ``e`` from ``o``, cites an event of another license."""
    s, license_id = conn.execute(sa.text("SELECT id, license_id FROM license_events WHERE type = 'suspend'")).one()
    v, e = conn.execute(
        sa.text("SELECT id, event_id FROM license_versions WHERE license_id <> :l ORDER BY id"), {"l": license_id}
    ).first() or (None, None)
    assert v is not None and e is not None
    o = conn.execute(sa.text("SELECT id FROM outbox WHERE kind = 'status' AND event_id = :s"), {"s": s}).scalar_one()
    return int(s), int(v), int(e), int(o)


def _suspend(n: NodeUnderTest, base: str) -> None:
    answer = n.client.post(
        f"/v1/licenses/{base}/events", json={"type": "suspend", "reason": "review"}, headers=n.auth("operator")
    )
    assert answer.status_code == 201, answer.text


_CITE_FROM_VERSION = "UPDATE license_versions SET event_id = :e WHERE id = :v"
_CITE_FROM_ENTRY = "UPDATE outbox SET event_id = :e WHERE id = :o"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_0004_keys_versions_and_entries_by_their_licenses_event(kind: str, tmp_path: Path) -> None:
    """After 0004 a version or an outbox entry citing an event of another license is refused (before, it was
    accepted); the rows are the same both ways."""
    with _node(kind, tmp_path / "node") as n:
        bases = _issue_and_anchor(n, 3, seed=94)
        _suspend(n, bases[1])
        with _database_of(n) as engine:
            before = _references(engine)
            downgrade(engine, "0003")
            assert _references(engine) == before
            with engine.connect() as conn:  # the old keys let a version and an entry cite another license's event
                s, v, e, o = _crossed(conn)
                conn.execute(sa.text(_CITE_FROM_VERSION), {"e": s, "v": v})
                conn.execute(sa.text(_CITE_FROM_ENTRY), {"e": e, "o": o})
                conn.rollback()
            upgrade(engine)
            assert current_revision(engine) == head_revision()
            assert _references(engine) == before
            with engine.connect() as conn:
                s, v, e, o = _crossed(conn)
                with pytest.raises(sa.exc.IntegrityError):
                    conn.execute(sa.text(_CITE_FROM_VERSION), {"e": s, "v": v})
                conn.rollback()
                with pytest.raises(sa.exc.IntegrityError):
                    conn.execute(sa.text(_CITE_FROM_ENTRY), {"e": e, "o": o})
                conn.rollback()
                if kind == "sqlite":
                    assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_0004_refuses_a_row_citing_another_licenses_event_and_changes_nothing(
    kind: str, tmp_path: Path
) -> None:
    with _node(kind, tmp_path / "node") as n:
        bases = _issue_and_anchor(n, 2, seed=95)
        _suspend(n, bases[0])
        with _database_of(n) as engine:
            downgrade(engine, "0003")
            with engine.begin() as conn:  # possible under 0003's keys
                s, v, _, _ = _crossed(conn)
                conn.execute(sa.text(_CITE_FROM_VERSION), {"e": s, "v": v})
            before = _references(engine)
            with pytest.raises((sa.exc.IntegrityError, RuntimeError)):
                upgrade(engine)
            assert current_revision(engine) == "0003"
            assert _references(engine) == before


def _outbox_indexes(engine: sa.Engine) -> set[str]:
    return {str(ix["name"]) for ix in sa.inspect(engine).get_indexes("outbox")}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_0005_adds_the_pending_leaf_index_and_takes_it_away(kind: str, tmp_path: Path) -> None:
    """0005 adds the partial index of pending leaves (the anchoring worker's queue) to a node that holds anchored
    and pending leaves; the queue reads the same through it, and a downgrade removes it."""
    with _node(kind, tmp_path / "node") as n:
        _issue_and_anchor(n, 3, seed=98)
        later = nurses(7, seed=98)[3:]  # the same generator: the first three are the anchored ones
        assert [n.issue(doc).status_code for doc in later] == [201] * 4
        with n.ctx.sessions() as session:
            queue = outbox.pending_leaves(session, 100)
        assert len(queue) == 4
        with _database_of(n) as engine:
            assert "ix_outbox_pending_leaf_id" in _outbox_indexes(engine)
            downgrade(engine, "0004")
            assert "ix_outbox_pending_leaf_id" not in _outbox_indexes(engine)
            upgrade(engine)
            assert current_revision(engine) == head_revision() == "0005"
            assert "ix_outbox_pending_leaf_id" in _outbox_indexes(engine)
            with engine.connect() as conn:
                if kind == "sqlite":  # SQLite's planner searches the queue by an index, whichever of the two
                    plan = " ".join(
                        str(row[-1])
                        for row in conn.exec_driver_sql(
                            "EXPLAIN QUERY PLAN SELECT id FROM outbox WHERE state = 'pending' AND kind = 'leaf'"
                            " ORDER BY id LIMIT 10"
                        )
                    )
                    assert plan.startswith("SEARCH outbox USING") and "TEMP B-TREE" not in plan, plan
                ids = conn.exec_driver_sql(
                    "SELECT id FROM outbox WHERE state = 'pending' AND kind = 'leaf' ORDER BY id"
                ).scalars()
                assert list(ids) == [leaf.outbox_id for leaf in queue]
