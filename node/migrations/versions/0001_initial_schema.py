"""Initial schema of the provincial node (node/db/models.py).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "anchor_batches",
        sa.Column("batch_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("leaf_count", sa.Integer(), nullable=False),
        sa.Column("tx_id", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("log_index", sa.BigInteger(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("anchored_ms", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("state IN ('built', 'anchored')", name=op.f("ck_anchor_batches_state")),
        sa.CheckConstraint("batch_seq >= 0 AND leaf_count >= 1", name=op.f("ck_anchor_batches_sizes")),
        sa.PrimaryKeyConstraint("batch_seq", name=op.f("pk_anchor_batches")),
        sa.UniqueConstraint("tx_id", name=op.f("uq_anchor_batches_tx_id")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=24), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("institution_uscc", sa.String(length=18), nullable=True),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "(role = 'institution') = (institution_uscc IS NOT NULL)", name=op.f("ck_api_keys_institution")
        ),
        sa.CheckConstraint("role IN ('operator', 'institution', 'agency', 'auditor')", name=op.f("ck_api_keys_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("object", sa.String(length=160), nullable=True),
        sa.Column("personal_data", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_object"), ["object"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_occurred_ms"), ["occurred_ms"], unique=False)

    op.create_table(
        "holder_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.String(length=24), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("holder_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holder_tokens")),
        sa.UniqueConstraint("token_id", name=op.f("uq_holder_tokens_token_id")),
    )
    with op.batch_alter_table("holder_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_holder_tokens_holder_hash"), ["holder_hash"], unique=False)

    op.create_table(
        "import_progress",
        sa.Column("file_sm3", sa.String(length=64), nullable=False),
        sa.Column("byte_offset", sa.BigInteger(), nullable=False),
        sa.Column("line_number", sa.BigInteger(), nullable=False),
        sa.Column("imported", sa.BigInteger(), nullable=False),
        sa.Column("present", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("file_sm3", name=op.f("pk_import_progress")),
    )
    op.create_table(
        "licenses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("base_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_seq", sa.Integer(), nullable=False),
        sa.Column("holder_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("institution_uscc", sa.String(length=18), nullable=False),
        sa.Column("city_code", sa.String(length=6), nullable=False),
        sa.Column("practice_category", sa.String(length=32), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'revoked', 'reinstated')", name=op.f("ck_licenses_status")
        ),
        sa.CheckConstraint("current_version >= 1", name=op.f("ck_licenses_version")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licenses")),
        sa.UniqueConstraint("base_id", name=op.f("uq_licenses_base_id")),
    )
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licenses_city_code"), ["city_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_licenses_holder_hash"), ["holder_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_licenses_institution_uscc"), ["institution_uscc"], unique=False)
        batch_op.create_index("ix_licenses_kind_category", ["kind", "practice_category"], unique=False)

    op.create_table(
        "import_rejects",
        sa.Column("file_sm3", sa.String(length=64), nullable=False),
        sa.Column("line_number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_sm3"],
            ["import_progress.file_sm3"],
            name=op.f("fk_import_rejects_file_sm3_import_progress"),
        ),
        sa.PrimaryKeyConstraint("file_sm3", "line_number", name=op.f("pk_import_rejects")),
    )
    op.create_table(
        "license_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("license_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("occurred_ms", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'revoked', 'reinstated')",
            name=op.f("ck_license_events_status"),
        ),
        sa.CheckConstraint(
            "type IN ('issue', 'change', 'filing', 'cancel-filing', 'renew', 'suspend', 'revoke', 'reinstate')",
            name=op.f("ck_license_events_type"),
        ),
        sa.ForeignKeyConstraint(["license_id"], ["licenses.id"], name=op.f("fk_license_events_license_id_licenses")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_license_events")),
    )
    with op.batch_alter_table("license_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_license_events_license_id"), ["license_id"], unique=False)
        batch_op.create_index("ix_license_events_month_type", ["month", "type"], unique=False)

    op.create_table(
        "license_institutions",
        sa.Column("license_id", sa.Integer(), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("relation", sa.String(length=8), nullable=False),
        sa.CheckConstraint("relation IN ('primary', 'filed', 'holder')", name=op.f("ck_license_institutions_relation")),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.id"], name=op.f("fk_license_institutions_license_id_licenses")
        ),
        sa.PrimaryKeyConstraint("license_id", "uscc", name=op.f("pk_license_institutions")),
    )
    with op.batch_alter_table("license_institutions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_license_institutions_uscc"), ["uscc"], unique=False)

    op.create_table(
        "license_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("license_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("full_id", sa.String(length=140), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=False),
        sa.Column("commitment", sa.LargeBinary(length=32), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seal", sa.LargeBinary(), nullable=False),
        sa.Column("seal_key_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["license_events.id"], name=op.f("fk_license_versions_event_id_license_events")
        ),
        sa.ForeignKeyConstraint(["license_id"], ["licenses.id"], name=op.f("fk_license_versions_license_id_licenses")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_license_versions")),
        sa.UniqueConstraint("event_id", name=op.f("uq_license_versions_event_id")),
        sa.UniqueConstraint("full_id", name=op.f("uq_license_versions_full_id")),
        sa.UniqueConstraint("leaf_hash", name=op.f("uq_license_versions_leaf_hash")),
        sa.UniqueConstraint("license_id", "version", name=op.f("uq_license_versions_license_id_version")),
    )
    with op.batch_alter_table("license_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_license_versions_commitment"), ["commitment"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=180), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("license_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("effective_ms", sa.BigInteger(), nullable=True),
        sa.Column("status_seq", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("batch_seq", sa.BigInteger(), nullable=True),
        sa.Column("leaf_index", sa.BigInteger(), nullable=True),
        sa.Column("tx_id", sa.String(length=64), nullable=True),
        sa.Column("envelope", sa.LargeBinary(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("batched_ms", sa.BigInteger(), nullable=True),
        sa.Column("anchored_ms", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "(kind = 'leaf' AND status IS NULL AND status_seq IS NULL) OR "
            "(kind = 'status' AND status IS NOT NULL AND status_seq IS NOT NULL AND batch_seq IS NULL)",
            name=op.f("ck_outbox_shape"),
        ),
        sa.CheckConstraint(
            "(state = 'pending' AND batch_seq IS NULL AND leaf_index IS NULL AND tx_id IS NULL"
            " AND block_number IS NULL) OR "
            "(state = 'batched' AND tx_id IS NOT NULL AND block_number IS NULL"
            " AND (kind = 'status' OR (batch_seq IS NOT NULL AND leaf_index IS NOT NULL))) OR "
            "(state = 'anchored' AND tx_id IS NOT NULL AND block_number IS NOT NULL"
            " AND (kind = 'status' OR (batch_seq IS NOT NULL AND leaf_index IS NOT NULL)))",
            name=op.f("ck_outbox_progress"),
        ),
        sa.CheckConstraint("kind IN ('leaf', 'status')", name=op.f("ck_outbox_kind")),
        sa.CheckConstraint("state IN ('pending', 'batched', 'anchored')", name=op.f("ck_outbox_state")),
        sa.ForeignKeyConstraint(
            ["batch_seq"], ["anchor_batches.batch_seq"], name=op.f("fk_outbox_batch_seq_anchor_batches")
        ),
        sa.ForeignKeyConstraint(["event_id"], ["license_events.id"], name=op.f("fk_outbox_event_id_license_events")),
        sa.ForeignKeyConstraint(["license_id"], ["licenses.id"], name=op.f("fk_outbox_license_id_licenses")),
        sa.ForeignKeyConstraint(
            ["version_id"], ["license_versions.id"], name=op.f("fk_outbox_version_id_license_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("batch_seq", "leaf_index", name=op.f("uq_outbox_batch_seq_leaf_index")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_outbox_dedup_key")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_license_id"), ["license_id"], unique=False)
        batch_op.create_index("ix_outbox_state_kind_id", ["state", "kind", "id"], unique=False)

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


def downgrade() -> None:
    op.drop_table("anchor_receipts")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_state_kind_id")
        batch_op.drop_index(batch_op.f("ix_outbox_license_id"))

    op.drop_table("outbox")
    with op.batch_alter_table("license_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_license_versions_commitment"))

    op.drop_table("license_versions")
    with op.batch_alter_table("license_institutions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_license_institutions_uscc"))

    op.drop_table("license_institutions")
    with op.batch_alter_table("license_events", schema=None) as batch_op:
        batch_op.drop_index("ix_license_events_month_type")
        batch_op.drop_index(batch_op.f("ix_license_events_license_id"))

    op.drop_table("license_events")
    op.drop_table("import_rejects")
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.drop_index("ix_licenses_kind_category")
        batch_op.drop_index(batch_op.f("ix_licenses_institution_uscc"))
        batch_op.drop_index(batch_op.f("ix_licenses_holder_hash"))
        batch_op.drop_index(batch_op.f("ix_licenses_city_code"))

    op.drop_table("licenses")
    op.drop_table("import_progress")
    with op.batch_alter_table("holder_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_holder_tokens_holder_hash"))

    op.drop_table("holder_tokens")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_occurred_ms"))
        batch_op.drop_index(batch_op.f("ix_audit_log_object"))
        batch_op.drop_index(batch_op.f("ix_audit_log_actor"))

    op.drop_table("audit_log")
    op.drop_table("api_keys")
    op.drop_table("anchor_batches")
