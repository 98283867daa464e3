"""Crash atomicity: a fault anywhere inside a unit of work leaves no partial rows. Faults are real: SQLite
triggers that make the database itself fail at the outbox or audit insert, after the license, its event and
its version were already written in the same transaction."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from nodekit import NodeUnderTest, nurses, physicians

from node import records
from node.access import Principal
from node.db.engine import unit_of_work

TABLES = (
    "licenses",
    "license_versions",
    "license_events",
    "license_institutions",
    "outbox",
    "audit_log",
    "holder_tokens",
)


def _counts(node: NodeUnderTest) -> dict[str, int]:
    return {t: node.count(t) for t in TABLES}


def _fail_on_insert(node: NodeUnderTest, table: str, how: str = "RAISE(ABORT, 'injected fault')") -> None:
    with node.ctx.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TRIGGER fault_{table} BEFORE INSERT ON {table} BEGIN SELECT {how}; END")


def _req(node: NodeUnderTest) -> records.Request:
    return records.Request(Principal("operator", "test"), "req-test-0001", node.ctx.clock())


def test_exception_after_the_work_rolls_everything_back(node: NodeUnderTest) -> None:
    before = _counts(node)
    with pytest.raises(RuntimeError), unit_of_work(node.ctx.sessions) as session:
        records.issue(session, node.ctx, physicians(1)[0], _req(node))
        session.flush()
        assert session.scalar(sa.text("SELECT count(*) FROM outbox")) == 1  # written, not committed
        raise RuntimeError("crash before commit")
    assert _counts(node) == before


@pytest.mark.parametrize("table", ["outbox", "audit_log", "holder_tokens"])
def test_database_fault_mid_issue_leaves_no_partial_rows(node: NodeUnderTest, table: str) -> None:
    node.issue(nurses(1)[0])
    before = _counts(node)
    _fail_on_insert(node, table)
    with pytest.raises(sa.exc.IntegrityError), unit_of_work(node.ctx.sessions) as session:
        records.issue(session, node.ctx, physicians(1)[0], _req(node))
    assert _counts(node) == before


def test_database_fault_mid_event_leaves_the_license_unchanged(node: NodeUnderTest) -> None:
    doc = physicians(1)[0]
    base = node.issue(doc).json()["base_id"]
    before = _counts(node)
    _fail_on_insert(node, "outbox")
    h = node.auth("operator")
    for body in ({"type": "suspend", "reason": "x"}, {"type": "change", "changes": {"holder": {"name": "王五"}}}):
        r = node.client.post(f"/v1/licenses/{base}/events", json=body, headers=h)
        assert r.status_code == 409, r.text  # the injected fault is a constraint failure
    assert _counts(node) == before
    view = node.client.get(f"/v1/licenses/{base}", headers=h).json()
    assert view["license_status"] == "active" and view["version"] == doc["version"]


def test_unexpected_database_error_is_500_with_nothing_stored_and_nothing_personal_logged(
    node: NodeUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    from node.logsafe import RedactingFilter

    _fail_on_insert(node, "outbox", "count(*) FROM missing_table")
    doc = physicians(1)[0]
    before = _counts(node)
    handler_filter = RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.ERROR, logger="node.api"):
            r = node.issue(doc)
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert r.status_code == 500 and r.json()["detail"] == "internal error"
    assert _counts(node) == before
    assert "OperationalError" in caplog.text
    assert doc["holder"]["citizen_id"] not in caplog.text and doc["holder"]["name"] not in caplog.text
