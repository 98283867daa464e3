"""Many rows in one statement, inside the caller's transaction: what an import chunk, a batch of licenses and an
anchoring batch write.

* PostgreSQL, from :data:`COPY_MIN_ROWS` rows on: binary ``COPY ... FROM STDIN`` (:func:`_copy`), the ids
  taken first from the table's sequence with one ``nextval`` per row. Measured on the import path (5,000
  licenses per transaction): 90 instead of 103 µs of server CPU and 12 instead of 25 µs of this process's CPU
  per license.
* PostgreSQL, fewer rows (one license from the API): one ``INSERT ... SELECT * FROM unnest(%b::t1[], ...)``
  (or ``UPDATE ... FROM unnest``) with one array parameter per column, sent in psycopg's binary format (its text
  format escapes every element), ids by ``RETURNING``: one round trip where ``COPY`` needs two or three. A
  multi-row ``VALUES`` list of thousands of placeholders costs psycopg more to parse than the server to run,
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

Reading many rows by key, :func:`one_of` is the condition "``column`` is one of these values" as one bound
parameter, on PostgreSQL ``= ANY(array)``, on SQLite ``IN (SELECT value FROM json_each(...))`` (an index search
per value in both): an ``IN`` list of thousands of placeholders is a new statement text for every length, and
SQLAlchemy renders each placeholder. Measured for the import's check of 5,000 base ids, this process's CPU
per id: 6.5-12 µs with ``IN``, 2.3 µs with ``= ANY`` on PostgreSQL; 2.5 µs in lists of 500, 1.3 µs with
``json_each`` on SQLite.

Table and column names come from the models (:mod:`node.db.models`), never from input; values are always bound.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.types.string import BytesBinaryDumper
from sqlalchemy.dialects import postgresql
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


COPY_MIN_ROWS = 64
"""From this many rows on, PostgreSQL gets them by ``COPY ... FROM STDIN (FORMAT BINARY)``."""

_COPY_TYPES: dict[type[Any], str] = {
    sa.BigInteger: "int8",
    sa.Integer: "int4",
    sa.String: "text",
    sa.LargeBinary: "bytea",
    sa.Boolean: "bool",
}
_sequences: dict[str, str] = {}
"""Table name -> the sequence of its ``id`` column (``SERIAL``: the same name in every node's schema)."""


def _copy_type(column: sa.Column[Any]) -> str:
    for kind, name in _COPY_TYPES.items():  # BigInteger before Integer: it is a subclass
        if isinstance(column.type, kind):
            return name
    raise TypeError(f"{column.table.name}.{column.name}: no COPY type for {column.type!r}")


def _copy(connection: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], *, with_ids: bool) -> list[int]:
    """``rows`` by binary ``COPY`` (PostgreSQL); with ``with_ids`` the ids are taken from the table's sequence
    first (``nextval``, as the column default would) and written with the rows, so they come back in the order
    of ``rows`` without a ``RETURNING``.

    COPY writes rows in batches (``heap_multi_insert``: one WAL record per page rather than per row) and reads
    each value once, where ``INSERT ... SELECT * FROM unnest(...)`` first expands every array parameter: about a
    third less server time per row for a license version, measured. Column types come from the models; a
    ``varchar(n)`` column refuses an over-long value as an ``INSERT`` does, and constraint and trigger errors are
    raised as SQLAlchemy's (``IntegrityError`` ...), parameters hidden, as ``exec_driver_sql`` would.
    """
    columns = list(rows[0])
    raw = connection.connection.driver_connection
    assert isinstance(raw, psycopg.Connection), "COPY needs the psycopg driver"
    quote = connection.dialect.identifier_preparer.quote
    ids: list[int] = []
    statement = ""
    try:
        with raw.cursor() as cursor:
            if with_ids:
                sequence = _sequences.get(table.name)
                if sequence is None:
                    statement = "SELECT pg_get_serial_sequence(%s, 'id')"
                    found = cursor.execute(statement, (table.name,)).fetchone()
                    if found is None or found[0] is None:
                        raise TypeError(f"{table.name}.id has no sequence")
                    sequence = _sequences[table.name] = str(found[0])
                statement = "SELECT nextval(%s::regclass) FROM generate_series(1, %s)"
                ids = [i for (i,) in cursor.execute(statement, (sequence, len(rows))).fetchall()]
            names = ["id", *columns] if with_ids else columns
            # By type name, COPY finds the last dumper registered for bytea: psycopg's for its DB-API ``Binary``
            # wrapper, in Python, which tests each value for the wrapper. This cursor's own adapters (a copy of the
            # connection's) get psycopg's dumper of plain bytes back, its C version where psycopg has one.
            cursor.adapters.register_dumper(bytes, BytesBinaryDumper)
            statement = f"COPY {quote(table.name)} ({', '.join(quote(c) for c in names)}) FROM STDIN (FORMAT BINARY)"
            with cursor.copy(statement) as copy:
                copy.set_types([_copy_type(table.c[c]) for c in names])
                if with_ids:
                    for i, row in zip(ids, rows, strict=True):
                        copy.write_row((i, *[row[c] for c in columns]))
                else:
                    for row in rows:
                        copy.write_row([row[c] for c in columns])
    except psycopg.Error as exc:  # as SQLAlchemy wraps a driver error (IntegrityError, DataError ...)
        wrapped = sa.exc.DBAPIError.instance(statement, None, exc, psycopg.Error, hide_parameters=True)
        assert isinstance(wrapped, sa.exc.DBAPIError)
        raise wrapped from exc
    return ids


