"""A 4-member network (national + 3 provinces) started by the real CLI: agreement, rejections, proofs,
bootstrap from a peer (honest and lying), and a block altered on disk. Real processes on loopback only."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from netkit import Net, licledger

from chaincode.anchoring import status_tree_key
from chaincode.checkpoints import checkpoint_body, verify_cosignature
from core.canonical import decode, encode
from core.commitment import license_leaf_hash
from core.consortium import MemberRecord, member_key
from core.hashing import sm3
from core.merkle import verify_consistency, verify_inclusion
from core.sm2 import PrivateKey
from core.smt import SparseProof, verify_sparse_proof
from core.transactions import SIGNING_CONTEXT, Envelope, Signature, anchor_batch, rotate_key
from network.localnet import free_loopback_ports
from network.peer.blocks import Block, BlockHeader, encode_payload, state_writes_hash
from network.peer.bootstrap import bootstrap
from network.peer.chaincode import ExecutorChaincode
from network.peer.client import PeerClient, PeerRequestError
from network.peer.errors import BlockMismatchError
from network.peer.peer import Peer
from network.peer.store import BlockStore
from network.workload import Batch

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    network = Net.started(tmp_path_factory.mktemp("ledger") / "net")
    try:
        yield network
    finally:
        network.down()


@pytest.fixture(scope="module")
def stream(net: Net) -> dict[str, Any]:
    """Anchors from every province through different peers, then status changes: what later tests query."""
    batches: dict[str, list[Batch]] = {p: [] for p in net.provinces}
    peers = net.names
    for round_ in range(4):
        for i, (name, province) in enumerate(net.provinces.items()):
            batch = province.make_batch(8 + round_)
            result = net.submit(province.anchor(batch), via=peers[(round_ + i) % len(peers)])
            assert result["txs"][0]["valid"], result
            batches[name].append(batch)
    p = net.provinces["110000"]
    suspended = batches["110000"][1]
    revoked = batches["110000"][2]
    for envelope in (
        p.change_status(suspended, 3, "suspended"),
        p.change_status(revoked, 0, "suspended"),
        p.change_status(revoked, 0, "revoked"),
    ):
        result = net.submit(envelope, via="310000")
        assert result["txs"][0]["valid"], result
    return {"batches": batches, "suspended": (suspended, 3), "revoked": (revoked, 0)}


def test_every_peer_holds_identical_blocks_and_state(net: Net, stream: dict[str, Any]) -> None:
    height = net.wait_converged()
    assert height >= 16
    chains = {name: net.all_blocks(name) for name in net.names}
    reference = chains[net.names[0]]
    assert len(reference) >= height
    for name, chain in chains.items():
        assert [b["block_hash"] for b in chain[:height]] == [b["block_hash"] for b in reference[:height]], name
        assert chain[:height] == reference[:height], name
    digests = {name: net.client(name).state_digest() for name in net.names}
    assert len({(d["height"], d["state_digest"], d["commit_hash"]) for d in digests.values()}) == 1, digests
    shown = licledger("network", "status", "--dir", net.directory, "--json")
    assert shown.returncode == 0, shown.stderr
    table = json.loads(shown.stdout)
    assert {row["name"] for row in table} == set(net.names)
    assert all(row["healthy"] and row["height"] >= height for row in table)


def _verdicts(net: Net, block: int, index: int) -> set[tuple[bool, str | None]]:
    out = set()
    for name in net.names:
        deadline = time.monotonic() + 15
        while net.client(name).status()["height"] <= block and time.monotonic() < deadline:
            time.sleep(0.1)
        served = net.client(name).blocks(block, 1)[0]
        tx = served["txs"][index]
        out.add((tx["valid"], tx["reason"]))
    return out


def _resign(envelope: bytes, key: PrivateKey, signer: str, **tx_changes: Any) -> bytes:
    """The envelope's transaction with ``tx_changes``, signed by ``key`` as ``signer``, even if the result is
    not a well-formed transaction (the signature shape stays right, so it is ordered and judged)."""
    tx = Envelope.from_bytes(envelope).tx.to_dict()
    tx.update(tx_changes)
    signature = key.sign(SIGNING_CONTEXT + encode(tx))
    sig = {"signer": signer, "key_id": key.key_id, "signature": base64.b64encode(signature).decode()}
    return encode({"tx": tx, "signatures": [sig]})


def test_every_peer_rejects_bad_transactions_with_the_same_reason(net: Net, stream: dict[str, Any]) -> None:
    p1, p2, p3 = (net.provinces[n] for n in ("110000", "310000", "440000"))
    batches: dict[str, list[Batch]] = stream["batches"]
    stranger = PrivateKey.generate()

    valid = p1.anchor(p1.make_batch(4))
    forged = Envelope.from_bytes(valid)
    bad_sig = Signature("110000", forged.tx.key_id, stranger.sign(forged.tx.signing_message()))
    cases: list[tuple[str, Callable[[], bytes], str]] = [
        ("forged signature", lambda: Envelope(forged.tx, (bad_sig,)).to_bytes(), "BAD_SIGNATURE"),
        (
            "unknown key",
            lambda: anchor_batch(
                net.config.network_id,
                issuer="110000",
                batch_seq=p1.next_batch_seq,
                root=sm3(b"x"),
                leaf_count=1,
                key=stranger,
                timestamp_ms=p1.now(),
            ),
            "UNKNOWN_KEY",
        ),
        ("wrong issuer", lambda: p1.change_status(batches["310000"][0], 0, "suspended"), "WRONG_ISSUER"),
        (
            "gapped batch_seq",
            lambda: p2.anchor(p2.make_batch(2), batch_seq=p2.next_batch_seq + 5),
            "BATCH_SEQ_GAP",
        ),
        (
            "batch_seq reused for another root",
            lambda: p2.anchor(p2.make_batch(3), batch_seq=0),
            "BATCH_SEQ_DUPLICATE",
        ),
        ("never-anchored license", lambda: _unanchored_status_change(net), "NOT_ANCHORED"),
        (
            "malformed args",
            lambda: _resign(valid, p1.key, "110000", args={"root": "00", "leaf_count": 0}),
            "MALFORMED_PAYLOAD",
        ),
    ]
    first = net.submit(valid, via="national")
    assert first["txs"][0]["valid"]
    # The same bytes again are the same ordered payload: the orderer returns the first position. Unless the peer
    # batched them with a concurrent submission (its own checkpoint cosignature, on a busy machine): that is
    # another payload, ordered, in which every peer refuses the transaction as the replay it is.
    again = net.submit(valid, via="440000")
    if again["position"] != first["position"]:
        assert _verdicts(net, again["block"], again["txs"][0]["index"]) == {(False, "BATCH_SEQ_REPLAY")}
    # Batched with another transaction the replay is ordered, and every peer refuses it.
    replay = net.client("440000", timeout=40).submit([cases[0][1](), valid], wait=True, timeout=30)
    assert _verdicts(net, replay["block"], replay["txs"][1]["index"]) == {(False, "BATCH_SEQ_REPLAY")}
    for what, make, expected in cases:
        envelope = make()
        result = net.submit(envelope, via="440000")
        verdicts = _verdicts(net, result["block"], result["txs"][0]["index"])
        assert len(verdicts) == 1, (what, verdicts)
        valid_flag, reason = verdicts.pop()
        assert not valid_flag, what
        assert reason == expected, (what, reason)

    # A retired key: 440000 rotates its key (national endorsement), then signs with the old one.
    assert net.national_key is not None
    new_key = PrivateKey.generate()
    rotation = rotate_key(
        net.config.network_id,
        member="440000",
        seq=1,
        old_key=p3.key,
        new_key=new_key,
        national_key=net.national_key,
        timestamp_ms=p3.now(),
    )
    assert net.submit(rotation, via="110000")["txs"][0]["valid"]
    stale = p3.anchor(p3.make_batch(2))
    result = net.submit(stale, via="110000")
    assert _verdicts(net, result["block"], 0) == {(False, "KEY_RETIRED")}
    p3.key = new_key
    p3.next_batch_seq -= 1  # the rejected anchor did not use its batch_seq
    assert net.submit(p3.anchor(p3.make_batch(2)), via="110000")["txs"][0]["valid"]

    # Bytes that are not even an envelope are refused before ordering.
    with pytest.raises(PeerRequestError) as refused:
        net.client("310000").submit([b"\x00not an envelope"])
    assert refused.value.status == 400


def _unanchored_status_change(net: Net) -> bytes:
    p = net.provinces["110000"]
    fake = p.make_batch(4)
    fake.batch_seq = 0  # claims to be in the anchored batch 0, but these leaves never were
    return p.change_status(fake, 1, "revoked")


def _final_checkpoint(net: Net, via: str, min_log_size: int, timeout: float = 40.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            record = decode(net.client(via).checkpoint())
        except PeerRequestError:
            record = None
        if record and record["final"] and record["fields"]["log_size"] >= min_log_size:
            return dict(record)
        time.sleep(0.3)
    raise AssertionError("no final checkpoint covering the stream")


def _query(client: PeerClient, function: str, *args: str) -> dict[str, Any]:
    _, raw = client.query(function, list(args))
    value = decode(raw)
    assert isinstance(value, dict)
    return value


def _verify_quorum(client: PeerClient, record: dict[str, Any]) -> None:
    """The checkpoint body is its fields, and a quorum of members whose keys the checkpoint's own membership
    root proves have cosigned it."""
    fields = record["fields"]
    body = checkpoint_body(record["network_id"], fields)
    assert body.decode() == record["body"]
    membership_root = bytes.fromhex(fields["membership_root"])
    good = set()
    for cosig in record["cosignatures"]:
        answer = _query(client, "GetMember", cosig["member"], str(record["seq"]))
        member = MemberRecord.from_dict(answer["record"])
        verify_sparse_proof(
            membership_root,
            member_key(member.name),
            member.record_hash(),
            SparseProof.from_dict(answer["proof"]),
        )
        key = member.key(cosig["key_id"])
        assert key is not None
        verify_cosignature(body, base64.b64decode(cosig["signature"]), key.public_key)
        good.add(member.name)
    assert len(good) >= record["quorum"]


def test_proofs_from_one_peer_verify_against_a_quorum_cosigned_checkpoint(net: Net, stream: dict[str, Any]) -> None:
    client = net.client("310000")
    first = _final_checkpoint(net, "310000", 1)
    anchored = sum(len(b) for b in stream["batches"].values())
    cp = _final_checkpoint(net, "310000", max(anchored, first["fields"]["log_size"] + 1))
    # fresh: duties are dated at the peers' clocks, so a verifier allowing 60 s of checkpoint age accepts it
    assert -5_000 < time.time_ns() // 1_000_000 - cp["fields"]["timestamp_ms"] < 60_000
    _verify_quorum(client, cp)
    _verify_quorum(client, first)
    fields = cp["fields"]
    log_size, log_root = fields["log_size"], bytes.fromhex(fields["log_root"])

    # Inclusion: a license leaf in its batch (local tree), the batch in the ledger-wide log (peer's proof).
    batch, leaf_index = stream["suspended"]
    answer = _query(client, "GetBatch", "110000", str(batch.batch_seq))
    proof = _query(client, "GetLogInclusionProof", str(answer["log_index"]), str(log_size))
    verify_inclusion(
        answer["log_index"],
        log_size,
        bytes.fromhex(answer["leaf_hash"]),
        [bytes.fromhex(h) for h in proof["inclusion_proof"]],
        log_root,
    )
    leaf = license_leaf_hash(batch.license_ids[leaf_index], 1, batch.commitments[leaf_index])
    verify_inclusion(leaf_index, batch.tree.size, leaf, batch.tree.inclusion_proof(leaf_index), batch.root)

    # Consistency between the two cosigned checkpoints.
    size1 = first["fields"]["log_size"]
    consistency = _query(client, "GetLogConsistencyProof", str(size1), str(log_size))
    verify_consistency(
        size1,
        log_size,
        [bytes.fromhex(h) for h in consistency["consistency_proof"]],
        bytes.fromhex(first["fields"]["log_root"]),
        log_root,
    )

    # Status: suspended, revoked, and a license that was never suspended or revoked (non-membership proof).
    status_root = bytes.fromhex(fields["status_root"])
    untouched = stream["batches"]["310000"][0].license_ids[1]
    cases = [
        (batch.license_ids[leaf_index], "suspended"),
        (stream["revoked"][0].license_ids[0], "revoked"),
        (untouched, "active"),
    ]
    for license_id, expected in cases:
        status = _query(client, "GetStatus", str(license_id), str(cp["seq"]))
        assert status["status"] == expected
        value_hash = None
        if status["record"] is not None:
            value_hash = sm3(encode(status["record"]))
            assert value_hash.hex() == status["value_hash"]
        verify_sparse_proof(
            status_root,
            status_tree_key(license_id.base),
            value_hash,
            SparseProof.from_dict(status["proof"]),
        )
    # A proof for the wrong status does not verify.
    status = _query(client, "GetStatus", str(untouched), str(cp["seq"]))
    with pytest.raises(Exception, match="mismatch"):
        verify_sparse_proof(
            status_root,
            status_tree_key(untouched.base),
            sm3(b"revoked"),
            SparseProof.from_dict(status["proof"]),
        )


class _LyingProxy:
    """A peer API on loopback that relays another peer but rewrites one served block."""

    def __init__(self, upstream: str, rewrite: Callable[[dict[str, Any]], None], target: int) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with urllib.request.urlopen(upstream + self.path, timeout=10) as resp:
                    body = resp.read()
                if self.path.startswith("/v1/blocks"):
                    doc = json.loads(body)
                    for block in doc["blocks"]:
                        if block["number"] == outer.target:
                            outer.rewrite(block)
                    body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.rewrite = rewrite
        self.target = target
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _new_peer(net: Net, path: Path) -> Peer:
    peer = Peer(BlockStore(f"sqlite:///{path}"), ExecutorChaincode(), net.config.genesis_envelope, name="newcomer")
    peer.open()
    return peer


def _first_anchor_block(net: Net) -> int:
    for block in net.all_blocks("national"):
        if block["number"] > 0 and block["txs"][0]["valid"]:
            payload = json.loads(base64.b64decode(block["payload"]))
            if Envelope.from_bytes(base64.b64decode(payload["txs"][0])).tx.type == "AnchorBatch":
                return int(block["number"])
    raise AssertionError("no anchor block")


def test_new_peer_bootstraps_from_a_peer_and_verifies_everything(
    net: Net, stream: dict[str, Any], tmp_path: Path
) -> None:
    height = net.wait_converged()
    source = net.client("national")
    peer = _new_peer(net, tmp_path / "new.sqlite")
    assert bootstrap(peer, source, cross_check=[net.client("110000")]) >= height
    served = Block.from_json(source.blocks(peer.height - 1, 1)[0])
    assert peer.tip_hash == served.block_hash
    digest = source.state_digest()
    if digest["height"] == peer.height:
        assert peer.state_digest()[1].hex() == digest["state_digest"]
    assert peer.query("GetLatestFinalCheckpoint", [])[1]


@pytest.mark.parametrize(
    "attack",
    ["payload byte flipped", "valid tx served as rejected, hashes recomputed", "block hash rewritten"],
)
def test_new_peer_rejects_a_peer_serving_a_tampered_block(
    net: Net, stream: dict[str, Any], tmp_path: Path, attack: str
) -> None:
    target = _first_anchor_block(net)

    def rewrite(block: dict[str, Any]) -> None:
        if attack == "payload byte flipped":
            raw = bytearray(base64.b64decode(block["payload"]))
            raw[len(raw) // 2] ^= 0x01
            block["payload"] = base64.b64encode(bytes(raw)).decode()
        elif attack == "block hash rewritten":
            block["block_hash"] = "00" * 32
        else:
            block["txs"][0].update(valid=False, reason="BAD_SIGNATURE", message="forged", writes={}, events=[])
            forged = Block.from_json(block)
            swh = state_writes_hash(forged.records)
            h = forged.header
            header = BlockHeader(h.number, h.prev_hash, h.data_hash, swh, h.timestamp)
            block["state_writes_hash"] = swh.hex()
            block["block_hash"] = header.hash().hex()

    proxy = _LyingProxy(net.config.member("national").http_url, rewrite, target)
    try:
        peer = _new_peer(net, tmp_path / "victim.sqlite")
        with pytest.raises(BlockMismatchError) as exc:
            bootstrap(peer, PeerClient(proxy.url))
        assert exc.value.number == target
        assert peer.height == target  # nothing from the lying block on was committed
    finally:
        proxy.close()


def test_follow_keeps_a_verifying_replica_and_drops_a_lying_source(
    net: Net, stream: dict[str, Any], tmp_path: Path
) -> None:
    """`licledger network follow`: an auditor's replica from the published network.json alone. The first source
    serves a tampered block: it is dropped with the evidence, nothing from that block on is kept from it, and
    the replica converges on the honest source's chain, serving the peer read API."""
    target = _first_anchor_block(net)

    def flip(block: dict[str, Any]) -> None:
        raw = bytearray(base64.b64decode(block["payload"]))
        raw[len(raw) // 2] ^= 0x01
        block["payload"] = base64.b64encode(bytes(raw)).decode()

    proxy = _LyingProxy(net.config.member("national").http_url, flip, target)
    [port] = free_loopback_ports(1)
    honest = net.config.member("110000").http_url
    argv = ["network", "follow", "--genesis", net.directory / "network.json", "--dir", tmp_path / "replica"]
    argv += ["--from", f"{proxy.url},{honest}", "--port", str(port), "--interval", "0.3"]
    log = tmp_path / "follow.log"
    exe = shutil.which("licledger")
    cmd = [exe] if exe else [sys.executable, "-c", "from node.cli import main; main()"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*cmd, *(str(a) for a in argv)], stdout=out, stderr=subprocess.STDOUT)
    replica = PeerClient(f"http://127.0.0.1:{port}")
    try:
        height = net.wait_converged()
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                status = replica.status()
                if status["height"] >= height and status["dropped_sources"]:
                    break
            except PeerRequestError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert status["role"] == "follower" and status["healthy"]
        [dropped] = status["dropped_sources"]
        assert dropped["source"] == proxy.url and f"block {target}" in dropped["error"], dropped
        number = status["height"] - 1
        ours = Block.from_json(replica.blocks(number, 1)[0])
        theirs = Block.from_json(net.client("110000").blocks(number, 1)[0])
        assert ours.block_hash == theirs.block_hash and ours.commit_hash == theirs.commit_hash
        assert _query(replica, "GetLatestFinalCheckpoint")  # proofs can be taken from the replica
        with pytest.raises(PeerRequestError):
            replica.submit([b"{}"])  # a replica orders nothing
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        proxy.close()
    assert "replica stopped at height" in log.read_text()


