"""Parallel sealing (``node.sealing``) and ``licledger node import --workers N``: the same answers as sealing in
this process, bad lines named by number and field, workers that refuse a key other than the node's, and a real
parallel import killed (SIGKILL) then resumed to the exact count, leaving no worker process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from nodekit import KEK, NodeUnderTest, nurses, physicians

from core import canonical, synth
from core.seal import Seal, seal_document, verify_seal
from core.sm2 import PrivateKey
from node.cli import cli
from node.importer import run_import
from node.sealing import Rejected, Sealed, Sealer, SealingPool, load_sealer


def _integrity(node: NodeUnderTest) -> None:
    n = node.count("licenses")
    assert node.count("license_versions") == n
    assert node.count("outbox") == n
    assert node.count("license_events") == n


def test_sealer_signs_what_seal_document_signs(node: NodeUnderTest) -> None:
    sealer = Sealer.of(node.ctx)
    for kind in ("physician", "nurse", "institution"):
        doc = sealer.validate(canonical.encode(next(synth.generate(kind, 1, "440000", 3))))
        sealed = sealer.seal(doc, 1_700_000_000_000)
        seal = Seal.from_dict(canonical.decode(sealed.columns["seal"]))
        assert canonical.encode(seal.to_dict()) == sealed.columns["seal"]  # canonical, as core.seal writes it
        assert seal.info() == seal_document(doc, node.ctx.signing_key, 1_700_000_000_000).info()
        verify_seal(sealed.columns["document"], seal, node.ctx.signing_key.public_key)
        assert sealed.columns["document"] == canonical.encode(doc.to_canonical_dict())


def test_pool_answers_like_this_process_in_order(node: NodeUnderTest) -> None:
    docs = [canonical.encode(d) for d in physicians(150, seed=5)]
    docs[70] = b'{"format": 1'
    with SealingPool(node.ctx, 2) as pool:
        answers = pool.map(docs, 1_700_000_000_000)
        streamed = list(pool.stream((i, docs[i : i + 40], 1) for i in range(0, len(docs), 40)))
    assert [tag for tag, _ in streamed] == [0, 40, 80, 120]
    assert sum(len(a) for _, a in streamed) == len(docs)
    assert isinstance(answers[70], Rejected) and "$" in answers[70].errors
    local = SealingPool(node.ctx, 0).map(docs, 1_700_000_000_000)
    for mine, theirs in zip(answers, local, strict=True):
        if isinstance(mine, Sealed):
            assert isinstance(theirs, Sealed)
            assert (mine.base_id, mine.columns["document"], mine.facets) == (
                theirs.base_id,
                theirs.columns["document"],
                theirs.facets,
            )
            seal = Seal.from_dict(canonical.decode(mine.columns["seal"]))
            verify_seal(mine.columns["document"], seal, node.ctx.signing_key.public_key)
        else:
            assert mine == theirs


def test_worker_refuses_a_key_other_than_the_nodes(node: NodeUnderTest) -> None:
    settings = node.ctx.settings
    issuer = (settings.province, settings.authority_uscc, settings.authority)
    other = PrivateKey.generate().key_id
    with pytest.raises(RuntimeError, match="the keystore holds key"):
        load_sealer(str(node.dir), settings.mode, other, issuer)
    mine = load_sealer(str(node.dir), settings.mode, node.ctx.signing_key.key_id, issuer)
    assert mine.key.key_id == node.ctx.signing_key.key_id


def test_parallel_import_reports_bad_lines_by_number_and_field(node: NodeUnderTest, tmp_path: Path) -> None:
    docs = physicians(20, seed=8) + nurses(20, seed=8)
    lines = [canonical.encode(d) for d in docs]
    lines[4] = canonical.encode(dict(docs[4], version=2))  # line 5: version differs from the identifier's
    lines[9] = b'{"format": 1, '  # line 10: not JSON
    lines[30] = canonical.encode(next(synth.generate("nurse", 1, "110000", 1)))  # line 31: another authority
    lines.append(canonical.encode(docs[0]))  # line 41: a duplicate of line 1
    path = tmp_path / "stock.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    args = ["node", "import", str(path), "--dir", str(node.dir), "--chunk-lines", "7", "--workers", "2"]
    result = CliRunner().invoke(cli, args, env={"LICLEDGER_KEK": KEK})
    assert result.exit_code == 2, result.output
    assert f"{path}:5: rejected: version:" in result.stderr
    assert f"{path}:10: rejected: " in result.stderr and "invalid JSON" in result.stderr
    assert f"{path}:31: rejected: " in result.stderr and "issuer.authority_uscc" in result.stderr
    assert result.stderr.count("rejected:") == 3
    assert "41 lines: 37 imported, 1 already present, 3 rejected" in result.stdout
    assert node.count("licenses") == 37
    _integrity(node)


def _worker_pids(parent: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def test_killed_parallel_import_resumes_to_the_exact_count(node: NodeUnderTest, tmp_path: Path) -> None:
    from test_node_import import _progress

    docs = physicians(800, seed=34) + nurses(800, seed=34)
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(canonical.encode(d) for d in docs) + b"\n")
    cmd = [sys.executable, "-c", "from node.cli import main; main()", "node", "import", str(path)]
    cmd += ["--dir", str(node.dir), "--chunk-lines", "25", "--workers", "2"]
    proc = subprocess.Popen(
        cmd, env={**os.environ, "LICLEDGER_KEK": KEK}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    db = node.dir / "node.db"
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    try:
        while time.monotonic() < deadline:
            lines, completed = _progress(db)
            assert not completed, "the import finished before it could be killed"
            workers |= _worker_pids(proc.pid)
            if lines >= 300:
                break
            time.sleep(0.005)
        else:
            raise AssertionError("the import made no progress")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    killed_at, completed = _progress(db)
    assert proc.returncode == -signal.SIGKILL and not completed and 300 <= killed_at < 1600
    assert len(workers) >= 2, "the import ran no worker processes"
    assert node.count("licenses") == killed_at  # each committed chunk is whole, in order
    _integrity(node)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers):  # orphaned workers see their pipe close and exit
        assert time.monotonic() < deadline, "worker processes outlived the killed import"
        time.sleep(0.1)
    result = run_import(node.ctx, path, chunk_lines=25, workers=2)
    assert result.resumed_from_line == killed_at
    assert (result.lines, result.imported, result.present, result.rejected) == (1600, 1600, 0, 0)
    assert node.count("licenses") == 1600
    _integrity(node)
