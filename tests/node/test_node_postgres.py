"""The core flow on a real PostgreSQL database (a fresh ``licledger_test_<random>`` per test session), plus
the migrations on both engines: ``upgrade head`` yields exactly the models' schema."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from nodekit import KEK, NodeUnderTest, fresh_postgres_database, nurses, physicians, start_node
from test_node_outbox import _anchor, _build, _record
from test_node_outbox import test_backlog_is_what_the_pass_check_needs as backlog
from test_node_outbox import test_batch_seq_reuse_gap_wrong_root_and_double_batching_are_refused as refusals

from core import canonical
from node import outbox
from node.db.engine import make_engine
from node.db.migrate import current_revision, head_revision, upgrade
from node.db.models import AnchorBatch, Base, Outbox
from node.errors import ConflictError
from node.importer import run_import

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    import os

    os.environ["LICLEDGER_KEK"] = KEK
    n = start_node(
        tmp_path_factory.mktemp("pg") / "node", database_url=postgres_url, public_rate_per_second=0, public_rate_burst=0
    )
    assert n.ctx.engine.dialect.name == "postgresql"
    yield n
    n.client.close()
    n.ctx.close()


def _schema_diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        upgrade(engine)  # idempotent
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata))
    finally:
        engine.dispose()


def test_migrations_match_the_models_on_sqlite(tmp_path: Path) -> None:
    assert _schema_diff(f"sqlite:///{tmp_path / 'm.db'}") == []


def test_migrations_match_the_models_on_postgres(pg: NodeUnderTest, postgres_url: str) -> None:
    assert _schema_diff(postgres_url) == []


def test_core_flow_on_postgres(pg: NodeUnderTest) -> None:
    h = pg.auth("operator")
    doc = physicians(1, seed=901)[0]
    issued = pg.issue(doc)
    assert issued.status_code == 201, issued.text
    base = issued.json()["base_id"]
    assert pg.issue(doc).status_code == 409
    r = pg.client.post(
        f"/v1/licenses/{base}/events", json={"type": "change", "changes": {"holder": {"name": "李四"}}}, headers=h
    )
    assert r.status_code == 201 and r.json()["version"] == doc["version"] + 1
    assert (
        pg.client.post(f"/v1/licenses/{base}/events", json={"type": "revoke", "reason": "x"}, headers=h).status_code
        == 201
    )
    history = pg.client.get(f"/v1/licenses/{base}/history", headers=pg.auth("auditor")).json()
    assert [e["type"] for e in history["events"]] == ["issue", "change", "revoke"]
    view = pg.client.get(f"/v1/licenses/{base}", headers=pg.auth("auditor")).json()
    assert view["document"]["holder"]["name"] == "李四" and view["license_status"] == "revoked"
    token = issued.json()["holder_token"]
    mine = pg.client.get("/v1/holder/licenses", headers={"Authorization": f"Bearer {token}"}).json()["licenses"]
    assert [m["base_id"] for m in mine] == [base]
    public = pg.client.get(f"/v1/public/licenses/{base}").json()
    assert doc["holder"]["citizen_id"] not in str(public)
    stats = pg.client.get("/v1/stats", headers=h).json()
    assert stats["by_status"].get("revoked", 0) >= 1
    staff = pg.client.get(f"/v1/institutions/{doc['practice']['primary_institution']['uscc']}/staff", headers=h)
    assert base in str(staff.json())
    entries = pg.client.get(f"/v1/audit?object={view['license_id']}", headers=h).json()["entries"]
    assert [e["action"] for e in entries] == ["license.read"]


def test_crash_atomicity_on_postgres(pg: NodeUnderTest) -> None:
    tables = ("licenses", "license_versions", "license_events", "outbox", "audit_log")
    before = {t: pg.count(t) for t in tables}
    with pg.ctx.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION fault() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$ "
            "LANGUAGE plpgsql"
        )
        conn.exec_driver_sql("CREATE TRIGGER fault BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION fault()")
    try:
        r = pg.issue(nurses(1, seed=902)[0])
        assert r.status_code == 500
    finally:
        with pg.ctx.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER fault ON outbox")
            conn.exec_driver_sql("DROP FUNCTION fault()")
    assert {t: pg.count(t) for t in tables} == before


def test_concurrent_events_on_one_license_get_contiguous_versions(pg: NodeUnderTest) -> None:
    doc = nurses(1, seed=903)[0]
    base = pg.issue(doc).json()["base_id"]
    h = pg.auth("operator")
    results: list[int] = []

    def change(i: int) -> None:
        body = {"type": "renew", "valid_from": f"2025-01-{i + 1:02d}", "valid_to": "2030-01-01"}
        results.append(pg.client.post(f"/v1/licenses/{base}/events", json=body, headers=h).status_code)

    threads = [threading.Thread(target=change, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [201] * 8
    history = pg.client.get(f"/v1/licenses/{base}/history", headers=h).json()
    assert [v["version"] for v in history["versions"]] == list(range(doc["version"], doc["version"] + 9))


def test_concurrent_issuing_of_one_license_stores_it_once(pg: NodeUnderTest) -> None:
    doc = physicians(1, seed=904)[0]
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(pg.issue(doc).status_code)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201, 409, 409, 409]
    with pg.ctx.engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM license_versions WHERE full_id = :i"), {"i": doc["license_id"]})
        assert n.scalar_one() == 1


def test_import_on_postgres(pg: NodeUnderTest, tmp_path: Path) -> None:
    docs = physicians(60, seed=905, start=1000)
    path = tmp_path / "pg.jsonl"
    path.write_bytes(b"\n".join(canonical.encode(d) for d in docs) + b"\n")
    before = pg.count("licenses")
    first = run_import(pg.ctx, path, chunk_lines=16)
    again = run_import(pg.ctx, path, chunk_lines=16)
    assert (first.imported, again.imported, again.present) == (60, 60, 0)  # the re-run resumes at the end
    assert pg.count("licenses") == before + 60


def test_parallel_import_on_postgres(pg: NodeUnderTest, tmp_path: Path) -> None:
    docs = physicians(90, seed=906, start=2000) + nurses(60, seed=906, start=2000)
    path = tmp_path / "pg-parallel.jsonl"
    path.write_bytes(b"\n".join(canonical.encode(d) for d in docs) + b"\n")
    before = pg.count("licenses"), pg.count("outbox")
    result = run_import(pg.ctx, path, chunk_lines=20, workers=2)
    assert (result.imported, result.present, result.rejected) == (150, 0, 0)
    assert (pg.count("licenses"), pg.count("outbox")) == (before[0] + 150, before[1] + 150)


def test_batch_route_on_postgres(pg: NodeUnderTest) -> None:
    docs = physicians(40, seed=907, start=3000)
    h = pg.auth("operator")
    before = pg.count("licenses")
    bad = pg.client.post("/v1/licenses/batch", content=canonical.encode({"documents": [*docs, docs[5]]}), headers=h)
    assert bad.status_code == 422 and "documents[40].license_id" in bad.json()["errors"]
    assert pg.count("licenses") == before
    r = pg.client.post("/v1/licenses/batch", content=canonical.encode({"documents": docs}), headers=h)
    assert r.status_code == 201, r.text
    assert [x["license_id"] for x in r.json()["licenses"]] == [d["license_id"] for d in docs]
    assert pg.count("licenses") == before + 40
    again = pg.client.post("/v1/licenses/batch", content=canonical.encode({"documents": docs[:3]}), headers=h)
    assert again.status_code == 409


def test_record_batch_refuses_entries_another_worker_batched_meanwhile(tmp_path: Path) -> None:
    """``record_batch`` reads the entries without locking them; its ``UPDATE ... WHERE state = 'pending'`` is the
    lock. Another worker that batches one of the entries and commits between that read and that update (a second
    connection, run from a hook just before the update is sent) leaves the update one row short: the batch is
    refused and nothing of it is stored, the other worker's batch stands."""
    with fresh_postgres_database() as url:
        n = start_node(tmp_path / "node", database_url=url)
        try:
            for doc in nurses(3, seed=94):
                assert n.issue(doc).status_code == 201
            seq, leaves, root, envelope = _build(n)
            taken = leaves[1].outbox_id
            raced: list[str] = []

            def other_worker(_conn: object, _cursor: object, statement: str, *_: object) -> None:
                if statement.startswith("UPDATE outbox") and not raced:
                    raced.append(statement)
                    with psycopg.connect(url.replace("+psycopg", "")) as other:  # commits on leaving
                        other.execute(
                            "INSERT INTO anchor_batches (batch_seq, root_hash, leaf_count, tx_id, envelope, state,"
                            " created_ms) VALUES (99, %s, 1, %s, %s, 'built', 0)",
                            (leaves[1].leaf_hash, "cd" * 32, b"{}"),
                        )
                        other.execute(
                            "UPDATE outbox SET state = 'batched', batch_seq = 99, leaf_index = 0, tx_id = %s"
                            " WHERE id = %s AND state = 'pending'",
                            ("cd" * 32, taken),
                        )

            sa.event.listen(n.ctx.engine, "before_cursor_execute", other_worker)
            try:
                with pytest.raises(ConflictError, match="batched by another worker"):
                    _record(n, seq, leaves, root, envelope)
            finally:
                sa.event.remove(n.ctx.engine, "before_cursor_execute", other_worker)
            assert raced
            with n.ctx.sessions() as session:
                assert session.get(AnchorBatch, seq) is None
                states = dict(
                    session.execute(
                        sa.select(Outbox.id, Outbox.state).where(Outbox.id.in_([leaf.outbox_id for leaf in leaves]))
                    ).all()
                )
            assert states == {leaf.outbox_id: ("batched" if leaf.outbox_id == taken else "pending") for leaf in leaves}
        finally:
            n.client.close()
            n.ctx.close()


