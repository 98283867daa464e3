"""The peer's checkpoint duties: propose a checkpoint every K blocks (or when the latest is stale), cosign the
ones it computed itself, dated at the peer's wall clock.

Rules (the contract's side is in :mod:`chaincode.checkpoints`; this is only when and what the peer submits):

1. **Proposing.** After block ``n`` with ``n % K == 0``, the member whose turn it is (the members in a fixed
   order, one per window of K blocks, so a member that is down only skips its own window) submits
   ``ProposeCheckpoint`` for the next checkpoint ``seq`` when something checkpointed changed since the latest
   final checkpoint (anchor log, status tree, membership tree) **or** that checkpoint is older than the refresh
   interval (``refresh_ms``, default 10 minutes: the heartbeat, like a CT log re-signing a fresh tree head, so
   an idle ledger still has a fresh checkpoint and verifiers with a maximum checkpoint age keep deciding). Not
   while a proposal of its own is in flight, nor while a proposed checkpoint is pending (not final) and still
   within the cosigners' tolerance; a pending checkpoint older than that can no longer gather honest
   cosignatures and is superseded. Cosignatures change none of the compared roots and a heartbeat is due only
   ``refresh_ms`` after the latest final checkpoint's time, so checkpoints never beget checkpoints in a loop.
   When no block arrives for ``idle_interval`` seconds, the member whose turn it is at this height applies the
   same rule, any member after :data:`IDLE_FALLBACK_ROUNDS` quiet rounds.
2. **Cosigning.** For every valid ``ProposeCheckpoint`` in a committed block, the peer reads the checkpoint
   that *its own* execution stored, rebuilds its body with :func:`chaincode.checkpoints.checkpoint_body` from
   the fields, and cosigns only if the two agree **and** the checkpoint's time is within ``tolerance_ms``
   (default 5 minutes) of the peer's own clock; then it submits ``CosignCheckpoint`` (SM2, GB/T 32918, with
   the member key). It never cosigns twice, and a refused checkpoint is listed in :attr:`CheckpointDuty.refused`.
   This is what makes a final checkpoint's time trustworthy: the contract has no clock, so the time is
   attested by the quorum of cosigners, each of which checked it against its own clock.
3. **Timestamps.** Duty transactions are dated at the peer's wall clock (ms), never before the member's
   previous duty (``clock/<member>/duty``), and for a proposal never before the previous checkpoint or the
   ledger time (``GetLedgerInfo.time_ms``, the latest accepted transaction), for a cosignature never before the
   checkpoint. The contract checks duties against the member's duty clock only, so they never make the
   member's own transactions (``clock/<member>``) fail with ``TIMESTAMP_REGRESSION``. If the ledger time is
   further ahead of the peer's clock than the tolerance (a transaction dated in the future), the peer does not
   propose: the cosigners would refuse it.
4. Submissions run on the duty's own thread, never on the commit thread, and failures are logged and retried
   at the next opportunity: a rejected cosignature (a race with the member's own transactions) is retried on
   the next block while the checkpoint is not final, at most :data:`MAX_COSIGN_ATTEMPTS` times, so a permanent
   rejection cannot feed itself blocks forever.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from chaincode.checkpoints import checkpoint_body, cosign
from chaincode.state import duty_clock_key
from core.canonical import decode
from core.errors import LicledgerError
from core.sm2 import PrivateKey
from core.transactions import PROPOSE_CHECKPOINT, Envelope, cosign_checkpoint, propose_checkpoint
from network.keyfile import KeyFile
from network.peer.blocks import Block, decode_payload
from network.peer.peer import Peer

log = logging.getLogger("licledger.peer.checkpoints")

MAX_COSIGN_ATTEMPTS = 3
IDLE_FALLBACK_ROUNDS = 3
DEFAULT_REFRESH_MS = 10 * 60 * 1000
DEFAULT_TOLERANCE_MS = 5 * 60 * 1000


def wall_clock_ms() -> int:
    """The peer's clock: milliseconds since 1970-01-01T00:00:00Z."""
    return time.time_ns() // 1_000_000


