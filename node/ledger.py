"""The node's client of the shared ledger: one or more peers of the embedded network, with failover.

The node talks to peers over their HTTP API (docs/network.md, :class:`network.peer.client.PeerClient`). It
transports and classifies; it trusts nothing it is told beyond "this transaction was committed in block n"
(the node's own outbox keeps what it signed, and :mod:`sync.reconcile` compares the two), and it serves
ledger answers to verifiers only inside proof bundles, which they check against quorum-cosigned checkpoints.

Rules, before any code:

1. **Failover.** Peers are tried in order starting from the last one that answered. A peer that does not
   answer, or answers 503 (orderer unavailable, peer unhealthy), is skipped for the next; when every peer
   failed, :class:`LedgerUnavailableError` (transport) is raised. Any other error status is the ledger's
   verdict on the request and is not retried elsewhere (:class:`LedgerRequestError`).
2. **Submitting is safe to repeat.** ``submit`` orders envelopes and waits for their block. Resubmitting the
   same envelope (after a timeout, on another peer, after a crash) can never apply it twice: the orderer
   de-duplicates identical payloads and the contract refuses a replay (``BATCH_SEQ_REPLAY``,
   ``STATUS_SEQ_REPLAY``, ``DUPLICATE_TXID``); :meth:`LedgerClient.committed` then tells where the first,
   valid copy landed.
3. **Who signs.** The node signs ledger transactions with its province's member key, the same SM2 key
   (GB/T 32918) that seals its licenses, so a verifier finds the seal key in the issuer's member record
   (docs/node.md, "Joining the network"). :meth:`LedgerClient.check_member` refuses to work with a key or an
   issuing authority that the ledger's membership does not list.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.consortium import MemberRecord
from core.errors import FormatError, LicledgerError, VerificationError
from network.peer.client import PeerClient, PeerRequestError

QUERY_NOT_FOUND = "NOT_FOUND"


class LedgerUnavailableError(LicledgerError):
    """No peer answered (or every peer answered 503). Retrying later is safe. ``failures`` names each peer's
    problem."""

    def __init__(self, failures: Sequence[str]) -> None:
        self.failures = tuple(failures)
        super().__init__("no ledger peer reachable: " + "; ".join(self.failures))


class LedgerRequestError(LicledgerError):
    """A peer refused a request (400, 404, 422): not a transport problem, so not retried on another peer."""

    def __init__(self, status: int | None, reason: str | None, detail: str) -> None:
        self.status = status
        self.reason = reason
        self.detail = detail
        super().__init__(f"ledger refused the request (HTTP {status}, {reason or 'no reason'}): {detail}")


class MembershipError(VerificationError):
    """The node's key or issuing authority is not what the ledger's membership lists for its province."""

    def __init__(self, message: str, *, member: str, key_id: str, listed: Sequence[str]) -> None:
        self.member = member
        self.key_id = key_id
        self.listed = tuple(listed)
        super().__init__(f"{message} (member {member}, node key {key_id}, listed {list(self.listed)})")


@dataclass(frozen=True, slots=True)
class Committed:
    """Where one transaction ended up: its block and index, and the contract's verdict."""

    tx_id: str
    block: int
    index: int
    """The position in the block; -1 where it is not known (refused before ordering, or on Fabric where the
    commit status names only the block)."""
    valid: bool
    reason: str | None
    message: str | None

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Committed:
        return cls(
            str(value["tx_id"]),
            int(value["block"]),
            int(value["index"]),
            bool(value["valid"]),
            value.get("reason"),
            value.get("message"),
        )


class Ledger(ABC):
    """The ledger as the node sees it, whatever runs it: the embedded network (:class:`LedgerClient`) or
    Hyperledger Fabric (:class:`node.fabric_ledger.FabricLedger`). ``network_id`` is the SM3 of its genesis."""

    network_id: str

    @abstractmethod
    def submit(self, envelopes: Sequence[bytes], *, timeout: float | None = None) -> list[Committed]:
        """Order ``envelopes`` and wait for them; one :class:`Committed` each, in order (rule 2)."""

    @abstractmethod
    def committed(self, tx_id: str) -> Committed | None:
        """The first committed record of ``tx_id`` (the valid one, for a replayed transaction), or ``None``."""

    @abstractmethod
    def query(self, function: str, *args: str) -> Any:
        """A contract query's JSON answer (docs/chaincode.md, "Queries"); ``None`` when it answers NOT_FOUND."""

    def latest_final_checkpoint(self) -> dict[str, Any] | None:
        """``GetLatestFinalCheckpoint``: the newest quorum-cosigned checkpoint with its note, or ``None``."""
        answer = self.query("GetLatestFinalCheckpoint")
        if answer is None or not answer.get("final") or not answer.get("note"):
            return None
        result: dict[str, Any] = answer
        return result

    def member(self, name: str) -> MemberRecord | None:
        """The member's current record (``GetMember`` at the newest state), parsed."""
        answer = self.query("GetMember", name, "")
        if answer is None or answer.get("record") is None:
            return None
        try:
            return MemberRecord.from_dict(answer["record"])
        except FormatError as exc:
            raise LedgerRequestError(None, "MALFORMED_ANSWER", f"GetMember {name}: {exc}") from None

    def check_member(self, name: str, key_id: str, authority_uscc: str, at_ms: int) -> MemberRecord:
        """Rule 3: ``key_id`` is a key of member ``name`` valid at ``at_ms`` and ``authority_uscc`` one of its
        issuers; :class:`MembershipError` otherwise."""
        record = self.member(name)
        if record is None:
            raise MembershipError("the ledger has no such member", member=name, key_id=key_id, listed=[])
        key = record.key(key_id)
        listed = [k.key_id for k in record.keys]
        if key is None:
            raise MembershipError(
                "the node's signing key is not a key of its member", member=name, key_id=key_id, listed=listed
            )
        if not key.valid_at(at_ms):
            raise MembershipError(
                "the node's signing key is not valid now (retired or not yet valid)",
                member=name,
                key_id=key_id,
                listed=listed,
            )
        if authority_uscc not in record.issuers:
            raise MembershipError(
                f"the issuing authority {authority_uscc} is not one of the member's issuers",
                member=name,
                key_id=key_id,
                listed=list(record.issuers),
            )
        return record


