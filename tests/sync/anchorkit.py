"""Helpers for anchoring tests: nodes joined to a real `licledger network` (via the real CLI), documents issued
under the joined member's authority, the ledger's view of a province's batches, and a worker process that stops
at a chosen step so that the test can kill it with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from netkit import Net, licledger

from core import canonical, synth
from core.codes import LicenseId
from network.localnet import free_loopback_ports
from node.apikeys import create_key
from node.context import NodeContext, open_node
from node.main import create_app
from node.settings import load_settings

KEK = "00112233445566778899aabbccddeeff"


def cli(*args: str | Path) -> str:
    """Run ``licledger ARGS`` (the real CLI); its stdout, or fail with its output."""
    done = licledger(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextlib.contextmanager
def serving(node_dir: Path, log: Path, *options: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``licledger node serve --dir NODE_DIR OPTIONS`` as a real process on a free loopback port, anchoring every
    200 ms; yields the process and its base URL, and stops it with SIGTERM. Its output goes to ``log``."""
    [port] = free_loopback_ports(1)
    env = {
        **os.environ,
        "LICLEDGER_KEK": KEK,
        "LICLEDGER_PORT": str(port),
        "LICLEDGER_ANCHOR_INTERVAL_MS": "200",
        "LICLEDGER_ANCHOR_BATCH_MAX_AGE_MS": "300",
        "LICLEDGER_CHECKPOINT_CACHE_MS": "0",
    }
    command = [sys.executable, "-c", "from node.cli import main; main()", "node", "serve", "--dir", str(node_dir)]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*command, *options], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def wait_for(what: str, check: Any, timeout: float = 45.0) -> Any:
    """Poll ``check()`` until it returns something truthy (returned), or fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def documents(
    kind: str, count: int, province: str, uscc: str, *, seed: int = 5, start: int = 0
) -> list[dict[str, Any]]:
    """Synthetic documents of ``province`` re-issued under the issuing authority ``uscc`` (one of the member's
    issuers, so the ledger accepts its status changes and verifiers its anchoring)."""
    out = []
    for doc in synth.generate(kind, count, province, seed, start=start):
        old = LicenseId.parse(doc["license_id"])
        doc["issuer"]["authority_uscc"] = uscc
        doc["license_id"] = str(LicenseId.build(old.type_code, uscc, old.serial, old.version))
        out.append(doc)
    return out


def join_node(directory: Path, net: Net, member: str, *, database_url: str | None = None) -> str:
    """``licledger node init --network-dir NET --member M --development``; returns the operator key."""
    args: list[str | Path] = ["node", "init", "--dir", directory, "--network-dir", net.directory, "--member", member]
    args += ["--development"] + (["--database-url", database_url] if database_url else [])
    done = licledger(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    [key] = [line for line in done.stdout.splitlines() if line.startswith("llk_")]
    return key


def open_joined(directory: Path, **overrides: Any) -> NodeContext:
    os.environ["LICLEDGER_KEK"] = KEK
    return open_node(load_settings(directory, **overrides))


class Issuer:
    """Issues licenses through the node's real API (TestClient) with an operator key."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        with ctx.sessions() as session, session.begin():
            self.key = create_key(session, ctx.secrets, role="operator", now_ms=ctx.clock())[0]
        self.client = TestClient(create_app(ctx), raise_server_exceptions=True)
        self.headers = {"Authorization": f"Bearer {self.key}"}

    def issue(self, docs: Sequence[dict[str, Any]]) -> list[str]:
        ids = []
        for doc in docs:
            answer = self.client.post("/v1/licenses", content=canonical.encode(doc), headers=self.headers)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["license_id"])
        return ids

    def event(self, license_id: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.client.post(f"/v1/licenses/{license_id}/events", json=body, headers=self.headers)
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def close(self) -> None:
        self.client.close()


def ledger_batches(net: Net, member: str) -> list[dict[str, Any]]:
    """Every batch the ledger holds for ``member``, from batch_seq 0 up to the first missing one."""
    client = net.client(member)
    out: list[dict[str, Any]] = []
    while True:
        try:
            _, raw = client.query("GetBatch", [member, str(len(out))])
        except Exception as exc:  # the peer answers 404 NOT_FOUND past the last batch
            assert "NOT_FOUND" in str(exc), exc
            return out
        out.append(canonical.decode(raw))


_WORKER = """
import os, sys, time
from node.context import open_node
from node.settings import load_settings
from sync.anchor import AnchorWorker

target, nth = sys.argv[2], int(sys.argv[3])
seen = {}

def on_step(step, detail):
    seen[step] = seen.get(step, 0) + 1
    print("STEP", step, flush=True)
    if step == target and seen[step] == nth:
        print("AT", step, flush=True)
        time.sleep(3600)

ctx = open_node(load_settings(sys.argv[1]))
report = AnchorWorker(ctx, on_step=on_step).run_once(force=True)
print("DONE", report.error, flush=True)
"""


def kill_worker_at(directory: Path, step: str, nth: int = 1, timeout: float = 60.0) -> list[str]:
    """Run one forced anchoring pass in a new process; SIGKILL it once it reports ``step`` for the ``nth`` time.
    Returns the steps it reported. Fails if the pass ends without reaching the step."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(directory), step, str(nth)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("AT "):
                proc.kill()  # SIGKILL: no cleanup, no flush, no rollback handler runs
                break
            assert not line.startswith("DONE"), f"the pass ended before {step}: {lines}"
            assert time.monotonic() < deadline, lines
    finally:
        proc.kill()
        proc.wait(10)
    assert lines and lines[-1] == f"AT {step}", lines
    return lines
