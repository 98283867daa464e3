"""A real deployment for online-verifier tests: a 3-province `licledger network` (real CLI, real peers), provincial
nodes joined to it and served by ``licledger node serve`` (uvicorn, in-process anchoring), licenses issued over
HTTP; and an adversarial proxy: a real HTTP server in front of a node or peer that rewrites chosen answers (a lying
node), after python-tuf's repository simulator."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TESTS = Path(__file__).resolve().parent.parent
for _sub in ("network", "node", "sync"):
    if str(_TESTS / _sub) not in sys.path:
        sys.path.insert(0, str(_TESTS / _sub))

from anchorkit import KEK, documents, join_node  # noqa: E402
from click.testing import CliRunner, Result  # noqa: E402
from netkit import PROVINCES, Net, licledger  # noqa: E402

from core import canonical  # noqa: E402
from core.checkpoint import Checkpoint, cosign, parse_checkpoint, render  # noqa: E402
from core.consortium import Genesis  # noqa: E402
from core.transactions import Envelope  # noqa: E402
from network.localnet import load_member_key  # noqa: E402

__all__ = [
    "KEK",
    "Deployment",
    "Licenses",
    "Proxy",
    "ServedNode",
    "call",
    "free_port",
    "get_no_redirect",
    "licledger",
    "prepare",
    "verify_cli",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_no_redirect(url: str) -> tuple[int, str | None, bytes]:
    """A GET whose redirect is not followed: status, ``Location`` and body (a node's referral)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        answer = conn.getresponse()
        return answer.status, answer.getheader("Location"), answer.read()
    finally:
        conn.close()


def call(
    url: str, *, method: str = "GET", body: bytes | None = None, token: str | None = None, ctype: str | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", ctype or "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class ServedNode:
    """``licledger node serve`` in its own process, joined to the network as ``member``."""

    directory: Path
    member: str
    port: int
    operator: str
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        env = {
            **os.environ,
            "LICLEDGER_KEK": KEK,
            "LICLEDGER_PUBLIC_RATE_PER_SECOND": "1000",
            "LICLEDGER_PUBLIC_RATE_BURST": "1000",
            "LICLEDGER_ANCHOR_INTERVAL_MS": "200",
            "LICLEDGER_ANCHOR_BATCH_MAX_AGE_MS": "200",
            "LICLEDGER_RECONCILE_INTERVAL_S": "0",
            "LICLEDGER_CHECKPOINT_CACHE_MS": "0",
            "LICLEDGER_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            **(extra_env or {}),
        }
        env.pop("LICLEDGER_DIR", None)
        self.log = self.directory.with_suffix(".log")
        argv = [sys.executable, "-c", "from node.cli import main; main()", "node", "serve"]
        argv += ["--dir", str(self.directory), "--port", str(self.port)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        assert self.proc is not None and self.log is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            try:
                if call(self.url + "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("node did not start: " + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def api_key(self, role: str) -> str:
        done = licledger("node", "apikey", "create", "--dir", self.directory, "--role", role)
        assert done.returncode == 0, done.stdout + done.stderr
        [key] = [line for line in done.stdout.split() if line.startswith("llk_")]
        return key

    def issue(self, docs: list[dict[str, Any]]) -> list[str]:
        ids = []
        for doc in docs:
            status, body = call(
                self.url + "/v1/licenses", method="POST", body=canonical.encode(doc), token=self.operator
            )
            assert status == 201, body
            ids.append(json.loads(body)["license_id"])
        return ids

    def event(self, license_id: str, body: dict[str, Any]) -> None:
        status, answer = call(
            f"{self.url}/v1/licenses/{license_id}/events",
            method="POST",
            body=json.dumps(body).encode(),
            token=self.operator,
        )
        assert status == 201, answer

    def proof(self, license_id: str) -> tuple[int, bytes]:
        return call(f"{self.url}/v1/licenses/{license_id}/proof?view=public")

    def wait_proof(self, license_id: str, status: str | None = None, timeout: float = 90.0) -> bytes:
        """The bundle once the node can prove the license (and, if given, with that status record)."""
        deadline = time.monotonic() + timeout
        last: tuple[int, bytes] = (0, b"")
        while time.monotonic() < deadline:
            last = self.proof(license_id)
            if last[0] == 200:
                record = json.loads(last[1])["status"]["record"]
                if status is None or (record is not None and record["status"] == status):
                    return last[1]
            time.sleep(0.3)
        raise AssertionError(f"no proof for {license_id}: {last}")


@dataclass
class Deployment:
    """The network, two served nodes (Beijing, Shanghai) and licenses issued on Beijing's."""

    net: Net
    nodes: dict[str, ServedNode] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        directory: Path,
        members: tuple[str, ...] = ("110000", "310000"),
        node_env: dict[str, str] | None = None,
        *,
        provinces: tuple[str, ...] = PROVINCES,
        referrals: bool = False,
    ) -> Deployment:
        """A network of ``provinces`` with a served node for each of ``members``; with ``referrals`` every node
        has the others in its ``LICLEDGER_NODE_DIRECTORY`` (cross-node resolution)."""
        os.environ["LICLEDGER_KEK"] = KEK
        net = Net.started(directory / "net", checkpoint_interval=2, provinces=provinces)
        dep = cls(net)
        ports = {m: free_port() for m in members}
        env = dict(node_env or {})
        if referrals:
            env["LICLEDGER_NODE_DIRECTORY"] = ",".join(f"{m}=http://127.0.0.1:{p}" for m, p in ports.items())
        try:
            for member in members:
                node_dir = directory / f"node-{member}"
                operator = join_node(node_dir, net, member)
                node = ServedNode(node_dir, member, ports[member], operator)
                node.start(env)
                dep.nodes[member] = node
            for node in dep.nodes.values():
                node.wait_ready()
        except BaseException:
            dep.stop()
            raise
        return dep

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.net.down()

    @property
    def network_json(self) -> Path:
        return self.net.directory / "network.json"

    def peer_url(self, member: str) -> str:
        return self.net.config.member(member).http_url

    def documents(self, member: str, count: int, *, start: int = 0) -> list[dict[str, Any]]:
        genesis = Genesis.from_dict(Envelope.from_bytes(self.net.config.genesis_envelope).tx.args["genesis"])
        record = genesis.member(member)
        assert record is not None
        return documents("physician", count, member, record.issuers[0], seed=23, start=start)

    def forged_conflict(self, note: bytes, signers: tuple[str, ...] = ("national", "110000", "310000")) -> bytes:
        """A checkpoint at the same anchor-log tree_size as ``note`` with another root, cosigned by a quorum of
        real member keys (a colluding quorum, or stolen keys): the other half of a split view."""
        cp, _ = parse_checkpoint(note)
        forged = Checkpoint(
            origin=cp.origin,
            height=cp.height,
            log_size=cp.log_size,
            log_root=bytes(b ^ 0xFF for b in cp.log_root),
            status_root=cp.status_root,
            membership_root=cp.membership_root,
            block_hash=cp.block_hash,
            timestamp_ms=cp.timestamp_ms,
        )
        return render(forged, [cosign(forged, name, load_member_key(self.net.config, name)) for name in signers])

    def equivocation(self, node_url: str) -> tuple[str, Rewrite]:
        """``node_url``'s latest checkpoint forged into a conflicting one (:meth:`forged_conflict`), and a
        :class:`Proxy` rewrite for ``/v1/ledger/checkpoint`` that serves it instead: an equivocating node."""
        status, body = call(node_url + "/v1/ledger/checkpoint")
        assert status == 200, body
        real = json.loads(body)
        forged = self.forged_conflict(real["note"].encode()).decode()

        def equivocate(path: str, status: int, body: bytes) -> tuple[int, bytes]:
            return 200, json.dumps({**real, "note": forged}).encode()

        return forged, equivocate


Rewrite = Callable[[str, int, bytes], tuple[int, bytes]]


class Proxy:
    """A real HTTP server forwarding GETs to ``upstream``; ``rewrites`` maps a path prefix to a function of (path,
    upstream status, upstream body) giving the answer to send instead: a node or peer that lies."""

    def __init__(self, upstream: str, rewrites: Mapping[str, Rewrite] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.rewrites = dict(rewrites or {})
        self.requests: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.requests.append(self.path)
                status, body = call(proxy.upstream + self.path)
                for prefix, rewrite in proxy.rewrites.items():
                    if self.path.startswith(prefix):
                        status, body = rewrite(self.path, status, body)
                        break
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Licenses:
    """On Beijing's node: ``active`` and ``revoked`` (both provable), ``ids`` all issued."""

    active: str
    revoked: str
    ids: list[str]


def prepare(dep: Deployment) -> Licenses:
    bj = dep.nodes["110000"]
    ids = bj.issue(dep.documents("110000", 3))
    bj.event(ids[1], {"type": "revoke", "reason": "R01"})
    bj.wait_proof(ids[0])
    bj.wait_proof(ids[1], status="revoked")
    return Licenses(ids[0], ids[1], ids)


def verify_cli(dep: Deployment, state: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    """``licledger verify ARGS --trust-root <network.json> --state STATE --json`` in process: the result and the
    JSON report (``{}`` when the output is not JSON)."""
    from node.cli import cli

    result = CliRunner().invoke(
        cli, ["verify", *args, "--trust-root", str(dep.network_json), "--state", str(state), "--json"]
    )
    try:
        return result, json.loads(result.stdout)
    except ValueError:
        return result, {}