def test_record_batch_refusals_on_postgres(tmp_path: Path) -> None:
    """The same refusals as on SQLite (``test_node_outbox``), where the entries are read with one ``= ANY(array)``
    instead of ``IN`` lists; and an id that is no outbox entry at all."""
    with fresh_postgres_database() as url:
        n = start_node(tmp_path / "node", database_url=url)
        try:
            refusals(n)  # not collected here under this name
            assert n.issue(nurses(1, seed=95)[0]).status_code == 201
            seq, leaves, root, envelope = _build(n)
            assert len(leaves) == 1
            missing = [leaves[0], dataclasses.replace(leaves[0], outbox_id=10**6)]
            with pytest.raises(ConflictError, match="outbox entry 1000000 is not a pending leaf"):
                _record(n, seq, missing, root, envelope)
            assert n.count("anchor_batches") == 2
        finally:
            n.client.close()
            n.ctx.close()


def test_backlog_on_postgres(tmp_path: Path) -> None:
    """``outbox.backlog``'s one statement of scalar subqueries through every state, as on SQLite."""
    with fresh_postgres_database() as url:
        n = start_node(tmp_path / "node", database_url=url)
        try:
            backlog(n)  # not collected here under this name
        finally:
            n.client.close()
            n.ctx.close()


def _index_names(plan: object) -> set[str]:
    if isinstance(plan, dict):
        own = {plan["Index Name"]} if "Index Name" in plan else set()
        return own.union(*(_index_names(v) for v in plan.values()))
    if isinstance(plan, list):
        return set().union(*(_index_names(v) for v in plan))
    return set()


