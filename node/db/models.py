"""The provincial node's tables (SQLAlchemy 2 declarative models). Migrations: ``node/migrations``.

* ``licenses``: one row per license (GB/T 36904 identifier *base*, without version): kind, current version,
  lifecycle status, the holder's citizen-ID hash (HMAC-SM3 under a node secret, :mod:`node.tokens`; never the
  plain number), the institution (USCC), city and practice category for the policy queries.
* ``license_institutions``: the institutions a license's current version names (primary and filed), so an
  institution finds its own physicians and nurses.
* ``license_versions``: every version's canonical document bytes, salt, commitment, seal, and the event that
  produced it.
* ``license_events``: issue, change, filing, cancel-filing, suspend, revoke, reinstate, renew: who, when,
  why, the resulting version and status.
* ``outbox``: what the anchoring worker must put on the ledger, in order (:mod:`node.outbox`).
* ``anchor_batches``: the batches the worker built and signed, and where each landed on the ledger.
* ``anchor_receipts`` (a view, migration 0003): where each license version's leaf landed on the ledger, joined
  from its outbox entry (batch and leaf index) and its batch (root, block, log index) once the batch is
  anchored; nothing is written per leaf when a batch is anchored.
* ``audit_log``: who did or read what, when (ids only, no personal data).
* ``api_keys`` / ``holder_tokens``: hashed credentials.
* ``import_progress`` / ``import_rejects``: resumable bulk import.

Times are integer milliseconds since the Unix epoch (UTC), like the ledger's ``*_ms`` fields.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EVENT_TYPES = ("issue", "change", "filing", "cancel-filing", "renew", "suspend", "revoke", "reinstate")
LICENSE_STATUSES = ("active", "suspended", "revoked", "reinstated")
OUTBOX_KINDS = ("leaf", "status")
OUTBOX_STATES = ("pending", "batched", "anchored")
PENDING_LEAF = "state = 'pending' AND kind = 'leaf'"
"""The outbox entries the anchoring worker has still to batch (its partial index, migration 0005)."""
BATCH_STATES = ("built", "anchored")
ROLES = ("operator", "institution", "agency", "auditor")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class License(Base):
    __tablename__ = "licenses"
    __table_args__ = (
        CheckConstraint(_in("status", LICENSE_STATUSES), name="status"),
        CheckConstraint("current_version >= 1", name="version"),
        Index("ix_licenses_kind_category", "kind", "practice_category"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    base_id: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    current_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    status_seq: Mapped[int] = mapped_column(Integer)
    """The next ``ChangeStatus`` sequence number of this license (contiguous from 0 on the ledger)."""
    holder_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), index=True)
    institution_uscc: Mapped[str] = mapped_column(String(18), index=True)
    city_code: Mapped[str] = mapped_column(String(6), index=True)
    practice_category: Mapped[str | None] = mapped_column(String(32))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class LicenseInstitution(Base):
    __tablename__ = "license_institutions"
    __table_args__ = (CheckConstraint("relation IN ('primary', 'filed', 'holder')", name="relation"),)

    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id"), primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), primary_key=True, index=True)
    relation: Mapped[str] = mapped_column(String(8))


class LicenseEvent(Base):
    __tablename__ = "license_events"
    __table_args__ = (
        CheckConstraint(_in("type", EVENT_TYPES), name="type"),
        CheckConstraint(_in("status", LICENSE_STATUSES), name="status"),
        Index("ix_license_events_month_type", "month", "type"),
        # a license's events by license (its history), and the key the versions and outbox entries reference
        # with their license: an event is always cited by rows of its own license (migration 0004)
        UniqueConstraint("license_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id"))
    type: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str] = mapped_column(String(16))
    occurred_ms: Mapped[int] = mapped_column(BigInteger)
    month: Mapped[str] = mapped_column(String(7))
    """``YYYY-MM`` (UTC) of ``occurred_ms``, for the statistics' changes over time."""
    version: Mapped[int] = mapped_column(Integer)
    """The license's version after the event (a new one for version-producing events)."""
    status: Mapped[str] = mapped_column(String(16))
    """The license's lifecycle status after the event."""
    request_id: Mapped[str] = mapped_column(String(64))


