"""A verifying replica of the ledger for auditors and verifiers: ``licledger network follow``.

Anyone holding the network's genesis (the ``network.json`` a consortium publishes, or its genesis envelope) can
keep a full copy of the ledger without being a member and without trusting the members' peers: the follower is
a :class:`~network.peer.peer.Peer` without an ordering service that pulls blocks from one or more member peers
over their HTTP API and **re-executes every block** on its own state before committing it
(:mod:`network.peer.bootstrap`, rules 1-4: every SM2 signature, key validity, sequence number and checkpoint
cosignature is checked again by the license-registry contract). It serves the same read API as a member peer
(``/v1/status``, ``/v1/blocks``, ``/v1/query/...``), so proofs can be taken from a replica the auditor verified
itself; it cannot submit transactions.

Rules:

1. Sources are tried in order. A source that cannot be reached is skipped for this round.
2. A source that serves a block differing from its re-execution, or a history that another source contradicts
   at the same height (rule 4 of bootstrap, cross-checked against the other sources), is **dropped** for good:
   the evidence (block number, field, served and computed values) is logged, kept in
   :attr:`MultiSourceFollower.dropped` and shown in ``/v1/status``; nothing it served from that block on was
   committed.
3. The store is verified at start like any peer's (an altered block is detected and named); a follower whose
   store fails verification serves nothing as valid.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import LicledgerError
from network.peer.bootstrap import bootstrap
from network.peer.client import PeerClient, PeerRequestError
from network.peer.peer import Peer

__all__ = ["Dropped", "MultiSourceFollower", "genesis_from_file"]

log = logging.getLogger("licledger.follow")


def genesis_from_file(data: bytes) -> bytes:
    """The genesis envelope from a ``network.json`` (its ``genesis_envelope``) or from the envelope itself."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"the genesis file is neither network.json nor a genesis envelope: {exc}") from None
    if isinstance(value, dict) and "genesis_envelope" in value:
        try:
            return base64.b64decode(value["genesis_envelope"], validate=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"network.json has a malformed genesis_envelope: {exc}") from None
    if isinstance(value, dict) and "tx" in value and "signatures" in value:
        return bytes(data).strip()
    raise ValueError("the genesis file is neither network.json (genesis_envelope) nor a genesis envelope (tx)")


@dataclass(frozen=True)
class Dropped:
    """A source that served a history this follower's re-execution (or another source) contradicts."""

    source: str
    error: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "error": self.error}


@dataclass
class MultiSourceFollower:
    """Keeps ``peer`` (no ordering service) up to date from ``sources``, dropping those that lie (rule 2)."""

    peer: Peer
    sources: Sequence[PeerClient]
    interval: float = 1.0
    dropped: list[Dropped] = field(default_factory=list)
    last_source: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def live_sources(self) -> list[PeerClient]:
        gone = {d.source for d in self.dropped}
        return [s for s in self.sources if s.base_url not in gone]

    def round(self) -> int:
        """One pass over the sources (rule 1); returns the height reached."""
        for source in self.live_sources():
            others = [s for s in self.live_sources() if s is not source]
            try:
                bootstrap(self.peer, source, cross_check=others)
            except PeerRequestError as exc:
                log.warning("source %s unavailable: %s", source.base_url, exc)
                continue
            except (LicledgerError, ValueError) as exc:  # rule 2: a lying (or contradicted) source
                self.dropped.append(Dropped(source.base_url, str(exc)))
                log.error("dropped source %s: %s", source.base_url, exc)
                continue
            self.last_source = source.base_url
            break
        return self.peer.height

    def status(self) -> dict[str, Any]:
        return {
            "role": "follower",
            "sources": [s.base_url for s in self.sources],
            "last_source": self.last_source,
            "dropped_sources": [d.to_json() for d in self.dropped],
        }

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.round()
            except Exception:  # keep following; the store itself refuses anything unverified
                log.exception("follower round failed")
            if not self.live_sources():
                log.error("every source was dropped; the replica stays at height %d", self.peer.height)
            self._stop.wait(self.interval)
