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

pytestmark = pytest.mark.integration

TABLES = ("licenses", "license_versions", "outbox", "anchor_batches", "anchor_receipts")


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


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_0002_applies_to_a_database_with_anchor_receipts(kind: str, tmp_path: Path) -> None:
    with _node(kind, tmp_path / "node") as n:
        for doc in nurses(3, seed=90):
            assert n.issue(doc).status_code == 201
        _anchor_everything_locally(n)
        counts = {t: n.count(t) for t in TABLES}
        assert counts["anchor_receipts"] == 3
        n.ctx.close()
        engine = make_engine(n.ctx.settings.url)
        try:
            downgrade(engine, "0001")
            assert current_revision(engine) == "0001"
            upgrade(engine)  # raised IntegrityError (FOREIGN KEY constraint failed) on SQLite before the fix
            assert current_revision(engine) == head_revision()
            with engine.connect() as conn:
                assert {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES} == counts
                if kind == "sqlite":
                    assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1  # enforced again
                    assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        finally:
            engine.dispose()
