"""``licledger node import``: bad lines reported by number, idempotent re-runs, nothing stored changed, and a
real process killed (SIGKILL) mid-import then resumed to the exact count without duplicates."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from nodekit import KEK, NodeUnderTest, nurses, physicians

from core import canonical, synth
from node.cli import cli
from node.context import PENDING_KEY_FILE
from node.errors import RotationPendingError
from node.importer import file_digest, run_import


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def _stock(count: int, *, seed: int = 21) -> list[dict[str, object]]:
    half = count // 2
    return physicians(half, seed=seed) + nurses(count - half, seed=seed)


def _integrity(node: NodeUnderTest) -> None:
    n = node.count("licenses")
    assert node.count("license_versions") == n
    assert node.count("outbox") == n
    assert node.count("license_events") == n


def test_import_reports_bad_lines_and_is_idempotent(node: NodeUnderTest, tmp_path: Path) -> None:
    docs = _stock(30)
    existing = docs[3]
    assert node.issue(existing).status_code == 201
    before = node.client.get(f"/v1/licenses/{existing['license_id']}", headers=node.auth("operator")).json()
    bad_doc = dict(docs[7], version=2)  # version differs from the identifier's
    foreign = next(synth.generate("nurse", 1, "110000", 1))
    lines = [canonical.encode(d) for d in docs]
    lines[7] = canonical.encode(bad_doc)
    lines.insert(10, b'{"format": 1, ')  # line 11: not JSON
    lines.insert(12, b"")  # line 13: blank, ignored
    lines.insert(20, canonical.encode(foreign))  # line 21: another authority
    lines.append(canonical.encode(docs[0]))  # a duplicate of line 1
    lines.append(json.dumps(docs[1], ensure_ascii=False, indent=None).encode())  # same license, other spelling
    path = tmp_path / "stock.jsonl"
    _write_lines(path, lines)
    runner = CliRunner()
    env = {"LICLEDGER_KEK": KEK}
    result = runner.invoke(cli, ["node", "import", str(path), "--dir", str(node.dir), "--chunk-lines", "7"], env=env)
    assert result.exit_code == 2, result.output
    assert f"{path}:8: rejected: version:" in result.stderr
    assert f"{path}:11: rejected: " in result.stderr and "invalid JSON" in result.stderr
    assert f"{path}:21: rejected: " in result.stderr and "issuer.authority_uscc" in result.stderr
    assert result.stderr.count("rejected:") == 3
    assert "35 lines: 28 imported, 3 already present, 3 rejected" in result.stdout
    assert foreign["holder"]["citizen_id"] not in result.output
    _integrity(node)
    assert node.count("licenses") == 29
    after = node.client.get(f"/v1/licenses/{existing['license_id']}", headers=node.auth("operator")).json()
    assert after == before  # nothing already stored changed (same salt, seal, commitment)
    again = runner.invoke(cli, ["node", "import", str(path), "--dir", str(node.dir)], env=env)
    assert "28 imported, 3 already present, 3 rejected" in again.stdout
    assert node.count("licenses") == 29
    _integrity(node)


def test_a_changed_file_is_a_new_import_that_skips_what_is_stored(node: NodeUnderTest, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    docs = _stock(10)
    _write_lines(path, [canonical.encode(d) for d in docs[:6]])
    first = run_import(node.ctx, path, chunk_lines=4)
    _write_lines(path, [canonical.encode(d) for d in docs])
    second = run_import(node.ctx, path, chunk_lines=4)
    assert first.digest != second.digest == file_digest(path)
    assert (first.imported, second.imported, second.present) == (6, 4, 6)
    assert node.count("licenses") == 10
    entries = node.client.get("/v1/audit?limit=1000", headers=node.auth("auditor")).json()["entries"]
    chunks = [e for e in entries if e["action"] == "license.import"]
    assert sum(e["detail"]["imported"] for e in chunks) == 10 and all(e["object"] for e in chunks)


def _progress(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT line_number, completed FROM import_progress").fetchone()
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        conn.close()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def test_killed_import_resumes_to_the_exact_count(node: NodeUnderTest, tmp_path: Path) -> None:
    docs = _stock(1200, seed=33)
    path = tmp_path / "big.jsonl"
    _write_lines(path, [canonical.encode(d) for d in docs])
    env = {**os.environ, "LICLEDGER_KEK": KEK}
    cmd = [
        sys.executable,
        "-c",
        "from node.cli import main; main()",
        "node",
        "import",
        str(path),
        "--dir",
        str(node.dir),
        "--chunk-lines",
        "25",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = node.dir / "node.db"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            lines, completed = _progress(db)
            assert not completed, "the import finished before it could be killed"
            if lines >= 300:
                break
            time.sleep(0.005)
        else:
            raise AssertionError("the import made no progress")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    killed_at, completed = _progress(db)
    assert proc.returncode == -signal.SIGKILL and not completed and 300 <= killed_at < 1200
    assert node.count("licenses") == killed_at  # each committed chunk is whole
    _integrity(node)
    result = run_import(node.ctx, path, chunk_lines=25)
    assert result.resumed_from_line == killed_at
    assert (result.lines, result.imported, result.present, result.rejected) == (1200, 1200, 0, 0)
    assert node.count("licenses") == 1200
    _integrity(node)


@pytest.mark.parametrize("workers", [0, 2])
def test_rotation_requested_during_an_import_stops_it_resumably(
    node: NodeUnderTest, tmp_path: Path, workers: int
) -> None:
    """A ``rotate-key request`` made while a long import runs: no chunk handed out after it is sealed with the
    old key (its seals would date after the request); what was sealed before is stored, the import stops with
    RotationPendingError, and once the rotation is over the import resumes where it stopped."""
    path = tmp_path / "stock.jsonl"
    _write_lines(path, [canonical.encode(d) for d in _stock(30, seed=23)])
    pending = node.dir / PENDING_KEY_FILE
    calls: list[int] = []

    def progress(offset: int) -> None:
        calls.append(offset)
        if len(calls) == 2:  # the first chunk is stored: the operator requests a rotation now
            pending.write_bytes(b"pending")

    with pytest.raises(RotationPendingError):
        run_import(node.ctx, path, chunk_lines=5, workers=workers, progress=progress)
    stopped = node.count("licenses")
    assert 5 <= stopped < 30 and stopped % 5 == 0, stopped
    _integrity(node)
    pending.unlink()  # the rotation committed (or was abandoned)
    result = run_import(node.ctx, path, chunk_lines=5, workers=workers)
    # resumed at the first line not stored (totals are the import's, over both runs); nothing stored twice
    assert (result.resumed_from_line, result.imported, result.present, node.count("licenses")) == (stopped, 30, 0, 30)
    _integrity(node)


def test_the_cli_default_chunk_is_the_importers() -> None:
    from node.commands.node import import_
    from node.importer import DEFAULT_CHUNK_LINES

    [option] = [p for p in import_.params if p.name == "chunk_lines"]
    assert option.default == DEFAULT_CHUNK_LINES


def test_import_with_a_started_pool_leaves_it_open_for_the_next_file(node: NodeUnderTest, tmp_path: Path) -> None:
    """A caller's pool (a benchmark starts its workers before the clock; an operator script imports several
    files): each import uses it, and it stays open and usable afterwards."""
    from node.sealing import SealingPool

    stock = _stock(24, seed=31)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _write_lines(first, [canonical.encode(d) for d in stock[:12]])
    _write_lines(second, [canonical.encode(d) for d in stock[12:]])
    with SealingPool(node.ctx, 1) as pool:
        pids = pool.warm_up()
        assert run_import(node.ctx, first, chunk_lines=5, pool=pool).imported == 12
        assert run_import(node.ctx, second, chunk_lines=5, pool=pool).imported == 12
        assert pool.worker_pids() == pids  # the same worker sealed both files
        with pytest.raises(ValueError, match="workers or a pool"):
            run_import(node.ctx, first, workers=2, pool=pool)
    assert node.count("licenses") == 24
    _integrity(node)


def test_import_refuses_a_pool_that_seals_with_another_key(
    node: NodeUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.sm2 import PrivateKey
    from node.sealing import SealingPool

    path = tmp_path / "stock.jsonl"
    _write_lines(path, [canonical.encode(d) for d in _stock(4, seed=33)])
    with SealingPool(node.ctx, 0) as pool:
        monkeypatch.setattr(pool, "sealer", dataclasses.replace(pool.sealer, key=PrivateKey.generate()))
        with pytest.raises(ValueError, match="another key"):
            run_import(node.ctx, path, pool=pool)
    assert node.count("licenses") == 0