def insert(session: Session, table: sa.Table, rows: Sequence[dict[str, Any]], *, key: str | None = None) -> list[int]:
    """Insert ``rows`` (all with the same keys) into ``table``. With ``key`` (a unique column among the rows'
    keys), the new ``id`` of each row, in the order of ``rows`` (matched on ``key``: ``RETURNING`` order is not
    guaranteed); else ``[]``."""
    if not rows:
        return []
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        if len(rows) >= COPY_MIN_ROWS:
            return _copy(connection, table, rows, with_ids=key is not None)
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
    driver does not report it).

    On PostgreSQL the statement also bounds ``id`` by the lowest and highest of ``ids``. That changes no row, but
    it bounds every plan by the ids' range: joined with the array of ids alone, the planner could walk the table's
    whole primary key (a merge join) or scan the table (a hash join) when its statistics made the rows look
    alike, as they do for outbox entries analyzed while all were pending (migration 0005)."""
    connection = session.connection()
    quote = connection.dialect.identifier_preparer.quote
    fixed = list(values)
    varying = list(per_row)
    if connection.dialect.name == "postgresql":
        sets = [f"{quote(c)} = %s" for c in fixed] + [f"{quote(c)} = u.{quote(c)}" for c in varying]
        conditions = [f"{quote(table.name)}.{quote(c)} = %s" for c in where]
        conditions.append(f"{quote(table.name)}.id BETWEEN %s AND %s")
        sql = (
            f"UPDATE {quote(table.name)} SET {', '.join(sets)} "  # noqa: S608
            f"FROM {_unnest(connection, table, ['id', *varying])} "
            f"WHERE {quote(table.name)}.id = u.id" + "".join(f" AND {c}" for c in conditions)
        )
        bounds = (min(ids), max(ids)) if ids else (0, -1)
        params = (*values.values(), list(ids), *(list(per_row[c]) for c in varying), *where.values(), *bounds)
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


def one_of(
    session: Session,
    column: sa.orm.QueryableAttribute[Any] | sa.ColumnElement[Any],
    values: Sequence[int] | Sequence[str],
) -> sa.ColumnElement[bool]:
    """``column`` is one of ``values`` (integers or strings), with all of them in one bound parameter (module
    docstring). An empty ``values`` selects nothing."""
    items = list(values)
    if any(not isinstance(v, int | str) or isinstance(v, bool) for v in items):
        raise TypeError("one_of takes integers or strings")
    if session.get_bind().dialect.name == "postgresql":
        # text[], never varchar(n)[]: a cast to varchar(n) truncates silently, and a truncated value could match
        element = column.type if isinstance(column.type, sa.Integer) else sa.Text()
        return column == sa.any_(sa.bindparam(None, items, type_=postgresql.ARRAY(element), unique=True))
    table = sa.func.json_each(sa.bindparam(None, json.dumps(items), type_=sa.Text(), unique=True))
    return column.in_(sa.select(sa.column("value")).select_from(table))
