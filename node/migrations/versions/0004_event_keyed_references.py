"""A version and an outbox entry reference their event together with their license.

Before, ``license_versions`` had two foreign keys (``license_id`` -> ``licenses``, ``event_id`` ->
``license_events``) and ``outbox`` three (``license_id``, ``version_id``, ``event_id``). Nothing stopped a
version or an outbox entry from citing an event of *another* license. Now each cites ``(license_id,
event_id)`` -> ``license_events (license_id, id)``:

* the event must exist and belong to the row's own license, a rule the old keys did not state;
* the license must exist, through the event's own ``license_id`` -> ``licenses`` key.

Each row has one check fewer. Checking a foreign key in PostgreSQL costs a row-level trigger and an index lookup
under a lock. Storing 20,000 licenses in chunks of 5,000 took 91 µs of server CPU per license with the seven
keys, and 50 µs with no keys at all (``bench/bench_anchor.py``'s import path). Now two of the seven checks are
gone.

``license_events``' index on ``license_id`` becomes the unique index on ``(license_id, id)`` that the new keys
reference. It serves the same lookups by license, so no index is added.

On SQLite the tables are rebuilt (alembic's batch mode: copy, drop, rename), which a view over them does not
survive, so ``anchor_receipts`` is dropped first and created again after, the same view (0003's text).

Upgrade, in the migration's one transaction: the new keys are checked against every stored row. PostgreSQL
checks them when they are added; on SQLite, ``node.db.migrate`` runs ``PRAGMA foreign_key_check`` before the
commit. A row citing another license's event stops the migration, and the database is left as it was.
Downgrade restores the separate keys.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_KEY = ["license_id", "id"]
# anchor_receipts as migration 0003 created it (frozen: a later change of the models does not change this one)
VIEW_SQL = (
    "SELECT o.id AS id, o.version_id AS version_id, o.id AS outbox_id, o.batch_seq AS batch_seq,"
    " o.leaf_index AS leaf_index, b.root_hash AS batch_root, o.tx_id AS tx_id, b.block_number AS block_number,"
    " b.log_index AS log_index, b.anchored_ms AS anchored_ms"
    " FROM outbox AS o JOIN anchor_batches AS b ON b.batch_seq = o.batch_seq"
    " WHERE o.kind = 'leaf' AND b.state = 'anchored'"
)


@contextmanager
def _without_view_on_sqlite() -> Iterator[None]:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP VIEW anchor_receipts")
    yield
    if sqlite:
        op.execute(f"CREATE VIEW anchor_receipts AS {VIEW_SQL}")


def upgrade() -> None:
    with _without_view_on_sqlite():
        _upgrade()


def downgrade() -> None:
    with _without_view_on_sqlite():
        _downgrade()


def _upgrade() -> None:
    with op.batch_alter_table("license_events", schema=None) as batch_op:
        batch_op.drop_index("ix_license_events_license_id")
        batch_op.create_unique_constraint("uq_license_events_license_id_id", EVENT_KEY)
    with op.batch_alter_table("license_versions", schema=None) as batch_op:
        batch_op.drop_constraint("fk_license_versions_license_id_licenses", type_="foreignkey")
        batch_op.drop_constraint("fk_license_versions_event_id_license_events", type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_license_versions_license_id_license_events", "license_events", ["license_id", "event_id"], EVENT_KEY
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint("fk_outbox_license_id_licenses", type_="foreignkey")
        batch_op.drop_constraint("fk_outbox_event_id_license_events", type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_outbox_license_id_license_events", "license_events", ["license_id", "event_id"], EVENT_KEY
        )


def _downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint("fk_outbox_license_id_license_events", type_="foreignkey")
        batch_op.create_foreign_key("fk_outbox_license_id_licenses", "licenses", ["license_id"], ["id"])
        batch_op.create_foreign_key("fk_outbox_event_id_license_events", "license_events", ["event_id"], ["id"])
    with op.batch_alter_table("license_versions", schema=None) as batch_op:
        batch_op.drop_constraint("fk_license_versions_license_id_license_events", type_="foreignkey")
        batch_op.create_foreign_key("fk_license_versions_license_id_licenses", "licenses", ["license_id"], ["id"])
        batch_op.create_foreign_key(
            "fk_license_versions_event_id_license_events", "license_events", ["event_id"], ["id"]
        )
    with op.batch_alter_table("license_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_license_events_license_id_id", type_="unique")
        batch_op.create_index("ix_license_events_license_id", ["license_id"], unique=False)
