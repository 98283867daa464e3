"""``licledger node backfill-version-updates`` on a node database made before version updates existed, on SQLite
and on PostgreSQL, against a real 3-province network.

The old shape is built for real: licenses issued and changed through the node's API, then the version updates
those events wrote (outbox ``status`` entries, reason ``NEW_VERSION``) deleted with the ``status_seq`` they took,
and the database downgraded to migration 0001 (one outbox entry per event). Everything is anchored: the
ledger's status map still cites the old versions. The dry run changes nothing (not even the schema); ``--apply``
migrates and enqueues one update per license that needs one, with the next ``status_seq`` and a non-regressing
effective time; a second run has nothing to do; one anchoring pass puts them on the ledger, whose status
records then name the current versions, and the previous version's proof bundle verifies SUPERSEDED.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from anchorkit import Issuer, documents, join_node, open_joined
from netkit import Net, licledger
from nodekit import fresh_postgres_database, init_node
from test_anchor_faults import _assert_anchored_exactly_once, _states

from core.codes import LicenseId
from core.transactions import NEW_VERSION
from node.context import NodeContext
from node.db.engine import make_engine
from node.db.migrate import current_revision, downgrade, head_revision
from node.db.models import AuditEntry, License, LicenseEvent, Outbox
from node.settings import load_settings, sqlite_url
from sync.anchor import AnchorWorker
from verifier.core import Result, load_trust_root, verify_bundle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RENEW = {"type": "renew", "valid_from": "2024-01-01", "valid_to": "2028-12-31"}
RENEW_AGAIN = {"type": "renew", "valid_from": "2025-01-01", "valid_to": "2029-12-31"}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net.started(tmp_path_factory.mktemp("backfill") / "net")
    yield n
    n.down()


@contextmanager
def _database(kind: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database's URL, or ``None``: the node's own SQLite file."""
    if kind == "postgresql":
        with fresh_postgres_database() as url:
            yield url
    else:
        yield None


def _strip_version_updates(ctx: NodeContext) -> int:
    """Make the database look as if its version events had been written before version updates existed: no
    ``NEW_VERSION`` entries, each license's ``status_seq`` the number of its other status changes."""
    with ctx.sessions() as session, session.begin():
        assert not session.scalar(
            sa.select(sa.func.count()).where(Outbox.reason == NEW_VERSION, Outbox.state != "pending")
        ), "a version update already left the node"
        removed = session.execute(sa.delete(Outbox).where(Outbox.kind == "status", Outbox.reason == NEW_VERSION))
        remaining = (
            sa.select(sa.func.count()).where(Outbox.license_id == License.id, Outbox.kind == "status").scalar_subquery()
        )
        session.execute(sa.update(License).values(status_seq=remaining))
        return int(removed.rowcount)  # type: ignore[attr-defined]