def _status_eventually(client: PeerClient, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.status()
        except PeerRequestError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_block_altered_on_disk_is_detected_and_not_served(net: Net, stream: dict[str, Any]) -> None:
    """Runs last in this module: it leaves member 440000 unhealthy."""
    victim = "440000"
    net.wait_converged()
    target = 3
    db = net.config.data_dir(victim) / "ledger.sqlite"
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute("UPDATE blocks SET payload = ? WHERE number = ?", (encode_payload([b"forged"]), target))
    client = net.client(victim)
    with pytest.raises(PeerRequestError) as exc:
        client.blocks(0, 10)
    assert exc.value.status == 503 and exc.value.body["block"] == target
    status = client.status()
    assert status["healthy"] is False and status["bad_block"] == target and f"block {target}" in status["problem"]
    assert client.blocks(0, target) and len(client.blocks(0, target)) == target  # the prefix is still served
    for other in ("110000", "national"):
        assert net.client(other).status()["healthy"]

    # After a restart the startup verification finds it too.
    net_down = licledger("network", "down", "--dir", net.directory)
    assert net_down.returncode == 0, net_down.stdout
    started = licledger("network", "up", "--dir", net.directory)
    assert started.returncode != 0 and "440000" in started.stderr
    status = _status_eventually(net.client(victim))
    assert status["healthy"] is False and status["bad_block"] == target
    with pytest.raises(PeerRequestError) as exc:
        net.client(victim).blocks(target, 1)
    assert exc.value.status == 503 and f"block {target}" in exc.value.body["detail"]
