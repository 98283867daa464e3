"""Run the node's Alembic migrations (``upgrade head``) against an engine, in one transaction.

On PostgreSQL a transaction-scoped advisory lock serialises two processes migrating the same database at
start; on SQLite ``BEGIN IMMEDIATE`` (:mod:`node.db.engine`) does the same.

SQLite alters a table by rebuilding it (Alembic's batch mode: create a copy, copy the rows, ``DROP`` the table,
rename the copy). With foreign keys enforced, the ``DROP`` fails as soon as another table's rows reference the
table (``anchor_receipts`` -> ``outbox``: migration 0002 on any node that has anchored something). So, as
SQLite's own procedure for schema changes says (https://www.sqlite.org/lang_altertable.html#otheralter),
enforcement is switched off for the migration (it cannot be switched inside a transaction) and every reference
is checked with ``PRAGMA foreign_key_check`` before the commit: a violation rolls the whole migration back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_ADVISORY_LOCK = 0x6C69636C  # "licl"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema (``alembic upgrade head``)."""
    _migrate(engine, command.upgrade, "head")


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to schema ``revision`` (``alembic downgrade``; tests build older databases)."""
    _migrate(engine, command.downgrade, revision)


def _sqlite_pragma(conn: sa.Connection, statement: str) -> None:
    """``statement`` on the driver's connection, outside any transaction SQLAlchemy would begin."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def _migrate(engine: Engine, action: Callable[[Config, str], None], revision: str) -> None:
    config = alembic_config()
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            _sqlite_pragma(conn, "PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
                config.attributes["connection"] = conn
                action(config, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"the migration would leave {len(broken)} broken references: {broken[:5]}")
        finally:
            if sqlite:
                _sqlite_pragma(conn, "PRAGMA foreign_keys=ON")


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (``None`` before the first migration)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the node has no migrations")
    return head
