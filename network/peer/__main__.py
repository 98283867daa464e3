"""One member process of a local network: Raft ordering node + peer + HTTP API, on loopback.

``python -m network.peer --dir DIR --member NAME`` (started detached by ``licledger network up``). It reads
``network.json``, decrypts the member's SM2 key with the KEK, opens (and verifies) the block store, joins the
Raft cluster with the network secret, and serves the API on 127.0.0.1 until SIGTERM, then shuts down in order:
API, checkpoint duty, commit loop, ordering node, store. Logs carry block numbers, hashes and counts only.
``LICLEDGER_CHECKPOINT_REFRESH_MS`` (default 10 minutes) and ``LICLEDGER_CHECKPOINT_TOLERANCE_MS`` (default 5
minutes) set the checkpoint heartbeat and the cosigners' time tolerance (:mod:`network.peer.checkpoints`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import uvicorn

from network.keyfile import KeyFile
from network.localnet import LOOPBACK, NetworkConfig, load_kek, load_member_key, load_raft_secret
from network.ordering import RaftOrdering
from network.peer.api import create_app
from network.peer.chaincode import ExecutorChaincode
from network.peer.checkpoints import (
    DEFAULT_REFRESH_MS,
    DEFAULT_TOLERANCE_MS,
    CheckpointDuty,
    member_key_problem,
    wall_clock_ms,
)
from network.peer.peer import Peer, PeerConfig
from network.peer.store import BlockStore

log = logging.getLogger("licledger.peer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m network.peer", description=__doc__)
    parser.add_argument("--dir", required=True, help="network directory (from `licledger network init`)")
    parser.add_argument("--member", required=True, help="member name (e.g. national, 110000)")
    parser.add_argument("--log-level", default=os.environ.get("LICLEDGER_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,  # an imported library may have configured the root logger (at DEBUG) already
    )
    config = NetworkConfig.load(args.dir)
    node = config.member(args.member)
    kek = load_kek(config)
    key = load_member_key(config, node.name, kek)
    data_dir = config.data_dir(node.name)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = BlockStore(config.db_url(node.name))
    ordering = RaftOrdering(
        node.raft_address,
        [m.raft_address for m in config.members if m.name != node.name],
        secret=load_raft_secret(config),
        journal_dir=data_dir / "raft",
    )
    chaincode = ExecutorChaincode()
    peer = Peer(store, chaincode, config.genesis_envelope, ordering=ordering, config=PeerConfig(), name=node.name)
    # The member's key file may be replaced by a rotation (`licledger node rotate-key submit --network-dir`): the
    # duties then sign with the new key as soon as this peer's membership state lists it as valid.
    key_file = KeyFile(
        config.key_file(node.name),
        kek,
        key,
        accept=lambda k: member_key_problem(peer, node.name, k.key_id, wall_clock_ms()),
    )
    duty = CheckpointDuty(
        peer,
        member=node.name,
        key=key_file,
        network_id=config.network_id,
        interval=config.checkpoint_interval,
        proposers=[m.name for m in config.members],
        refresh_ms=int(os.environ.get("LICLEDGER_CHECKPOINT_REFRESH_MS", DEFAULT_REFRESH_MS)),
        tolerance_ms=int(os.environ.get("LICLEDGER_CHECKPOINT_TOLERANCE_MS", DEFAULT_TOLERANCE_MS)),
    )
    try:
        peer.open()
        if key.key_id != node.key_id:  # network.json names the genesis key; a rotation may have replaced it
            problem = member_key_problem(peer, node.name, key.key_id)
            if problem is not None:  # wrong key file, or this peer is behind the rotation: it catches up first
                log.warning(
                    "%s: key %s is not the configured key %s and %s; its checkpoint duties are rejected until "
                    "the ledger lists it",
                    node.name,
                    key.key_id,
                    node.key_id,
                    problem,
                )
        peer.add_commit_hook(duty.on_block)
        duty.start()
        peer.start()
        log.info("%s: serving on %s:%d (raft %s)", node.name, LOOPBACK, node.http_port, node.raft_address)
        app = create_app(peer, member=node.name)
        server = uvicorn.Server(
            uvicorn.Config(app, host=LOOPBACK, port=node.http_port, log_level="warning", access_log=False)
        )
        # uvicorn re-raises the SIGTERM it handled once it has shut down; with the default handler that would end
        # the process before the orderly shutdown below, so SIGTERM's own handler does nothing here.
        signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
        server.run()
    finally:
        log.info("%s: stopping", node.name)
        duty.stop()
        peer.stop()
        ordering.close()
        store.close()
        log.info("%s: stopped at height %d", node.name, peer.height)
    return 0


if __name__ == "__main__":
    sys.exit(main())