class Preference:
    """Which of ``count`` equivalent endpoints to ask first: the one that answered last (thread-safe). Both
    backends fail over with it: the embedded ledger's peers and Fabric's gateways."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("at least one endpoint is needed")
        self.count = count
        self._current = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> int:
        with self._lock:
            return self._current

    def order(self) -> list[int]:
        """Every index, starting from the one that answered last."""
        first = self.current
        return [(first + i) % self.count for i in range(self.count)]

    def answered(self, index: int) -> None:
        with self._lock:
            self._current = index


class LedgerClient(Ledger):
    """The embedded ledger as the node sees it: ``urls`` of peers of one network (``network_id``), in preference order.

    Thread-safe: the web app's request threads and the anchoring job share one client.
    """

    def __init__(self, urls: Sequence[str], network_id: str, *, timeout: float = 30.0) -> None:
        if not urls:
            raise ValueError("at least one peer URL is needed")
        if len(network_id) != 64:
            raise ValueError("network_id must be the 64-hex-digit SM3 of the genesis")
        self.peers = [PeerClient(u, timeout=timeout) for u in urls]
        self.network_id = network_id
        self.timeout = timeout
        self._preference = Preference(len(self.peers))

    @property
    def urls(self) -> list[str]:
        return [p.base_url for p in self.peers]

    # --- failover (rule 1) ---

    def _call(self, what: str, fn: Any) -> Any:
        failures = []
        for i in self._preference.order():
            peer = self.peers[i]
            try:
                result = fn(peer)
            except PeerRequestError as exc:
                if exc.status is None or exc.status == 503:
                    failures.append(f"{peer.base_url}: {'no answer' if exc.status is None else 'HTTP 503'}")
                    continue
                body = exc.body if isinstance(exc.body, dict) else {}
                raise LedgerRequestError(exc.status, body.get("reason"), str(body.get("detail", exc.body))) from None
            except (ValueError, KeyError, TypeError) as exc:  # an answer that is not the API's JSON
                failures.append(f"{peer.base_url}: malformed answer to {what}: {type(exc).__name__}")
                continue
            self._preference.answered(i)
            return result
        raise LedgerUnavailableError(failures)

    # --- transactions (rule 2) ---

    def submit(self, envelopes: Sequence[bytes], *, timeout: float | None = None) -> list[Committed]:
        """Order ``envelopes`` together and wait for their block; one :class:`Committed` each, in order."""
        wait = timeout if timeout is not None else self.timeout

        def go(peer: PeerClient) -> list[Committed]:
            answer = peer.submit(envelopes, wait=True, timeout=wait)
            txs = answer["txs"]
            if len(txs) != len(envelopes):
                raise ValueError("verdict count differs from envelope count")
            return [Committed.from_json(t) for t in txs]

        result: list[Committed] = self._call("submit", go)
        return result

    def committed(self, tx_id: str) -> Committed | None:
        """The first committed record of ``tx_id`` (the valid one, for a replayed transaction), or ``None``."""

        def go(peer: PeerClient) -> Committed | None:
            try:
                return Committed.from_json(peer.get_json(f"/v1/transactions/{tx_id}"))
            except PeerRequestError as exc:
                if exc.status == 404:
                    return None
                raise

        result: Committed | None = self._call("transaction status", go)
        return result

    # --- queries ---

    def query(self, function: str, *args: str) -> Any:
        """A contract query's JSON answer (docs/chaincode.md, "Queries"); ``None`` when it answers NOT_FOUND."""

        def go(peer: PeerClient) -> Any:
            try:
                _, raw = peer.query(function, list(args))
            except PeerRequestError as exc:
                if exc.status == 404 and isinstance(exc.body, dict) and exc.body.get("reason") == QUERY_NOT_FOUND:
                    return None
                raise
            return json.loads(raw)

        return self._call(function, go)