def _outline(plan: object) -> list[str]:
    """The plan's nodes, depth first: type, relation and index (for a failure's message)."""
    if isinstance(plan, dict):
        own = [" ".join(str(plan[k]) for k in ("Node Type", "Relation Name", "Index Name") if k in plan)]
        return [o for o in own if o] + [x for v in plan.values() for x in _outline(v)]
    if isinstance(plan, list):
        return [x for v in plan for x in _outline(v)]
    return []


def _scans(plan: object, relation: str) -> list[dict[str, Any]]:
    """The plan's nodes that read ``relation``."""
    if isinstance(plan, dict):
        own = [plan] if plan.get("Relation Name") == relation and "Scan" in plan.get("Node Type", "") else []
        return own + [x for v in plan.values() for x in _scans(v, relation)]
    if isinstance(plan, list):
        return [x for v in plan for x in _scans(v, relation)]
    return []


def test_anchoring_a_batch_counts_its_entries_by_batch_with_stale_statistics(tmp_path: Path) -> None:
    """The planner's statistics are from when every leaf was pending (as after a large import, before autovacuum
    analyzes the outbox again): ``record_batch_anchored``'s count must still walk the batch's entries by the
    ``(batch_seq, leaf_index)`` index, not every batched leaf by the ``(state, kind, id)`` index (it did, and so
    cost more with every leaf the node ever anchored). Its refusal of a batch whose entries are not its leaves
    holds all the same."""
    with fresh_postgres_database() as url:
        n = start_node(tmp_path / "node", database_url=url)
        try:
            stock = tmp_path / "stock.jsonl"  # enough entries for the planner to prefer an index to a scan
            stock.write_bytes(b"".join(canonical.encode(d) + b"\n" for d in nurses(3000, seed=96)))
            assert run_import(n.ctx, stock, workers=2).imported == 3000
            with n.ctx.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE outbox")  # every leaf pending
            seen: list[tuple[str, Any]] = []

            def count(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
                if statement.startswith("SELECT count(*)") and "FROM outbox" in statement:
                    seen.append((statement, parameters))

            sa.event.listen(n.ctx.engine, "before_cursor_execute", count)
            try:
                for _ in range(2):
                    seq, leaves, root, envelope = _build(n, limit=1000)
                    _record(n, seq, leaves, root, envelope)
                    assert _anchor(n, seq, block=seq + 1) == 1000
            finally:
                sa.event.remove(n.ctx.engine, "before_cursor_execute", count)
            assert len(seen) == 2
            with n.ctx.engine.connect() as conn:
                for statement, parameters in seen:
                    [[plan]] = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).all()
                    assert _index_names(plan) == {"uq_outbox_batch_seq_leaf_index"}, plan
            # a batch row whose leaf count disagrees with its entries is refused, nothing changed
            with n.ctx.engine.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO anchor_batches (batch_seq, root_hash, leaf_count, tx_id, envelope, state, created_ms)"
                    " VALUES (2, %(r)s, 1, %(t)s, %(e)s, 'built', 0)",
                    {"r": b"\0" * 32, "t": "ef" * 32, "e": b"{}"},
                )
            with pytest.raises(ConflictError, match="batch 2 has 1 leaves"):
                _anchor(n, 2, block=9)
            with n.ctx.sessions() as session:
                assert session.get(AnchorBatch, 2).state == "built"  # type: ignore[union-attr]
        finally:
            n.client.close()
            n.ctx.close()


