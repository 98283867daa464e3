"""Outbox: one entry per (event, kind), so a version event announces its leaf and its version update.

A new license version's event writes a ``leaf`` entry and a ``status`` entry (``ChangeStatus`` with reason
``NEW_VERSION``, docs/chaincode.md "Status map"): the unique constraint on ``event_id`` becomes one on
``(event_id, kind)``.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint("uq_outbox_event_id", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_outbox_event_id_kind"), ["event_id", "kind"])


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint("uq_outbox_event_id_kind", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_outbox_event_id"), ["event_id"])
