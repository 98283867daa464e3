"""The peer: forms, validates and commits blocks from the ordered stream, and serves what it can vouch for.

Rules (after Hyperledger Fabric's committing peer, ``core/committer`` and ``core/ledger/kvledger``):

1. **Source of truth.** The peer's own store (:mod:`network.peer.store`) is the ledger. The ordering service
   only supplies the order of opaque payloads; the payload at position ``p`` becomes block ``p + 1``, block 0
   being the genesis transaction of the network configuration (:mod:`network.peer.blocks`).
2. **Validation.** Every transaction of a block goes through the executor, in payload order, against the
   committed state plus the writes of the block's earlier valid transactions. An invalid transaction is
   recorded with its reason and its writes are discarded. A valid transaction whose ``tx_id`` was already
   committed as valid is invalidated (``DUPLICATE_TXID``). The peer's clock never influences a block.
3. **Atomic commit.** One database transaction per block (:meth:`BlockStore.commit_block`).
4. **Startup verification.** Before serving or committing, the peer recomputes the whole stored hash chain and
   re-derives the world state from the recorded writes. It remembers the hashes it verified or computed
   itself: every block it serves is re-read and re-hashed against them, and the newest stored blocks are
   compared with the ordered stream once the orderer has them.
5. **Tamper response.** A block or state found altered makes the peer unhealthy: it stops committing, and
   every endpoint that would serve the altered block (or state derived after it) raises
   :class:`PeerUnhealthyError` naming the block.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy.exc

from core.hashing import sm3
from network.errors import OrderingUnavailableError
from network.ordering import OrderingService
from network.peer.blocks import Block, TxRecord, decode_payload, encode_payload
from network.peer.errors import BlockIntegrityError, PeerUnhealthyError
from network.peer.state import PendingState, StateReader
from network.peer.store import BlockStore, StateIntegrityError

log = logging.getLogger("licledger.peer")

DUPLICATE_TXID = "DUPLICATE_TXID"
EXECUTION_ERROR = "EXECUTION_ERROR"


class ExecutionOutcome(Protocol):
    """The fields of ``network.executor.TxResult`` the peer records."""

    tx_id: str
    valid: bool
    reason: str | None
    message: str | None
    writes: dict[str, bytes | None]
    events: list[dict[str, Any]]


class Chaincode(Protocol):
    """The deterministic executor the peer runs every transaction through (``network.executor``)."""

    def execute(self, state: StateReader, envelope: bytes) -> ExecutionOutcome: ...

    def evaluate(self, state: StateReader, function: str, args: list[str]) -> bytes: ...

    def tx_time(self, envelope: bytes) -> int | None: ...

    def tx_id(self, envelope: bytes) -> str: ...

    def precheck(self, envelope: bytes) -> None: ...

    def describe(self, raw: bytes) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """Tunables of one peer."""

    read_batch: int = 64
    """Ordered payloads read (and blocks committed) per loop iteration."""
    max_batch: int = 2000
    """Most envelopes one submitted payload carries (client-side batching of concurrent submissions)."""
    appenders: int = 2
    """Payloads in flight to the orderer at once."""
    append_timeout: float = 10.0
    audit_interval: float = 0.0
    """Seconds between full re-verifications of the stored chain while idle (0 = only at startup)."""
    max_future_ms: int = 5 * 60 * 1000
    """Admission: a submitted transaction dated more than this ahead of the peer's clock is not ordered (it would
    hold back checkpoints until real time reaches it; docs/network.md, "Duty time"). 0 turns the check off."""


_PAYLOAD_OVERHEAD = 64
"""Bytes of an ordered payload besides its base64 envelopes (blocks.encode_payload's JSON frame), rounded up."""


def _payload_size(envelopes: list[bytes]) -> int:
    """An upper bound on ``len(encode_payload(envelopes))`` without building it: base64 plus quotes and commas."""
    return _PAYLOAD_OVERHEAD + sum(4 * ((len(e) + 2) // 3) + 3 for e in envelopes)


@dataclass
class _Submission:
    envelopes: list[bytes]
    done: threading.Event = field(default_factory=threading.Event)
    position: int | None = None
    offset: int = 0
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class TxStatus:
    """Where a submitted transaction ended up."""

    tx_id: str
    block: int
    index: int
    valid: bool
    reason: str | None
    message: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "tx_id": self.tx_id,
            "block": self.block,
            "index": self.index,
            "valid": self.valid,
            "reason": self.reason,
            "message": self.message,
        }


CommitHook = Callable[[Block], None]


class Peer:
    """One peer: its store, its view of the ordered stream, and the threads that commit and submit."""

    def __init__(
        self,
        store: BlockStore,
        chaincode: Chaincode,
        genesis_envelope: bytes,
        *,
        ordering: OrderingService | None = None,
        config: PeerConfig | None = None,
        name: str = "peer",
    ) -> None:
        self.store = store
        self.chaincode = chaincode
        self.ordering = ordering
        self.config = config or PeerConfig()
        self.name = name
        self.genesis_envelope = bytes(genesis_envelope)
        self.genesis_payload = encode_payload([self.genesis_envelope])
        self._chain: list[tuple[bytes, bytes]] = []
        self._tip_timestamp = 0
        self._lock = threading.RLock()
        self._committed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._submissions: queue.Queue[_Submission] = queue.Queue()
        self._hooks: list[CommitHook] = []
        self.problem: str | None = None
        self.bad_block: int | None = None
        self._tip_crosschecked = ordering is None
        self._started = False
        self._last_audit = time.monotonic()

    # --- lifecycle
    # ---------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Verify the stored chain and state (rule 4); commit block 0 if the store is empty."""
        self.store.bind_network(sm3(self.genesis_payload))
        check = self.store.verify_chain()
        with self._lock:
            self._chain = list(check.hashes)
        if check.failure is not None:
            self._mark_unhealthy(check.failure)
            return
        if self._chain:
            self._tip_timestamp = self.store.read_blocks(len(self._chain) - 1, 1)[0].header.timestamp
            try:
                self.store.verify_state()
            except StateIntegrityError as exc:
                self._mark_unhealthy(exc)
                return
            genesis = self.store.read_blocks(0, 1)[0]
            if genesis.payload != self.genesis_payload:
                self._mark_unhealthy(
                    BlockIntegrityError(0, "genesis payload", sm3(self.genesis_payload), sm3(genesis.payload))
                )
                return
        else:
            self.commit_payload(0, self.genesis_payload)
        log.info("%s: store verified, height %d, tip %s", self.name, self.height, self.tip_hash.hex())

    def start(self) -> None:
        """Start the commit loop and, with an ordering service, the submission threads."""
        if self._started:
            raise ValueError("peer already started")
        self._started = True
        threads = [threading.Thread(target=self._commit_loop, name=f"{self.name}-commit", daemon=True)]
        if self.ordering is not None:
            for i in range(self.config.appenders):
                threads.append(threading.Thread(target=self._append_loop, name=f"{self.name}-append{i}", daemon=True))
        self._threads = threads
        for t in threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._committed:
            self._committed.notify_all()
        for t in self._threads:
            t.join(timeout)

    def add_commit_hook(self, hook: CommitHook) -> None:
        """Call ``hook(block)`` after each block commits (from the commit thread; hooks must not block
        long)."""
        self._hooks.append(hook)

    # --- state of the peer
    # ---------------------------------------------------------------------------------------

    @property
    def height(self) -> int:
        with self._lock:
            return len(self._chain)

    @property
    def tip_hash(self) -> bytes:
        with self._lock:
            return self._chain[-1][0] if self._chain else bytes(32)

    @property
    def commit_hash(self) -> bytes:
        with self._lock:
            return self._chain[-1][1] if self._chain else bytes(32)

    @property
    def healthy(self) -> bool:
        return self.problem is None

    def _mark_unhealthy(self, exc: BlockIntegrityError) -> None:
        with self._lock:
            if self.bad_block is None or exc.number < self.bad_block:
                self.bad_block = exc.number
                self.problem = str(exc)
            # Nothing from the altered block on can be vouched for.
            del self._chain[self.bad_block :]
            self._committed.notify_all()
        log.error("%s: UNHEALTHY: %s", self.name, self.problem)

    def _require_healthy(self) -> None:
        if self.problem is not None:
            raise PeerUnhealthyError(f"peer is unhealthy: {self.problem}", block=self.bad_block)

    # --- committing
    # ----------------------------------------------------------------------------------------------

    def form_block(self, number: int, payload: bytes) -> Block:
        """Execute ``payload`` as block ``number`` on top of the committed state (rules 1-2), without storing
        it."""
        with self._lock:
            if number != len(self._chain):
                raise ValueError(f"block {number} does not extend height {len(self._chain)}")
            prev_hash, prev_commit = self._chain[-1] if self._chain else (bytes(32), bytes(32))
            prev_ts = self._tip_timestamp
        envelopes = decode_payload(payload)
        records: list[TxRecord] = []
        times: list[int] = []
        with self.store.snapshot() as committed:
            # Rule 2: a tx_id already committed as valid is a duplicate (Fabric's duplicate-txid check).
            seen = committed.valid_tx_ids(sorted({self.chaincode.tx_id(e) for e in envelopes}))
            pending = PendingState(committed)
            for envelope in envelopes:
                records.append(self._execute_one(pending, envelope, seen, times))
        return Block.build(
            number=number,
            prev_hash=prev_hash,
            prev_commit_hash=prev_commit,
            prev_timestamp=prev_ts,
            payload=payload,
            records=records,
            valid_tx_times=times,
        )

    def _execute_one(self, pending: PendingState, envelope: bytes, seen: set[str], times: list[int]) -> TxRecord:
        try:
            result = self.chaincode.execute(pending, envelope)
        except sqlalchemy.exc.SQLAlchemyError:
            raise  # the store failed, not the transaction: never record that as a verdict
        except Exception as exc:  # a deterministic executor fault is a deterministic rejection
            return TxRecord(self.chaincode.tx_id(envelope), False, EXECUTION_ERROR, type(exc).__name__)
        if not result.valid:
            return TxRecord(result.tx_id, False, result.reason or "INVALID", result.message)
        if result.tx_id in seen:
            return TxRecord(result.tx_id, False, DUPLICATE_TXID, "transaction already committed")
        seen.add(result.tx_id)
        pending.apply(result.writes)
        tx_time = self.chaincode.tx_time(envelope)
        if tx_time is not None:
            times.append(tx_time)
        return TxRecord(result.tx_id, True, None, None, dict(result.writes), tuple(result.events))

    def commit_payload(self, number: int, payload: bytes) -> Block:
        """Form block ``number`` from ``payload`` and commit it."""
        block = self.form_block(number, payload)
        self.commit_block(block)
        return block

    def commit_block(self, block: Block) -> None:
        """Store a block this peer formed itself and extend its trusted chain."""
        self.store.commit_block(block, expected_number=self.height)
        with self._committed:
            self._chain.append((block.block_hash, block.commit_hash))
            self._tip_timestamp = block.header.timestamp
            self._committed.notify_all()
        for hook in self._hooks:
            try:
                hook(block)
            except Exception:
                log.exception("%s: commit hook failed after block %d", self.name, block.number)

    def _commit_loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.problem is not None or self.ordering is None:
                    self._stop.wait(0.5)
                    continue
                progressed = self._commit_available()
                if not progressed:
                    self._idle_duties()
            except Exception:
                log.exception("%s: commit loop error; retrying", self.name)
                self._stop.wait(1.0)

    def _commit_available(self) -> bool:
        assert self.ordering is not None
        position = self.height - 1
        if not self.ordering.wait_for(position + 1, 0.5):
            return False
        payloads = self.ordering.read(position, self.config.read_batch)
        for payload in payloads:
            if self._stop.is_set() or self.problem is not None:
                break
            block = self.commit_payload(position + 1, payload)
            log.debug("%s: committed block %d (%d txs)", self.name, block.number, len(block.records))
            position += 1
        return bool(payloads)

    def _idle_duties(self) -> None:
        if not self._tip_crosschecked:
            self._crosscheck_tip()
        interval = self.config.audit_interval
        if interval > 0 and time.monotonic() - self._last_audit > interval:
            self._last_audit = time.monotonic()
            self.audit()

    def _crosscheck_tip(self) -> None:
        """Rule 4: the newest stored blocks must carry the payloads the ordered stream has at their
        positions."""
        assert self.ordering is not None
        height = self.height
        if height <= 1:
            self._tip_crosschecked = True
            return
        first = max(1, height - 8)
        if self.ordering.committed_size() < height - 1:
            return
        ordered = self.ordering.read(first - 1, height - first)
        for block, payload in zip(self.store.read_blocks(first, height - first), ordered, strict=False):
            if block.payload != payload:
                self._mark_unhealthy(
                    BlockIntegrityError(block.number, "payload vs ordered stream", sm3(payload), sm3(block.payload))
                )
                return
        self._tip_crosschecked = True

    def audit(self) -> None:
        """Re-verify the whole stored chain and state against the hashes this peer trusts (rule 4)."""
        check = self.store.verify_chain()
        trusted = self._trusted_prefix()
        for number, (stored, mine) in enumerate(zip(check.hashes, trusted, strict=False)):
            if stored != mine:
                self._mark_unhealthy(BlockIntegrityError(number, "block_hash", mine[0], stored[0]))
                return
        if check.failure is not None and check.failure.number < len(trusted):
            self._mark_unhealthy(check.failure)
            return
        try:
            self.store.verify_state()
        except StateIntegrityError as exc:
            self._mark_unhealthy(exc)

    def _trusted_prefix(self) -> list[tuple[bytes, bytes]]:
        with self._lock:
            return list(self._chain)

    # --- serving
    # ------------------------------------------------------------------------------------------------

    def blocks(self, start: int, limit: int) -> list[Block]:
        """Blocks from ``start``, each re-read from disk and re-verified against the hashes this peer
        trusts."""
        with self._lock:
            trusted = self._chain[max(0, start - 1) : start + limit]
            bad = self.bad_block
        if bad is not None and start + limit > bad:
            if start >= bad:
                raise PeerUnhealthyError(f"block {bad} was altered on disk: {self.problem}", block=bad)
            limit = bad - start
        try:
            stored = self.store.read_blocks(start, limit)
        except BlockIntegrityError as exc:
            self._mark_unhealthy(exc)
            raise PeerUnhealthyError(f"block {exc.number} was altered on disk: {exc}", block=exc.number) from None
        out: list[Block] = []
        offset = 1 if start > 0 else 0
        for block in stored:
            i = block.number - start
            if i + offset >= len(trusted):
                break  # committed after the trusted snapshot was taken
            prev_hash, prev_commit = trusted[i + offset - 1] if block.number > 0 else (bytes(32), bytes(32))
            try:
                block.verify(prev_hash=prev_hash, prev_commit_hash=prev_commit)
                if block.block_hash != trusted[i + offset][0]:
                    raise BlockIntegrityError(block.number, "block_hash", trusted[i + offset][0], block.block_hash)
            except BlockIntegrityError as exc:
                self._mark_unhealthy(exc)
                raise PeerUnhealthyError(f"block {exc.number} was altered on disk: {exc}", block=exc.number) from None
            out.append(block)
        if bad is not None and not out and start < bad:
            raise PeerUnhealthyError(f"block {bad} was altered on disk: {self.problem}", block=bad)
        return out

    def state_digest(self) -> tuple[int, bytes, bytes]:
        """``(height, SM3 digest of the whole world state, commit hash at that height)``, consistently."""
        self._require_healthy()
        height, digest = self.store.state_digest()
        with self._lock:
            commit = self._chain[height - 1][1] if 0 < height <= len(self._chain) else bytes(32)
        return height, digest, commit

    def query(self, function: str, args: list[str]) -> tuple[int, bytes]:
        """Run a read-only chaincode query on a consistent snapshot; returns ``(height, result)``."""
        self._require_healthy()
        with self.store.snapshot() as snap:
            height = snap.height()
            return height, self.chaincode.evaluate(snap, function, args)

    def tx_status(self, tx_id: str) -> TxStatus | None:
        found = self.store.find_tx(tx_id)
        if found is None:
            return None
        block, index, valid, reason, message = found
        if block >= self.height:
            return None
        return TxStatus(tx_id, block, index, valid, reason, message)

    # --- submitting
    # ------------------------------------------------------------------------------------------------

    def submit(self, envelopes: Sequence[bytes], *, wait: bool = False, timeout: float = 30.0) -> dict[str, Any]:
        """Order ``envelopes`` (batched with concurrent submissions); optionally wait for their block.

        Returns ``{"position", "block", "offset"}`` and, with ``wait``, ``"txs"``: one :class:`TxStatus` each.
        Raises :class:`OrderingUnavailableError` if the orderer could not confirm the append (retry is safe).
        """
        if self.ordering is None:
            raise ValueError("this peer has no ordering service (it follows another peer)")
        self._require_healthy()
        if not envelopes:
            raise ValueError("nothing to submit")
        if len(envelopes) > self.config.max_batch:
            raise ValueError(f"at most {self.config.max_batch} envelopes per submission")
        if self.config.max_future_ms > 0:
            now = time.time_ns() // 1_000_000
            for envelope in envelopes:
                at = self.chaincode.tx_time(bytes(envelope))
                if at is not None and at - now > self.config.max_future_ms:
                    raise ValueError(
                        f"transaction {self.chaincode.tx_id(bytes(envelope))} is dated {at}, {at - now} ms ahead of "
                        f"this peer's clock (at most {self.config.max_future_ms} ms): check the signer's clock"
                    )
        item = _Submission([bytes(e) for e in envelopes])
        if _payload_size(item.envelopes) > self.ordering.max_payload_bytes:
            raise ValueError(
                f"submission of {len(item.envelopes)} envelopes needs a payload of about "
                f"{_payload_size(item.envelopes)} bytes; the orderer takes at most {self.ordering.max_payload_bytes}"
            )
        self._submissions.put(item)
        if not item.done.wait(self.config.append_timeout + 5.0):
            raise OrderingUnavailableError("submission not ordered in time", reason="timeout")
        if item.error is not None:
            raise item.error
        assert item.position is not None
        number = item.position + 1
        result: dict[str, Any] = {"position": item.position, "block": number, "offset": item.offset}
        if wait:
            if not self.wait_for_height(number + 1, timeout):
                self._require_healthy()
                raise OrderingUnavailableError(f"block {number} not committed in time", reason="timeout")
            block = self.blocks(number, 1)[0]
            txs = []
            for i in range(item.offset, item.offset + len(item.envelopes)):
                rec = block.records[i]
                txs.append(TxStatus(rec.tx_id, number, i, rec.valid, rec.reason, rec.message).to_json())
            result["txs"] = txs
        return result

    def wait_for_height(self, height: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._committed:
            while len(self._chain) < height:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.problem is not None or self._stop.is_set():
                    return False
                self._committed.wait(remaining)
        return True

    def _append_loop(self) -> None:
        assert self.ordering is not None
        while not self._stop.is_set():
            try:
                first = self._submissions.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            count = len(first.envelopes)
            size = _payload_size(first.envelopes)
            limit = self.ordering.max_payload_bytes
            while count < self.config.max_batch:
                try:
                    nxt = self._submissions.get_nowait()
                except queue.Empty:
                    break
                extra = _payload_size(nxt.envelopes) - _PAYLOAD_OVERHEAD
                if count + len(nxt.envelopes) > self.config.max_batch or size + extra > limit:
                    self._submissions.put(nxt)
                    break
                batch.append(nxt)
                count += len(nxt.envelopes)
                size += extra
            envelopes: list[bytes] = []
            for item in batch:
                item.offset = len(envelopes)
                envelopes.extend(item.envelopes)
            try:
                position = self.ordering.append(encode_payload(envelopes), timeout=self.config.append_timeout)
            except BaseException as exc:
                for item in batch:
                    item.error = exc
                    item.done.set()
                continue
            for item in batch:
                item.position = position
                item.done.set()
