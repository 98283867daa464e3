"""Many rows in one statement, inside the caller's transaction: what an import chunk, a batch of licenses and an
anchoring batch write.

* PostgreSQL: one ``INSERT ... SELECT * FROM unnest(%b::t1[], %b::t2[], ...)`` (or ``UPDATE ... FROM unnest``)
  with one array parameter per column, sent in psycopg's binary format (its text format escapes every element).
  A multi-row ``VALUES`` list of thousands of placeholders costs psycopg more to parse than the server to run,
  and psycopg's executemany sends one statement per row. Strings are cast to ``text[]``, never ``varchar(n)[]``
  (an explicit cast to ``varchar(n)`` truncates silently; the assignment to the column then refuses an
  over-long value as usual).
* SQLite: the driver's ``executemany`` of one ``INSERT``, the rows as tuples (SQLAlchemy's per-row parameter
  processing cost more than SQLite's insert). Where ids are asked for, they are read back from the rowid range
  the statement filled (``last_insert_rowid()``; SQLite gives each new row the largest rowid plus one, and the
  transaction holds the database's write lock from its first insert) and matched on ``key`` like the
  ``RETURNING`` rows elsewhere, so a range that did not hold exactly these rows is an error, never a wrong id.
  Only for tables whose columns are integers, strings, bytes and booleans (every table written here; others go
  through SQLAlchemy's executemany).

Table and column names come from the models (:mod:`node.db.models`), never from input; values are always bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session


def _array_type(connection: Connection, column: sa.Column[Any]) -> str:
    compiled = column.type.compile(dialect=connection.dialect).split("(")[0].strip().upper()
    return "TEXT" if compiled in ("VARCHAR", "CHAR", "TEXT") else compiled


def _unnest(connection: Connection, table: sa.Table, columns: Sequence[str]) -> str:
    quote = connection.dialect.identifier_preparer.quote
    # %b: psycopg sends the arrays in the binary format (the text format escapes every element, which cost
    # more than the statement)
    arrays = ", ".join(f"%b::{_array_type(connection, table.c[c])}[]" for c in columns)
    return f"unnest({arrays}) AS u({', '.join(quote(c) for c in columns)})"


_PLAIN_TYPES = (sa.Integer, sa.String, sa.LargeBinary, sa.Boolean)
_plain_tables: dict[str, bool] = {}


def _plain(table: sa.Table) -> bool:
    """Whether every column of ``table`` holds values the driver binds as they are (no SQLAlchemy type
    processing): integers, strings (and text), bytes, booleans."""
    plain = _plain_tables.get(table.name)
    if plain is None:
        plain = _plain_tables[table.name] = all(isinstance(c.type, _PLAIN_TYPES) for c in table.columns)
    return plain


def insert(session: Session, table: sa.Table, rows: Sequence[dict[str, Any]], *, key: str | None = None) -> list[int]:
    """Insert ``rows`` (all with the same keys) into ``table``. With ``key`` (a unique column among the rows'
    keys), the new ``id`` of each row, in the order of ``rows`` (matched on ``key``: ``RETURNING`` order is not
    guaranteed); else ``[]``."""
    if not rows:
        return []
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        columns = list(rows[0])
        quote = connection.dialect.identifier_preparer.quote
        names = ", ".join(quote(c) for c in columns)
        sql = f"INSERT INTO {quote(table.name)} ({names}) SELECT * FROM {_unnest(connection, table, columns)}"  # noqa: S608
        if key is not None:
            sql += f" RETURNING id, {quote(key)}"
        result = connection.exec_driver_sql(sql, tuple([row[c] for row in rows] for c in columns))
        if key is None:
            return []
        pairs = result.all()
    elif connection.dialect.name == "sqlite" and _plain(table):
        columns = list(rows[0])
        quote = connection.dialect.identifier_preparer.quote
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        connection.exec_driver_sql(sql, [tuple([row[c] for c in columns]) for row in rows])
        if key is None:
            return []
        last = int(connection.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
        pairs = list(
            connection.exec_driver_sql(
                f"SELECT id, {quote(key)} FROM {quote(table.name)} WHERE id BETWEEN ? AND ?",  # noqa: S608
                (last - len(rows) + 1, last),
            ).all()
        )
    elif key is not None:
        pairs = list(session.execute(sa.insert(table).returning(table.c.id, table.c[key]), list(rows)).all())
    else:
        session.execute(sa.insert(table), list(rows))
        return []
    ids = {k: i for i, k in pairs}
    if len(ids) != len(rows):
        raise AssertionError(f"{table.name}: {len(rows)} rows inserted, {len(ids)} ids returned")
    return [ids[row[key]] for row in rows]


def update_by_id(
    session: Session,
    table: sa.Table,
    values: dict[str, Any],
    per_row: dict[str, Sequence[Any]],
    ids: Sequence[int],
    *,
    where: dict[str, Any],
) -> int:
    """``UPDATE table SET <values>, <per_row[c][i]> WHERE id = ids[i] AND <where>`` for every ``i``, in one
    statement on PostgreSQL (an executemany of the driver on SQLite); returns the rows changed (``-1`` where the
    driver does not report it)."""
    connection = session.connection()
    quote = connection.dialect.identifier_preparer.quote
    fixed = list(values)
    varying = list(per_row)
    if connection.dialect.name == "postgresql":
        sets = [f"{quote(c)} = %s" for c in fixed] + [f"{quote(c)} = u.{quote(c)}" for c in varying]
        conditions = [f"{quote(table.name)}.{quote(c)} = %s" for c in where]
        sql = (
            f"UPDATE {quote(table.name)} SET {', '.join(sets)} "  # noqa: S608
            f"FROM {_unnest(connection, table, ['id', *varying])} "
            f"WHERE {quote(table.name)}.id = u.id" + "".join(f" AND {c}" for c in conditions)
        )
        params = (*values.values(), list(ids), *(list(per_row[c]) for c in varying), *where.values())
        count: int = connection.exec_driver_sql(sql, params).rowcount
        return count
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    sets = [f"{quote(c)} = {mark}" for c in [*fixed, *varying]]
    conditions = [f"{quote(c)} = {mark}" for c in where]
    sql = f"UPDATE {quote(table.name)} SET {', '.join(sets)} WHERE id = {mark}" + "".join(  # noqa: S608
        f" AND {c}" for c in conditions
    )
    rows = [(*values.values(), *(per_row[c][i] for c in varying), oid, *where.values()) for i, oid in enumerate(ids)]
    result = connection.exec_driver_sql(sql, rows)
    if not connection.dialect.supports_sane_multi_rowcount:
        return -1
    changed: int = result.rowcount
    return changed