def member_key_problem(peer: Peer, member: str, key_id: str, at_ms: int | None = None) -> str | None:
    """Why ``key_id`` may not sign for ``member`` at ``at_ms`` per this peer's membership state (``None``: it may).

    ``at_ms=None`` only asks whether the member record lists the key at all (a rotation committed).
    """
    try:
        _, raw = peer.query("GetMember", [member, ""])
        value = decode(raw)
    except LicledgerError as exc:
        return f"the membership state has no record of {member} ({exc})"
    if not isinstance(value, dict):
        return f"the membership state answered {type(value).__name__} for {member}"
    record = value.get("record", value)
    for k in record.get("keys", []) if isinstance(record, dict) else []:
        if isinstance(k, dict) and k.get("key_id") == key_id:
            if at_ms is None:
                return None
            until = k.get("valid_until_ms")
            if int(k["valid_from_ms"]) <= at_ms and (until is None or at_ms < int(until)):
                return None
            return f"the member record lists key {key_id} as valid from {k['valid_from_ms']} until {until}"
    return f"the member record of {member} does not list key {key_id} (the rotation is not committed here yet)"


class CheckpointDuty:
    """Submits this member's checkpoint proposals and cosignatures (module rules 1-4)."""

    def __init__(
        self,
        peer: Peer,
        *,
        member: str,
        key: PrivateKey | KeyFile,
        network_id: str,
        interval: int,
        proposers: Sequence[str],
        idle_interval: float = 2.0,
        refresh_ms: int = DEFAULT_REFRESH_MS,
        tolerance_ms: int = DEFAULT_TOLERANCE_MS,
    ) -> None:
        if interval < 1:
            raise ValueError("checkpoint interval must be >= 1")
        if refresh_ms < 1 or tolerance_ms < 1:
            raise ValueError("refresh_ms and tolerance_ms must be >= 1")
        if member not in proposers:
            raise ValueError(f"{member} is not among the proposers {list(proposers)}")
        self.peer = peer
        self.member = member
        self._key = key
        self.network_id = network_id
        self.interval = interval
        self.idle_interval = idle_interval
        self.refresh_ms = refresh_ms
        self.tolerance_ms = tolerance_ms
        self.refused: dict[int, str] = {}  # checkpoint seq -> why this peer would not cosign it (rule 2)
        self.proposers = sorted(proposers)
        self._queue: queue.Queue[Block | None] = queue.Queue()
        self._cosigned: dict[int, int] = {}  # checkpoint seq -> block its cosignature was ordered into
        self._proposed: int = -1  # block the last proposal was ordered into
        self._attempts: dict[int, int] = {}  # checkpoint seq -> cosignatures submitted
        self._thread = threading.Thread(target=self._run, name=f"{member}-checkpoints", daemon=True)

    @property
    def key(self) -> PrivateKey:
        """The member key to sign duties with now (a :class:`KeyFile` follows a rotation without a restart)."""
        return self._key.current() if isinstance(self._key, KeyFile) else self._key

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(10)

    def on_block(self, block: Block) -> None:
        """Commit hook: hand the block to the duty thread (never blocks the commit loop)."""
        self._queue.put(block)

    # --- the duty thread
    # -------------------------------------------------------------------------------------

    def _run(self) -> None:
        idle_rounds = 0
        while True:
            try:
                block = self._queue.get(timeout=self.idle_interval)
            except queue.Empty:
                idle_rounds += 1
                try:
                    self._idle(idle_rounds)
                except LicledgerError as exc:
                    log.warning("%s: idle checkpoint duty failed: %s", self.member, exc)
                except Exception:
                    log.exception("%s: idle checkpoint duty error", self.member)
                continue
            idle_rounds = 0
            if block is None:
                return
            # Catch up in one go when blocks arrive faster than duties run.
            blocks = [block]
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    return
                blocks.append(nxt)
            try:
                self._handle(blocks)
            except LicledgerError as exc:
                log.warning("%s: checkpoint duty failed (will retry): %s", self.member, exc)
            except Exception:
                log.exception("%s: checkpoint duty error", self.member)

    def _handle(self, blocks: list[Block]) -> None:
        if not self.peer.healthy:
            return
        for block in blocks:
            for seq in proposed_checkpoints(block):
                self._cosign(seq)
        self._retry_pending_cosignature()
        if any(self._my_window(b.number) for b in blocks):
            self._maybe_propose()

    def _idle(self, rounds: int) -> None:
        """Rule 1 when no block arrives: the member whose turn it is at this height proposes what is not yet
        checkpointed; after :data:`IDLE_FALLBACK_ROUNDS` quiet rounds, any member does (a proposer may be
        down)."""
        if not self.peer.healthy:
            return
        height = self.peer.height
        turn = self.proposers[(height // self.interval) % len(self.proposers)] == self.member
        if turn or rounds >= IDLE_FALLBACK_ROUNDS:
            self._maybe_propose()

    def _my_window(self, number: int) -> bool:
        if number == 0 or number % self.interval:
            return False
        return self.proposers[(number // self.interval) % len(self.proposers)] == self.member

    def _query(self, function: str, args: list[str]) -> dict[str, Any]:
        _, raw = self.peer.query(function, args)
        value = decode(raw)
        assert isinstance(value, dict)
        return value

    def _duty_timestamp(self, at_least: int = 0) -> int:
        """Rule 3: the peer's wall clock, never before ``at_least`` nor this member's previous duty."""
        with self.peer.store.snapshot() as snap:
            raw = snap.get(duty_clock_key(self.member))
        previous = decode(raw) if raw is not None else -1
        if not isinstance(previous, int):
            raise TypeError(f"duty clock of {self.member} is not an integer")
        return max(wall_clock_ms(), at_least, previous)

    def _in_flight(self, block: int) -> bool:
        """Whether a submission ordered into ``block`` is not committed yet (so its outcome is unknown)."""
        return block >= self.peer.height

    def _cosign(self, seq: int) -> None:
        if seq in self._cosigned and self._in_flight(self._cosigned[seq]):
            return
        record = self._query("GetCheckpoint", [str(seq)])
        if any(c["member"] == self.member for c in record["cosignatures"]):
            self._cosigned[seq] = -1
            return
        if self._attempts.get(seq, 0) >= MAX_COSIGN_ATTEMPTS:
            return  # rule 4: a rejection that repeats is not transient (e.g. this key was rotated away)
        # Rule 2: cosign only the body this peer's own execution computed, dated within the tolerance.
        problem = cosign_refusal(record, self.network_id, wall_clock_ms(), self.tolerance_ms)
        if problem is not None:
            self._refuse(seq, problem)
            return
        body = checkpoint_body(record["network_id"], record["fields"])
        checkpoint_ms = int(record["fields"]["timestamp_ms"])
        key = self.key  # once: the cosignature and the envelope must name the same key
        envelope = cosign_checkpoint(
            self.network_id,
            member=self.member,
            seq=seq,
            signature=cosign(body, key),
            key=key,
            timestamp_ms=self._duty_timestamp(checkpoint_ms),
        )
        self._attempts[seq] = self._attempts.get(seq, 0) + 1
        self._cosigned[seq] = int(self.peer.submit([envelope])["block"])
        log.info("%s: cosigned checkpoint %d (log size %s)", self.member, seq, record["fields"]["log_size"])

    def _refuse(self, seq: int, why: str) -> None:
        if seq not in self.refused:
            log.warning("%s: not cosigning checkpoint %d: %s", self.member, seq, why)
        self.refused[seq] = why

    def _retry_pending_cosignature(self) -> None:
        info = self._query("GetLedgerInfo", [])
        nxt = int(info["checkpoint_next"])
        if nxt == 0:
            return
        record = self._query("GetCheckpoint", [str(nxt - 1)])
        if not record["final"] and not any(c["member"] == self.member for c in record["cosignatures"]):
            self._cosign(nxt - 1)  # not cosigned yet, or the earlier cosignature was rejected

    def _maybe_propose(self) -> None:
        """Rule 1: propose when something changed or the latest final checkpoint is older than ``refresh_ms``."""
        if self._in_flight(self._proposed):
            return
        plan = plan_proposal(self._query, wall_clock_ms(), self.refresh_ms, self.tolerance_ms, self.member)
        if plan is None:
            return
        seq, not_before = plan
        envelope = propose_checkpoint(
            self.network_id,
            member=self.member,
            seq=seq,
            key=self.key,
            timestamp_ms=self._duty_timestamp(not_before),
        )
        self._proposed = int(self.peer.submit([envelope])["block"])
        log.info("%s: proposed checkpoint %d", self.member, seq)


def cosign_refusal(record: dict[str, Any], network_id: str, now_ms: int, tolerance_ms: int) -> str | None:
    """Rule 2: why a member must not cosign checkpoint ``record`` (a ``GetCheckpoint`` answer) at ``now_ms``, or
    ``None``: its body is the one its fields give (recomputed here) for ``network_id``, dated within
    ``tolerance_ms`` of ``now_ms``."""
    body = checkpoint_body(record["network_id"], record["fields"])
    if body.decode("utf-8") != record["body"] or record["network_id"] != network_id:
        return "its body does not match its fields"
    checkpoint_ms = int(record["fields"]["timestamp_ms"])
    skew = checkpoint_ms - now_ms
    if abs(skew) > tolerance_ms:
        return (
            f"it is dated {checkpoint_ms}, {abs(skew)} ms {'ahead of' if skew > 0 else 'behind'} this member's "
            f"clock (tolerance {tolerance_ms} ms)"
        )
    return None


def plan_proposal(
    query: Callable[[str, list[str]], dict[str, Any]], now: int, refresh_ms: int, tolerance_ms: int, member: str
) -> tuple[int, int] | None:
    """Rule 1: ``(seq, not_before)`` of the checkpoint to propose now, or ``None``: nothing changed since the
    latest final checkpoint and it is fresh, or a proposal is pending and can still gather cosignatures, or the
    ledger time is further ahead of ``now`` than the cosigners tolerate. ``query(function, args)`` is a contract
    query's answer."""
    info = query("GetLedgerInfo", [])
    seq = int(info["checkpoint_next"])
    not_before = int(info.get("time_ms", 0))
    if seq > 0:
        previous = query("GetCheckpoint", [str(seq - 1)])
        previous_ms = int(previous["fields"]["timestamp_ms"])
        not_before = max(not_before, previous_ms)
        if not previous["final"] and now - previous_ms <= tolerance_ms:
            return None  # one pending at a time, while it can still gather cosignatures
        latest = info["latest_final_checkpoint"]
        if latest is not None:
            final = previous if latest == seq - 1 else query("GetCheckpoint", [str(latest)])
            fields = final["fields"]
            unchanged = (
                fields["log_size"] == info["log"]["size"]
                and fields["status_root"] == info["status"]["root"]
                and fields["membership_root"] == info["members"]["root"]
            )
            if unchanged and now - int(fields["timestamp_ms"]) < refresh_ms:
                return None  # nothing new to checkpoint, and the latest checkpoint is fresh
    if not_before - now > tolerance_ms:
        log.warning(
            "%s: the ledger time %d is %d ms ahead of this member's clock; not proposing a checkpoint the "
            "cosigners would refuse",
            member,
            not_before,
            not_before - now,
        )
        return None
    return seq, not_before


def proposed_checkpoints(block: Block) -> list[int]:
    """The ``seq`` of every valid ``ProposeCheckpoint`` in ``block``."""
    out = []
    envelopes = decode_payload(block.payload)
    for envelope, record in zip(envelopes, block.records, strict=False):
        if not record.valid:
            continue
        try:
            tx = Envelope.from_bytes(envelope).tx
        except ValueError:
            continue
        if tx.type == PROPOSE_CHECKPOINT:
            out.append(tx.seq)
    return out
