"""The node's ledger on Hyperledger Fabric: :class:`node.ledger.Ledger` over a peer's Gateway service.

The node works the same on either backend (node.ledger, rules 1-3); this module maps the three operations onto
Fabric (network.fabric_gateway) so that the anchoring job, proofs, reconciliation and key rotation run unchanged.
Rules:

1. **One envelope, one Fabric transaction id per attempt.** Each licledger envelope is proposed with the nonce
   ``"licledger/" || tx_id || attempt`` (tx_id: the envelope's SM3 transaction id, 32 bytes; attempt: one byte)
   and the envelope's own timestamp as the proposal time (the contract requires the two to agree within its
   skew, chaincode.contract step 2, so an envelope resubmitted an hour later is still acceptable). The Fabric
   transaction id ``SHA-256(nonce || creator)`` is therefore a function of the envelope, the node's Fabric
   identity and the attempt: resubmitting after a lost answer is Fabric's duplicate, which Fabric refuses, and
   the verdict is the first commit, found where it landed (applied once, as on the embedded ledger); and
   :meth:`FabricLedger.committed` finds an envelope's transaction without any index of its own (``qscc``
   ``GetBlockByTxID`` for attempts 0, 1, ... until one is missing).
2. **What Fabric refuses.** The contract refuses a bad envelope during endorsement: nothing reaches a block, and
   the verdict is ``valid=False`` with the contract's reason and ``block = index = -1``. A transaction that
   reaches a block invalid for Fabric's own reasons (``MVCC_READ_CONFLICT``: another province's transaction in
   the same block wrote the shared log keys, docs/chaincode.md) is resubmitted as the next attempt, at most
   :data:`MAX_ATTEMPTS` times; any other code is the verdict (``reason`` = the validation code).
3. **Position.** A transaction committed through :meth:`FabricLedger.submit` is reported with its block and
   ``index = -1``: Fabric's ``CommitStatus`` names the block but not the position in it, and the node uses only
   the block (looking the transaction up in its block after every commit cost a ``qscc`` round trip that reads
   the whole block). :meth:`FabricLedger.committed` reads the block and reports the position too.
4. **Transport.** When no gateway answers, :class:`~node.ledger.LedgerUnavailableError` naming each (retry
   later; rule 2 of node.ledger makes that safe); a refused query is :class:`~node.ledger.LedgerRequestError`
   with the contract's reason, and ``NOT_FOUND`` is ``None``.
5. **Several gateways** (``LICLEDGER_FABRIC_GATEWAY=a:7051,b:7051``: the organisation's peers, for
   availability) are tried in order from the one that answered last; only an unavailable gateway
   (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``) sends the same call to the next, since a refusal is the channel's
   answer whichever peer gives it. A submission moves on with the *same* attempt, so its Fabric transaction id
   is unchanged (rule 1): if the first gateway had it ordered after all, the second's copy is Fabric's
   duplicate (refused at endorsement, or ``DUPLICATE_TXID`` in a later block) and the verdict is the first
   copy, found in its block.

The node's Fabric identity (an MSP's certificate and ECDSA key, as Fabric's CA or cryptogen issue them) only
gets the transaction onto Fabric; what the ledger accepts is decided by the SM2 signatures inside the envelope.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from core.transactions import Envelope
from network.fabric_gateway import (
    FabricCommit,
    FabricCommitError,
    FabricGateway,
    FabricGatewayError,
    FabricUnavailableError,
)
from node.ledger import (
    QUERY_NOT_FOUND,
    Committed,
    Ledger,
    LedgerRequestError,
    LedgerUnavailableError,
    Preference,
)

__all__ = ["MAX_ATTEMPTS", "FabricLedger", "fabric_nonce"]

MAX_ATTEMPTS = 8
RESUBMIT = frozenset({"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT"})
_NONCE_PREFIX = b"licledger/"
T = TypeVar("T")


def fabric_nonce(tx_id: str, attempt: int) -> bytes:
    """Rule 1: the proposal nonce of envelope ``tx_id`` (64 hex digits) at ``attempt``."""
    if not 0 <= attempt < MAX_ATTEMPTS:
        raise ValueError(f"attempt must be in 0..{MAX_ATTEMPTS - 1}")
    return _NONCE_PREFIX + bytes.fromhex(tx_id) + bytes([attempt])


class FabricLedger(Ledger):
    """The ledger on Fabric through ``gateways`` (one or more peers' Gateway services, in preference order, all
    for the same channel, chaincode and identity), for network ``network_id``.

    Thread-safe: submissions are serialised (one at a time, as each waits for its block), queries are not.
    """

    def __init__(self, gateways: FabricGateway | Sequence[FabricGateway], network_id: str) -> None:
        if len(network_id) != 64:
            raise ValueError("network_id must be the 64-hex-digit SM3 of the genesis")
        self.gateways = [gateways] if isinstance(gateways, FabricGateway) else list(gateways)
        if not self.gateways:
            raise ValueError("at least one Fabric gateway is needed")
        if len({(g.identity.msp_id, g.identity.certificate_pem) for g in self.gateways}) != 1:
            raise ValueError("every gateway must use the same Fabric identity (rule 1: the transaction ids)")
        self.network_id = network_id
        self._submitting = threading.Lock()
        self._preference = Preference(len(self.gateways))

    @property
    def gateway(self) -> FabricGateway:
        """The gateway answering now (the last one that did)."""
        return self.gateways[self._preference.current]

    def _call(self, what: str, call: Callable[[FabricGateway], T]) -> T:
        """Rule 5: ``call`` on the preferred gateway, then on the others while a gateway is unavailable."""
        failures: list[str] = []
        for i in self._preference.order():
            gateway = self.gateways[i]
            try:
                result = call(gateway)
            except FabricUnavailableError as exc:
                failures.append(f"Fabric gateway {gateway.endpoint} ({what}): {exc}")
                continue
            self._preference.answered(i)
            return result
        raise LedgerUnavailableError(failures)

    # --- rule 1 and 2 ---

    def submit(self, envelopes: Sequence[bytes], *, timeout: float | None = None) -> list[Committed]:
        with self._submitting:
            return [self._submit_one(e, timeout) for e in envelopes]

    def _submit_one(self, envelope: bytes, timeout: float | None) -> Committed:
        parsed = Envelope.from_bytes(envelope)
        tx_id = parsed.tx_id
        text = envelope.decode("utf-8")
        for attempt in range(MAX_ATTEMPTS):
            nonce = fabric_nonce(tx_id, attempt)

            def submit(gw: FabricGateway, nonce: bytes = nonce) -> FabricCommit:
                return gw.submit("Submit", text, timeout=timeout, nonce=nonce, timestamp_ms=parsed.tx.timestamp_ms)

            try:
                commit = self._call("submit", submit)
            except FabricCommitError as exc:
                if exc.validation_code == "DUPLICATE_TXID":
                    # rule 5: another gateway was given this very attempt before failing over, and it landed first
                    found = self._attempt(tx_id, attempt)
                    if found is not None and (found.valid or found.reason not in RESUBMIT):
                        return found
                if exc.validation_code in RESUBMIT and attempt + 1 < MAX_ATTEMPTS:
                    continue
                return Committed(tx_id, exc.block_number, -1, False, exc.validation_code, str(exc))
            except FabricGatewayError as exc:
                if exc.reason is None and "duplicate" in str(exc).lower():
                    # this very attempt is on the ledger already (a lost answer): report where it landed
                    found = self._attempt(tx_id, attempt)
                    if found is not None:
                        if found.valid or found.reason not in RESUBMIT:
                            return found
                        continue
                if exc.reason is None:
                    raise LedgerRequestError(None, None, str(exc)) from None
                return Committed(tx_id, -1, -1, False, exc.reason, str(exc))
            # rule 3: Fabric's commit status names the block, not the position in it
            return Committed(tx_id, commit.block_number, -1, True, None, None)
        raise LedgerRequestError(None, "MVCC_READ_CONFLICT", f"{tx_id}: conflicted in {MAX_ATTEMPTS} attempts")

    def _attempt(self, tx_id: str, attempt: int) -> Committed | None:
        nonce = fabric_nonce(tx_id, attempt)
        fabric_tx = self.gateways[0].transaction_id(nonce)  # the same on every gateway: one identity
        try:
            found = self._call("find transaction", lambda gw: gw.find_transaction(fabric_tx))
        except FabricGatewayError as exc:
            raise LedgerRequestError(None, exc.reason, str(exc)) from None
        if found is None:
            return None
        valid = found.validation_code == "VALID"
        return Committed(
            tx_id,
            found.block_number,
            found.index,
            valid,
            None if valid else found.validation_code,
            None if valid else f"Fabric marked transaction {fabric_tx} {found.validation_code}",
        )

    def committed(self, tx_id: str) -> Committed | None:
        first_invalid = None
        for attempt in range(MAX_ATTEMPTS):
            found = self._attempt(tx_id, attempt)
            if found is None:
                break
            if found.valid:
                return found
            first_invalid = first_invalid or found
        return first_invalid

    # --- rule 4 ---

    def query(self, function: str, *args: str) -> Any:
        try:
            raw = self._call(function, lambda gw: gw.evaluate(function, *args))
        except FabricGatewayError as exc:
            if exc.reason == QUERY_NOT_FOUND:
                return None
            raise LedgerRequestError(None, exc.reason, str(exc)) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise LedgerUnavailableError([f"Fabric gateway: malformed answer to {function}"]) from None
