"""An index of the pending leaves alone: the anchoring worker's queue.

The worker reads the outbox's pending leaves in ``id`` order: the first and last (``outbox.backlog``, before each
pass), how many there are up to a batch (``pending_leaves_reach``), a batch of them (``pending_leaves``), and the
batch's move to ``batched`` (``record_batch``). Those statements said ``state = 'pending' AND kind = 'leaf'
ORDER BY id`` and left the index to PostgreSQL's planner, which had two: the ``(state, kind, id)`` index and the
primary key. Once a table's statistics are taken while most leaves are pending (autovacuum's automatic
``ANALYZE`` after an import, or an ``ANALYZE`` by hand), the planner expects almost every row to be pending, so
the primary key, filtered, looks as good as any index for the first pending rows. But the pending leaves are
the newest rows: that walk reads every leaf already batched before it finds one. Measured on a node with 50,000
licenses imported, ``ANALYZE`` run, then 50,000 more imported while anchoring (a probe kept outside the
repository): the check before each pass took 150-200 ms and each batch's ``UPDATE`` ~190 ms (a merge join over
the whole primary key), and the server's CPU per license went from 101-132 µs to 343-350.

This index holds the pending leaves only (a partial index; PostgreSQL and SQLite both have them), so it is as
small as the queue, not the outbox, and it answers those statements without a filter; the planner prefers it
whatever the statistics say. A leaf leaves it when its batch is recorded.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_LEAF = "state = 'pending' AND kind = 'leaf'"


def upgrade() -> None:
    op.create_index(
        "ix_outbox_pending_leaf_id",
        "outbox",
        ["id"],
        unique=False,
        sqlite_where=sa.text(PENDING_LEAF),
        postgresql_where=sa.text(PENDING_LEAF),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_pending_leaf_id", table_name="outbox")
