"""Database engines and sessions for the node: SQLite by default, PostgreSQL in production.

* Statement parameters are never put into exception messages (``hide_parameters=True``): a failed INSERT of a
  license must not carry the document into a log.
* SQLite: WAL journal, ``synchronous=FULL`` (a committed license survives power loss), foreign keys on, and
  every transaction ``BEGIN IMMEDIATE`` (SQLAlchemy's documented recipe for taking over pysqlite's
  transaction handling). A request reads, then writes (an audit entry at least); taking the write lock at
  the start means two such transactions queue behind ``busy_timeout`` instead of failing when one upgrades
  its read lock. PostgreSQL uses row locks (``SELECT ... FOR UPDATE``) where the node needs them.
* Work that only reads (authenticating a request's credential; the proof, voucher and verification routes,
  which wait on the ledger while they read) uses :func:`make_read_sessionmaker`, whose SQLite transactions begin
  DEFERRED: otherwise every authenticated request would queue on the write lock.
* One session per request or per unit of work; :func:`unit_of_work` commits on success and rolls back on any
  exception, so a license, its version, its outbox entry and its audit event commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "licledger_read_only"
"""Execution option marking an engine whose transactions only read (see :func:`make_read_sessionmaker`)."""


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the node's pragmas (SQLite) or pool settings (PostgreSQL)."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            hide_parameters=True,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy, not pysqlite, begins transactions
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN DEFERRED")  # a WAL reader neither waits for nor blocks the writer
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        return sa.create_engine(url, hide_parameters=True, pool_pre_ping=True, pool_size=10, max_overflow=10)
    raise ValueError("database URL must be sqlite:///... or postgresql+psycopg://...")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (responses are built after the commit)."""
    return sessionmaker(engine, expire_on_commit=False)


def make_read_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for work that only reads (authenticating a credential, a lookup before the real unit of work).

    On SQLite their transactions begin DEFERRED instead of IMMEDIATE, so they never take or wait for the write
    lock. Never write in one: a deferred transaction upgrades its lock late and can fail with "database is
    locked" where an IMMEDIATE one would have queued. PostgreSQL is unaffected.
    """
    return sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits once at the end, or not at all if anything raises."""
    with factory() as session, session.begin():
        yield session