class LicenseVersion(Base):
    __tablename__ = "license_versions"
    __table_args__ = (
        UniqueConstraint("license_id", "version"),
        # the version's event, of the same license (and so the license, through the event's own key)
        ForeignKeyConstraint(["license_id", "event_id"], ["license_events.license_id", "license_events.id"]),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    license_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    full_id: Mapped[str] = mapped_column(String(140), unique=True)
    document: Mapped[bytes] = mapped_column(LargeBinary)
    """Canonical bytes (RFC 8785 subset) of the license document: what is committed to and sealed."""
    salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    commitment: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    seal: Mapped[bytes] = mapped_column(LargeBinary)
    """Canonical JSON of :meth:`core.seal.Seal.to_dict`."""
    seal_key_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[int] = mapped_column(Integer, unique=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class Outbox(Base):
    """What must reach the ledger: a license version's leaf, or a status change. See :mod:`node.outbox`."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("kind", OUTBOX_KINDS), name="kind"),
        CheckConstraint(_in("state", OUTBOX_STATES), name="state"),
        CheckConstraint(
            "(kind = 'leaf' AND status IS NULL AND status_seq IS NULL) OR "
            "(kind = 'status' AND status IS NOT NULL AND status_seq IS NOT NULL AND batch_seq IS NULL)",
            name="shape",
        ),
        CheckConstraint(
            "(state = 'pending' AND batch_seq IS NULL AND leaf_index IS NULL AND tx_id IS NULL"
            " AND block_number IS NULL) OR "
            "(state = 'batched' AND tx_id IS NOT NULL AND block_number IS NULL"
            " AND (kind = 'status' OR (batch_seq IS NOT NULL AND leaf_index IS NOT NULL))) OR "
            "(state = 'anchored' AND tx_id IS NOT NULL AND block_number IS NOT NULL"
            " AND (kind = 'status' OR (batch_seq IS NOT NULL AND leaf_index IS NOT NULL)))",
            name="progress",
        ),
        UniqueConstraint("dedup_key"),
        UniqueConstraint("batch_seq", "leaf_index"),
        UniqueConstraint("event_id", "kind"),
        Index("ix_outbox_state_kind_id", "state", "kind", "id"),
        # the anchoring worker's queue: the pending leaves only, in id order, whatever the statistics; migration 0005
        Index(
            "ix_outbox_pending_leaf_id",
            "id",
            sqlite_where=text(PENDING_LEAF),
            postgresql_where=text(PENDING_LEAF),
        ),
        # a version has one leaf, found by version (the anchor_receipts view's lookups); migration 0003
        Index(
            "uq_outbox_leaf_version_id",
            "version_id",
            unique=True,
            sqlite_where=text("kind = 'leaf'"),
            postgresql_where=text("kind = 'leaf'"),
        ),
        # the entry's event, of the entry's license (and so the license, through the event's own key)
        ForeignKeyConstraint(["license_id", "event_id"], ["license_events.license_id", "license_events.id"]),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(180))
    """``leaf:<base id>:<version>`` or ``status:<base id>:<status_seq>``: one entry per fact, ever."""
    kind: Mapped[str] = mapped_column(String(8))
    license_id: Mapped[int] = mapped_column(Integer, index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("license_versions.id"))
    """The version whose leaf this is, or (status) the version whose anchored leaf the change cites."""
    event_id: Mapped[int] = mapped_column(Integer)
    """The event announced; a version event has two entries, its ``leaf`` and its version update (``status``)."""
    status: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    effective_ms: Mapped[int | None] = mapped_column(BigInteger)
    status_seq: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(8))
    batch_seq: Mapped[int | None] = mapped_column(ForeignKey("anchor_batches.batch_seq"))
    leaf_index: Mapped[int | None] = mapped_column(BigInteger)
    tx_id: Mapped[str | None] = mapped_column(String(64))
    envelope: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The signed ``ChangeStatus`` envelope (status entries): a retry resubmits the same transaction."""
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    batched_ms: Mapped[int | None] = mapped_column(BigInteger)
    anchored_ms: Mapped[int | None] = mapped_column(BigInteger)


class AnchorBatch(Base):
    """A batch of leaves the worker built: its RFC 9162 root and the signed ``AnchorBatch`` envelope."""

    __tablename__ = "anchor_batches"
    __table_args__ = (
        CheckConstraint(_in("state", BATCH_STATES), name="state"),
        CheckConstraint("batch_seq >= 0 AND leaf_count >= 1", name="sizes"),
    )

    batch_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    leaf_count: Mapped[int] = mapped_column(Integer)
    tx_id: Mapped[str] = mapped_column(String(64), unique=True)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(8))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    log_index: Mapped[int | None] = mapped_column(BigInteger)
    """The batch's position (leaf index) in the ledger-wide anchor log."""
    created_ms: Mapped[int] = mapped_column(BigInteger)
    anchored_ms: Mapped[int | None] = mapped_column(BigInteger)


VIEWS = MetaData(naming_convention=NAMING)
"""Views (created by the migrations, never by ``create_all`` of :data:`Base.metadata`)."""

RECEIPTS_VIEW_SQL = (
    "SELECT o.id AS id, o.version_id AS version_id, o.id AS outbox_id, o.batch_seq AS batch_seq,"
    " o.leaf_index AS leaf_index, b.root_hash AS batch_root, o.tx_id AS tx_id, b.block_number AS block_number,"
    " b.log_index AS log_index, b.anchored_ms AS anchored_ms"
    " FROM outbox AS o JOIN anchor_batches AS b ON b.batch_seq = o.batch_seq"
    " WHERE o.kind = 'leaf' AND b.state = 'anchored'"
)
"""The ``anchor_receipts`` view (migration 0003): a leaf's batch and index from its outbox entry, the rest from
the batch, for the leaves of anchored batches only."""


class AnchorReceipt(Base):
    """Where one license version's leaf is on the ledger: batch, leaf index, root, transaction, block. Read-only:
    the ``anchor_receipts`` view (:data:`RECEIPTS_VIEW_SQL`), one row per leaf of an anchored batch."""

    __table__ = Table(
        "anchor_receipts",
        VIEWS,
        Column("id", Integer, primary_key=True),
        Column("version_id", Integer, nullable=False),
        Column("outbox_id", Integer, nullable=False),
        Column("batch_seq", BigInteger, nullable=False),
        Column("leaf_index", BigInteger, nullable=False),
        Column("batch_root", LargeBinary(32), nullable=False),
        Column("tx_id", String(64), nullable=False),
        Column("block_number", BigInteger, nullable=False),
        Column("log_index", BigInteger),
        Column("anchored_ms", BigInteger, nullable=False),
    )

    id: Mapped[int]
    version_id: Mapped[int]
    outbox_id: Mapped[int]
    batch_seq: Mapped[int]
    leaf_index: Mapped[int]
    batch_root: Mapped[bytes]
    tx_id: Mapped[str]
    block_number: Mapped[int]
    log_index: Mapped[int | None]
    anchored_ms: Mapped[int]


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(48))
    object: Mapped[str | None] = mapped_column(String(160), index=True)
    personal_data: Mapped[bool] = mapped_column(Boolean)
    """Whether the action disclosed personal data (a document, a staff list) to the actor."""
    detail: Mapped[str] = mapped_column(String(500))
    """Canonical JSON of ids and counts only."""
    request_id: Mapped[str] = mapped_column(String(64))


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint("(role = 'institution') = (institution_uscc IS NOT NULL)", name="institution"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(24), unique=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    role: Mapped[str] = mapped_column(String(16))
    institution_uscc: Mapped[str | None] = mapped_column(String(18))
    label: Mapped[str] = mapped_column(String(100))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger)


class HolderToken(Base):
    __tablename__ = "holder_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[str] = mapped_column(String(24), unique=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    holder_hash: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger)


class ImportProgress(Base):
    __tablename__ = "import_progress"

    file_sm3: Mapped[str] = mapped_column(String(64), primary_key=True)
    byte_offset: Mapped[int] = mapped_column(BigInteger)
    line_number: Mapped[int] = mapped_column(BigInteger)
    """Lines fully processed (imported, already present or rejected); the next line is ``line_number + 1``."""
    imported: Mapped[int] = mapped_column(BigInteger)
    present: Mapped[int] = mapped_column(BigInteger)
    rejected: Mapped[int] = mapped_column(BigInteger)
    completed: Mapped[bool] = mapped_column(Boolean)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class ImportReject(Base):
    __tablename__ = "import_rejects"

    file_sm3: Mapped[str] = mapped_column(ForeignKey("import_progress.file_sm3"), primary_key=True)
    line_number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    error: Mapped[str] = mapped_column(String(1000))