def test_the_anchoring_queue_reads_the_pending_leaf_index_whatever_the_statistics(tmp_path: Path) -> None:
    """Statistics taken while every leaf was pending (autovacuum's ANALYZE after an import), then most leaves
    batched: every statement that reads the queue (the check before a pass, the count up to a batch, a batch's
    leaves) must read the pending-leaf index of migration 0005, never walk the primary key past every leaf
    already batched, and the batch's move to ``batched`` must read only the range of its ids. Before, the planner
    walked the primary key for the check and for the move (a probe: 150-200 ms per statement with 100,000
    leaves, the server's CPU per license tripled)."""
    with fresh_postgres_database() as url:
        n = start_node(tmp_path / "node", database_url=url)
        try:
            stock = tmp_path / "stock.jsonl"
            stock.write_bytes(b"".join(canonical.encode(d) + b"\n" for d in nurses(3000, seed=97)))
            assert run_import(n.ctx, stock, workers=2).imported == 3000
            with n.ctx.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE outbox")  # every leaf pending
            for _ in range(2):
                seq, leaves, root, envelope = _build(n, limit=1000)
                _record(n, seq, leaves, root, envelope)
                assert _anchor(n, seq, block=seq + 1) == 1000
            seen: list[tuple[str, Any]] = []

            def queue(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
                if "outbox" in statement and "pending" in str(parameters) + statement:
                    seen.append((statement, parameters))

            sa.event.listen(n.ctx.engine, "before_cursor_execute", queue)
            try:
                with n.ctx.sessions() as session:
                    found = outbox.backlog(session)
                    assert found.leaf_span == 1000 and found.first_leaf_ms is not None
                    assert outbox.pending_leaves_reach(session, 1000)
                    assert not outbox.pending_leaves_reach(session, 1001)
                seq, leaves, root, envelope = _build(n, limit=600)
                _record(n, seq, leaves, root, envelope)
            finally:
                sa.event.remove(n.ctx.engine, "before_cursor_execute", queue)
            kinds = {s.split(None, 1)[0] for s, _ in seen}
            assert kinds == {"SELECT", "UPDATE"} and len(seen) >= 5, seen
            with n.ctx.engine.connect() as conn:
                for statement, parameters in seen:
                    [[plan]] = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).all()
                    why = (statement[:60], _outline(plan))
                    if statement.startswith("SELECT"):  # the queue, in id order, from its own index
                        used = _index_names(plan)
                        assert "ix_outbox_pending_leaf_id" in used and "pk_outbox" not in used, why
                    else:  # the batch's move: bounded by the batch's ids, whichever join the planner picks
                        scans = _scans(plan, "outbox")
                        assert scans and all("Index Cond" in scan for scan in scans), why
            with n.ctx.sessions() as session:
                assert outbox.backlog(session).leaf_span == 400
        finally:
            n.client.close()
            n.ctx.close()
