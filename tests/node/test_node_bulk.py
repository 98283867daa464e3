"""``node.bulk`` on a real PostgreSQL database: from ``COPY_MIN_ROWS`` rows on, inserts go by binary ``COPY``
with ids taken from the tables' sequences. The rows, their ids and the references between them must be exactly
what the ``INSERT`` path stores; errors must be SQLAlchemy's, parameters hidden; a fault rolls the whole unit
of work back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from nodekit import KEK, NodeUnderTest, fresh_postgres_database, physicians, start_node

from core import canonical
from core.codes import LicenseId
from node import bulk
from node.db.models import AuditEntry, Base, License
from node.importer import run_import

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    os.environ["LICLEDGER_KEK"] = KEK
    with fresh_postgres_database() as url:
        n = start_node(tmp_path_factory.mktemp("bulk") / "node", database_url=url)
        yield n
        n.client.close()
        n.ctx.close()


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The (table, rows) of every ``COPY`` made while the test runs."""
    made: list[tuple[str, int]] = []
    real = bulk._copy

    def spy(connection: Any, table: sa.Table, rows: Any, *, with_ids: bool) -> list[int]:
        made.append((table.name, len(rows)))
        return real(connection, table, rows, with_ids=with_ids)

    monkeypatch.setattr(bulk, "_copy", spy)
    return made


def _write(tmp_path: Path, name: str, docs: list[dict[str, Any]]) -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(canonical.encode(d) for d in docs) + b"\n")
    return path


# Every reference of every stored license, checked against the others and against the stored document: a row
# given another row's id (the ids are written by COPY, not by the database's defaults) breaks one of these.
_MISMATCHES = """
SELECT count(*) FROM licenses l
JOIN license_versions v ON v.license_id = l.id
JOIN license_events e ON e.id = v.event_id
JOIN outbox o ON o.version_id = v.id AND o.kind = 'leaf'
WHERE e.license_id <> l.id OR o.license_id <> l.id OR o.event_id <> e.id OR e.version <> v.version
   OR v.full_id NOT LIKE l.base_id || '%%'
   OR o.dedup_key <> 'leaf:' || l.base_id || ':' || v.version
   OR convert_from(v.document, 'UTF8')::jsonb ->> 'license_id' <> v.full_id
"""


def _consistent(n: NodeUnderTest) -> tuple[int, int]:
    """(licenses with one version, one event and one leaf each, mismatching references)."""
    with n.ctx.engine.connect() as conn:
        whole = conn.execute(
            sa.text(
                "SELECT count(*) FROM licenses l WHERE"
                " (SELECT count(*) FROM license_versions v WHERE v.license_id = l.id) = 1 AND"
                " (SELECT count(*) FROM license_events e WHERE e.license_id = l.id) = 1 AND"
                " (SELECT count(*) FROM outbox o WHERE o.license_id = l.id AND o.kind = 'leaf') = 1"
            )
        ).scalar_one()
        return int(whole), int(conn.exec_driver_sql(_MISMATCHES).scalar_one())


def test_an_import_chunk_goes_by_copy_and_every_reference_holds(
    pg: NodeUnderTest, tmp_path: Path, copies: list[tuple[str, int]]
) -> None:
    docs = physicians(bulk.COPY_MIN_ROWS + 36, seed=951, start=5000) + physicians(20, seed=951, start=6000)
    before = pg.count("licenses")
    result = run_import(pg.ctx, _write(tmp_path, "bulk.jsonl", docs), chunk_lines=bulk.COPY_MIN_ROWS + 36)
    assert (result.imported, result.rejected) == (len(docs), 0)
    # the first chunk (100 lines) by COPY, the second (20 lines) by INSERT
    assert {t for t, _ in copies} == {
        "licenses",
        "license_events",
        "license_versions",
        "outbox",
        "license_institutions",
    }
    assert all(rows >= bulk.COPY_MIN_ROWS for _, rows in copies)
    assert pg.count("licenses") == before + len(docs)
    assert _consistent(pg) == (pg.count("licenses"), 0)
    # the sequences moved past the ids COPY wrote: the next license gets fresh ids through the column defaults
    extra = physicians(1, seed=952, start=7000)[0]
    assert pg.issue(extra).status_code == 201
    assert _consistent(pg) == (pg.count("licenses"), 0)


