"""Authenticating a request must not take SQLite's write lock: with a long write transaction open elsewhere (an
import chunk, an anchoring pass), an agency's verification request is answered at once instead of queueing
behind the writer for the busy timeout."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from nodekit import NodeUnderTest, physicians


def _db_path(node: NodeUnderTest) -> Path:
    database = node.ctx.engine.url.database
    assert database is not None
    return Path(database)


def test_authenticated_request_is_answered_while_another_writer_holds_the_lock(node: NodeUnderTest) -> None:
    writer = sqlite3.connect(_db_path(node), isolation_level=None, timeout=1)
    writer.execute("BEGIN IMMEDIATE")  # the write lock, held like a long unit of work would
    answers: list[int] = []
    try:
        thread = threading.Thread(
            target=lambda: answers.append(
                node.client.post("/v1/verify", json={"not": "a bundle"}, headers=node.auth("agency")).status_code
            )
        )
        started = time.monotonic()
        thread.start()
        thread.join(10)
        # authenticated (not 401) and answered: 404 here, as this node joined no ledger to verify against
        assert answers and answers[0] in (404, 422), f"the request waited for the write lock: {answers}"
        assert time.monotonic() - started < 10
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_bad_credential_is_still_refused_with_the_lock_held(node: NodeUnderTest) -> None:
    writer = sqlite3.connect(_db_path(node), isolation_level=None, timeout=1)
    writer.execute("BEGIN IMMEDIATE")
    try:
        answer = node.client.post("/v1/verify", json={}, headers={"Authorization": "Bearer llk_nope.nope"})
        assert answer.status_code == 401
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_read_only_sessions_read(node: NodeUnderTest) -> None:
    import sqlalchemy as sa

    with node.ctx.read_sessions() as session, session.begin():
        assert session.execute(sa.text("SELECT count(*) FROM api_keys")).scalar_one() >= 1


def test_proof_routes_read_without_the_write_lock(node: NodeUnderTest) -> None:
    """A proof is read (and waits on the ledger) in a read-only transaction: with another writer holding the lock
    it is answered at once (425 here: this node joined no ledger, so nothing is anchored), not after the busy
    timeout; only a disclosure's audit entry needs the lock, for its own short transaction."""
    issued = node.issue(physicians(1)[0]).json()
    paths = [
        f"/v1/licenses/{issued['license_id']}/proof",
        f"/v1/commitments/{issued['commitment']}/proof",
        f"/v1/licenses/{issued['license_id']}/voucher.pdf",
    ]
    writer = sqlite3.connect(_db_path(node), isolation_level=None, timeout=1)
    writer.execute("BEGIN IMMEDIATE")
    answers: list[tuple[str, int, str]] = []
    try:

        def ask() -> None:
            for path in paths:
                answer = node.client.get(path, params={"view": "public"})
                answers.append((path, answer.status_code, answer.json().get("reason", "")))

        thread = threading.Thread(target=ask)
        thread.start()
        thread.join(10)
        assert [a[1:] for a in answers] == [(425, "NOT_ANCHORED")] * len(paths), answers
    finally:
        writer.execute("ROLLBACK")
        writer.close()
