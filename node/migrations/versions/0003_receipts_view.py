"""Receipts become a view: nothing is written per leaf when a batch is anchored.

Before, anchoring a batch of N leaves wrote N ``anchor_receipts`` rows (three foreign keys, four indexes) and
updated the N outbox entries a second time (``batched`` -> ``anchored``), although every value of a receipt is
already stored once: the leaf's batch, index and transaction in its outbox entry, the root, block, log index
and time in its batch. Now a leaf entry ends at ``batched``, the batch row alone records that it is on the
ledger, and ``anchor_receipts`` is a view joining the two (:data:`node.db.models.RECEIPTS_VIEW_SQL`); a unique
index on the leaf entries' ``version_id`` keeps "one leaf per version" and serves the view's lookups.

Upgrade, in the migration's one transaction:

1. Check that the stored receipts are exactly the view's rows (every value of every receipt, and no leaf of
   an anchored batch without one) and that every ``anchored`` leaf entry names its batch's block and time;
   otherwise stop with the evidence (the transaction, and so the database, is left as it was).
2. Leaf entries ``anchored`` -> ``batched`` (their block and time stay in the batch row, checked in 1).
3. Drop the table, create the index and the view.

Downgrade rebuilds the table and the ``anchored`` leaf states from the same join.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The view as of this revision (a later change to node.db.models must not change what this migration creates).
VIEW_SQL = (
    "SELECT o.id AS id, o.version_id AS version_id, o.id AS outbox_id, o.batch_seq AS batch_seq,"
    " o.leaf_index AS leaf_index, b.root_hash AS batch_root, o.tx_id AS tx_id, b.block_number AS block_number,"
    " b.log_index AS log_index, b.anchored_ms AS anchored_ms"
    " FROM outbox AS o JOIN anchor_batches AS b ON b.batch_seq = o.batch_seq"
    " WHERE o.kind = 'leaf' AND b.state = 'anchored'"
)
COLUMNS = (
    "version_id",
    "outbox_id",
    "batch_seq",
    "leaf_index",
    "batch_root",
    "tx_id",
    "block_number",
    "log_index",
    "anchored_ms",
)


class ReceiptsDisagree(RuntimeError):
    """The stored receipts are not what the outbox and the batches say: nothing was changed."""


def _scalar(sql: str) -> int:
    return int(op.get_bind().execute(sa.text(sql)).scalar_one())


def _check() -> None:
    # each receipt is looked up by its outbox id (an index), then compared value by value (log_index may be NULL)
    same = " AND ".join(f"(v.{c} = r.{c} OR (v.{c} IS NULL AND r.{c} IS NULL))" for c in COLUMNS)
    unmatched = (
        op.get_bind()
        .execute(
            sa.text(
                f"SELECT r.outbox_id FROM anchor_receipts AS r WHERE NOT EXISTS "  # noqa: S608 (constants only)
                f"(SELECT 1 FROM ({VIEW_SQL}) AS v WHERE v.outbox_id = r.outbox_id AND {same})"
                " ORDER BY r.outbox_id LIMIT 5"
            )
        )
        .scalars()
        .all()
    )
    if unmatched:
        raise ReceiptsDisagree(
            f"anchor_receipts rows of outbox entries {list(unmatched)} (first five) differ from their outbox "
            "entry and batch; nothing was migrated"
        )
    receipts = _scalar("SELECT count(*) FROM anchor_receipts")
    derived = _scalar(f"SELECT count(*) FROM ({VIEW_SQL}) AS v")  # noqa: S608
    if receipts != derived:
        raise ReceiptsDisagree(
            f"{receipts} anchor_receipts rows, but {derived} leaves of anchored batches; nothing was migrated"
        )
    stray = _scalar(
        "SELECT count(*) FROM outbox AS o WHERE o.kind = 'leaf' AND o.state = 'anchored' AND NOT EXISTS "
        "(SELECT 1 FROM anchor_batches AS b WHERE b.batch_seq = o.batch_seq AND b.state = 'anchored'"
        " AND b.block_number = o.block_number AND b.anchored_ms = o.anchored_ms)"
    )
    if stray:
        raise ReceiptsDisagree(
            f"{stray} anchored leaf entries name another block or time than their batch; nothing was migrated"
        )


def upgrade() -> None:
    _check()
    op.execute(
        "UPDATE outbox SET state = 'batched', block_number = NULL, anchored_ms = NULL "
        "WHERE kind = 'leaf' AND state = 'anchored'"
    )
    op.drop_table("anchor_receipts")
    op.create_index(
        "uq_outbox_leaf_version_id",
        "outbox",
        ["version_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'leaf'"),
        postgresql_where=sa.text("kind = 'leaf'"),
    )
    op.execute(f"CREATE VIEW anchor_receipts AS {VIEW_SQL}")


def downgrade() -> None:
    op.execute("DROP VIEW anchor_receipts")
    op.drop_index("uq_outbox_leaf_version_id", table_name="outbox")
    op.create_table(
        "anchor_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("batch_seq", sa.BigInteger(), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("batch_root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("tx_id", sa.String(length=64), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=True),
        sa.Column("anchored_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_seq"],
            ["anchor_batches.batch_seq"],
            name=op.f("fk_anchor_receipts_batch_seq_anchor_batches"),
        ),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], name=op.f("fk_anchor_receipts_outbox_id_outbox")),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["license_versions.id"],
            name=op.f("fk_anchor_receipts_version_id_license_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anchor_receipts")),
        sa.UniqueConstraint("batch_seq", "leaf_index", name=op.f("uq_anchor_receipts_batch_seq_leaf_index")),
        sa.UniqueConstraint("outbox_id", name=op.f("uq_anchor_receipts_outbox_id")),
        sa.UniqueConstraint("version_id", name=op.f("uq_anchor_receipts_version_id")),
    )
    names = ", ".join(COLUMNS)
    op.execute(
        f"INSERT INTO anchor_receipts ({names}) SELECT {names} FROM ({VIEW_SQL}) AS v ORDER BY v.outbox_id"  # noqa: S608
    )
    anchored = "SELECT {c} FROM anchor_batches AS b WHERE b.batch_seq = outbox.batch_seq AND b.state = 'anchored'"
    op.execute(
        "UPDATE outbox SET state = 'anchored', "  # noqa: S608 (constants only)
        f"block_number = ({anchored.format(c='b.block_number')}), "
        f"anchored_ms = ({anchored.format(c='b.anchored_ms')}) "
        f"WHERE kind = 'leaf' AND state = 'batched' AND EXISTS ({anchored.format(c='1')})"
    )