def test_the_batch_route_stores_the_same_by_copy_as_by_insert(pg: NodeUnderTest, copies: list[tuple[str, int]]) -> None:
    h = pg.auth("operator")
    for count, start in ((bulk.COPY_MIN_ROWS - 1, 8000), (bulk.COPY_MIN_ROWS, 9000)):
        copies.clear()
        docs = physicians(count, seed=953, start=start)
        r = pg.client.post("/v1/licenses/batch", content=canonical.encode({"documents": docs}), headers=h)
        assert r.status_code == 201, r.text
        assert [x["license_id"] for x in r.json()["licenses"]] == [d["license_id"] for d in docs]
        # the licenses by COPY from COPY_MIN_ROWS on (a physician may name several institutions: their rows can
        # reach the threshold before the licenses do)
        assert ("licenses", count) in copies if count >= bulk.COPY_MIN_ROWS else "licenses" not in dict(copies)
        for doc in docs[:: max(1, count // 8)]:
            view = pg.client.get(f"/v1/licenses/{doc['license_id']}", headers=h)
            assert view.status_code == 200 and view.json()["document"] == doc
        with pg.ctx.engine.connect() as conn:  # one audit entry per license issued, by COPY too
            audited = conn.execute(
                sa.select(sa.func.count())
                .select_from(AuditEntry)
                .where(
                    AuditEntry.action == "license.issue",
                    AuditEntry.object.in_([LicenseId.parse(d["license_id"]).base for d in docs]),
                )
            ).scalar_one()
        assert audited == count
    assert _consistent(pg) == (pg.count("licenses"), 0)


def _audit_rows(count: int, actor: str = "bulk-test") -> list[dict[str, Any]]:
    return [
        {
            "occurred_ms": 1,
            "actor": actor,
            "role": "operator",
            "action": "license.issue",
            "object": f"X{i}",
            "personal_data": False,
            "detail": "{}",
            "request_id": "r",
        }
        for i in range(count)
    ]


def test_an_over_long_value_is_refused_by_copy_and_nothing_is_stored(pg: NodeUnderTest) -> None:
    rows = _audit_rows(bulk.COPY_MIN_ROWS + 6)
    rows[-1]["actor"] = "x" * 65  # audit_log.actor is varchar(64)
    before = pg.count("audit_log")
    with pytest.raises(sa.exc.DataError) as caught, pg.ctx.sessions() as session, session.begin():
        bulk.insert(session, Base.metadata.tables["audit_log"], rows)
    assert "too long" in str(caught.value) and "COPY" in str(caught.value)
    assert "x" * 65 not in str(caught.value)  # parameters hidden
    assert pg.count("audit_log") == before


def test_a_duplicate_key_in_a_copy_is_an_integrity_error(pg: NodeUnderTest) -> None:
    with pg.ctx.engine.connect() as conn:
        taken = conn.execute(sa.select(License.base_id).limit(1)).scalar_one()
    rows = [
        {
            "base_id": f"BULK-TEST-{i:04d}" if i else taken,
            "kind": "physician",
            "current_version": 1,
            "status": "active",
            "status_seq": 0,
            "created_ms": 1,
            "updated_ms": 1,
            "holder_hash": None,
            "institution_uscc": "X",
            "city_code": "440100",
            "practice_category": None,
        }
        for i in range(bulk.COPY_MIN_ROWS)
    ]
    before = pg.count("licenses")
    with pytest.raises(sa.exc.IntegrityError, match="base_id"), pg.ctx.sessions() as session, session.begin():
        bulk.insert(session, Base.metadata.tables["licenses"], rows, key="base_id")
    assert pg.count("licenses") == before


def test_a_fault_during_a_copied_chunk_rolls_the_whole_chunk_back(pg: NodeUnderTest, tmp_path: Path) -> None:
    tables = ("licenses", "license_versions", "license_events", "outbox", "license_institutions", "audit_log")
    before = {t: pg.count(t) for t in tables}
    path = _write(tmp_path, "fault.jsonl", physicians(bulk.COPY_MIN_ROWS, seed=954, start=10_000))
    with pg.ctx.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION bulk_fault() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$"
            " LANGUAGE plpgsql"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER bulk_fault BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION bulk_fault()"
        )
    try:
        with pytest.raises(sa.exc.DBAPIError, match="injected fault"):
            run_import(pg.ctx, path, chunk_lines=bulk.COPY_MIN_ROWS)
    finally:
        with pg.ctx.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER bulk_fault ON outbox")
            conn.exec_driver_sql("DROP FUNCTION bulk_fault()")
    assert {t: pg.count(t) for t in tables} == before
    again = run_import(pg.ctx, path, chunk_lines=bulk.COPY_MIN_ROWS)  # the chunk is redone in full
    assert again.imported == bulk.COPY_MIN_ROWS
    assert _consistent(pg) == (pg.count("licenses"), 0)


def test_sqlite_never_copies(node: NodeUnderTest, tmp_path: Path, copies: list[tuple[str, int]]) -> None:
    docs = physicians(bulk.COPY_MIN_ROWS + 1, seed=955, start=11_000)
    assert run_import(node.ctx, _write(tmp_path, "s.jsonl", docs)).imported == len(docs)
    assert copies == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_one_of_selects_by_one_parameter_on_both_databases(
    backend: str, node: NodeUnderTest, pg: NodeUnderTest, tmp_path: Path
) -> None:
    n = pg if backend == "postgres" else node
    docs = physicians(6, seed=957, start=12_000)
    assert run_import(n.ctx, _write(tmp_path, f"one-of-{backend}.jsonl", docs)).imported == 6
    bases = [LicenseId.parse(str(d["license_id"])).base for d in docs]
    # an odd name in a string value (quotes, a backslash, CJK) travels as data, never as SQL or broken JSON
    wanted = [*bases[:3], "not-a-license", 'x" OR 1=1 --', "\\u0000中"]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(n.ctx.engine, "before_cursor_execute", seen)
    try:
        with n.ctx.sessions() as session:
            found = set(
                session.scalars(sa.select(License.base_id).where(bulk.one_of(session, License.base_id, wanted)))
            )
            ids = list(session.scalars(sa.select(License.id).where(License.base_id.in_(bases[3:]))))
            by_id = set(session.scalars(sa.select(License.base_id).where(bulk.one_of(session, License.id, ids))))
            nothing = list(session.scalars(sa.select(License.id).where(bulk.one_of(session, License.id, []))))
            nothing += list(session.scalars(sa.select(License.id).where(bulk.one_of(session, License.base_id, []))))
            # a value longer than the column never matches a stored value by a prefix
            longer = [bases[0] + "X" * 200]
            nothing += list(session.scalars(sa.select(License.id).where(bulk.one_of(session, License.base_id, longer))))
            with pytest.raises(TypeError, match="integers or strings"):
                bulk.one_of(session, License.id, [1.5])  # type: ignore[arg-type]
    finally:
        sa.event.remove(n.ctx.engine, "before_cursor_execute", seen)
    assert found == set(bases[:3])
    assert by_id == set(bases[3:])
    assert nothing == []
    # one parameter for the whole list, whatever its length: no IN list of placeholders
    one_of_statements = [s for s in statements if "json_each" in s or "ANY" in s]
    assert len(one_of_statements) == 5, statements