def _downgrade_to_0001(url: str) -> None:
    engine = make_engine(url)
    try:
        downgrade(engine, "0001")
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def _backfill(node_dir: Path, *extra: str) -> str:
    done = licledger("node", "backfill-version-updates", "--dir", node_dir, *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _base(license_id: str) -> str:
    return LicenseId.parse(license_id).base


def _version(license_id: str) -> int:
    return LicenseId.parse(license_id).version


def _status(net: Net, member: str, license_id: str) -> tuple[Any, ...] | None:
    record = net.client(member).get_json(f"/v1/query/GetStatus?arg={license_id}&arg=").get("record")
    if not record:
        return None
    return (record["license_id"], record["reason"], record["status"], record["status_seq"])


def _outbox_rows(ctx: NodeContext) -> list[tuple[Any, ...]]:
    with ctx.sessions() as session:
        return [
            tuple(r)
            for r in session.execute(
                sa.select(Outbox.id, Outbox.kind, Outbox.state, Outbox.status_seq, Outbox.reason).order_by(Outbox.id)
            )
        ]


@pytest.mark.parametrize(("database", "member"), [("sqlite", "110000"), ("postgresql", "310000")])
def test_backfill_puts_the_missing_version_updates_on_the_ledger(
    net: Net, tmp_path: Path, database: str, member: str
) -> None:
    node_dir = tmp_path / "node"
    with _database(database) as url:
        join_node(node_dir, net, member, database_url=url)
        ctx = open_joined(node_dir)
        url = url or ctx.settings.url
        issuer = Issuer(ctx)
        try:
            uscc = ctx.settings.authority_uscc
            a, b, c, d, e = issuer.issue(documents("nurse", 5, member, uscc, start=900))
            assert AnchorWorker(ctx).run_once(force=True).leaves == 5
            issuer.event(b, {"type": "suspend", "reason": "S01"})  # status_seq 0, cites the issued version
            issuer.event(b, {"type": "reinstate", "reason": "R01"})  # status_seq 1
            assert AnchorWorker(ctx).run_once(force=True).statuses == 2
            a2 = issuer.event(a, RENEW)["license_id"]
            b2 = issuer.event(b, RENEW)["license_id"]
            c2 = issuer.event(c, RENEW)["license_id"]
            issuer.event(e, RENEW)
            e3 = issuer.event(e, RENEW_AGAIN)["license_id"]
            assert _strip_version_updates(ctx) == 5  # a, b, c, and e twice: the old shape
            issuer.event(c2, {"type": "suspend", "reason": "S02"})  # after the new version: cites it
            final = AnchorWorker(ctx).run_once(force=True)
            assert final.error is None and final.statuses == 1 and not final.rejected, final
            assert _states(ctx) == {"leaf:anchored": 10, "status:anchored": 3}
            before = _outbox_rows(ctx)
        finally:
            issuer.close()
            ctx.close()
        _downgrade_to_0001(url)  # one outbox entry per event, as before migration 0002
        assert _revision(url) == "0001"

        # the ledger still cites the old versions (or nothing) for every changed license but c
        assert _status(net, member, a) is None and _status(net, member, e) is None
        assert _status(net, member, b) == (b, "R01", "reinstated", 1)
        assert _status(net, member, c) == (c2, "S02", "suspended", 0)

        dry = _backfill(node_dir)
        assert _revision(url) == "0001", "a dry run must not migrate"
        for line in (
            f"would enqueue {_base(a)}: version {_version(a2)} (renew), status active, status_seq 0",
            f"would enqueue {_base(b)}: version {_version(b2)} (renew), status reinstated, status_seq 2",
            f"would enqueue {_base(e)}: version {_version(e3)} (renew), status active, status_seq 0",
            "would enqueue 3 version updates",
            "dry run: nothing written",
            "1 licenses need none",
        ):
            assert line in dry, dry
        assert _base(d) not in dry and _base(c) not in dry

        applied = _backfill(node_dir, "--apply")
        assert _revision(url) == head_revision()
        assert (
            len([line for line in applied.splitlines() if line.startswith("enqueued ") and ": version " in line]) == 3
        )
        assert "enqueued 3 version updates" in applied, applied
        again = _backfill(node_dir, "--apply")
        assert "nothing to do" in again and "would enqueue" not in again and "\nenqueued " not in again, again
        assert "nothing to do" in _backfill(node_dir)

        ctx = open_joined(node_dir)
        try:
            added = [row for row in _outbox_rows(ctx) if row not in before]
            assert [(kind, state, seq, reason) for _, kind, state, seq, reason in added] == [
                ("status", "pending", 0, NEW_VERSION),  # a
                ("status", "pending", 2, NEW_VERSION),  # b
                ("status", "pending", 0, NEW_VERSION),  # e
            ]
            with ctx.sessions() as session:
                assert session.scalar(sa.select(License.status_seq).where(License.base_id == _base(b))) == 3
                audited = session.scalars(
                    sa.select(AuditEntry.object).where(AuditEntry.action == "license.version_update")
                ).all()
                assert sorted(audited) == sorted(_base(x) for x in (a, b, e))
                # effective time: the version event's (later than the license's previous status change)
                effective = dict(
                    session.execute(
                        sa.select(Outbox.status_seq, Outbox.effective_ms)
                        .join(License, License.id == Outbox.license_id)
                        .where(License.base_id == _base(b))
                    ).all()
                )
                renewed = session.scalar(
                    sa.select(LicenseEvent.occurred_ms)
                    .join(License, License.id == LicenseEvent.license_id)
                    .where(License.base_id == _base(b), LicenseEvent.type == "renew")
                )
                assert effective[2] == renewed and effective[2] >= effective[1] >= effective[0]

            report = AnchorWorker(ctx).run_once(force=True)
            assert report.error is None and report.statuses == 3 and not report.rejected, report
            assert _status(net, member, a) == (a2, NEW_VERSION, "active", 0)
            assert _status(net, member, b) == (b2, NEW_VERSION, "reinstated", 2)
            assert _status(net, member, e) == (e3, NEW_VERSION, "active", 0)
            assert _status(net, member, c) == (c2, "S02", "suspended", 0)  # untouched
            assert _status(net, member, d) is None
            _assert_anchored_exactly_once(ctx, net, member)
            _check_superseded(ctx, net, a, a2)
        finally:
            ctx.close()


def _check_superseded(ctx: NodeContext, net: Net, v1: str, v2: str) -> None:
    """The node's proof bundle of the previous version, once the backfilled update is under a final checkpoint, verifies
    SUPERSEDED, and the new version's VALID."""
    trust = load_trust_root((net.directory / "network.json").read_bytes(), network_id=net.config.network_id)
    issuer = Issuer(ctx)
    try:

        def verdict(license_id: str) -> Result | None:
            answer = issuer.client.get(f"/v1/licenses/{license_id}/proof", headers=issuer.headers)
            if answer.status_code == 425:
                return None
            assert answer.status_code == 200, answer.text
            now = time.time_ns() // 1_000_000
            return verify_bundle(answer.content, trust, now_ms=now, max_checkpoint_age_ms=600_000).result

        deadline = time.monotonic() + 60
        results: tuple[Result | None, Result | None] = (None, None)
        while time.monotonic() < deadline:
            results = (verdict(v1), verdict(v2))
            if results == (Result.SUPERSEDED, Result.VALID):
                return
            AnchorWorker(ctx).run_once(force=True)  # new anchors make new checkpoints
            time.sleep(0.5)
        raise AssertionError(f"version 1 / 2 verdicts: {results}")
    finally:
        issuer.close()


def test_backfill_refuses_a_directory_without_a_node(tmp_path: Path) -> None:
    for directory in (tmp_path / "missing", tmp_path):
        done = licledger("node", "backfill-version-updates", "--dir", directory, "--apply")
        assert done.returncode == 1 and "not initialised" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_backfill_refuses_a_node_whose_database_has_no_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir)
    other = sqlite_url(tmp_path / "empty.db")
    monkeypatch.setenv("LICLEDGER_DATABASE_URL", other)  # the command's process inherits it
    assert load_settings(node_dir).url == other
    done = licledger("node", "backfill-version-updates", "--dir", node_dir, "--apply")
    assert done.returncode == 1 and "not initialised" in done.stderr, done.stderr
    assert _revision(other) is None  # nothing migrated into the empty database
