"""The province's checkpoint duty run by its node, for a ledger whose peers are not licledger's (Fabric).

On the embedded ledger every member's peer proposes and cosigns checkpoints (network.peer.checkpoints). A Fabric
peer runs only the contract, so on Fabric each province's node does it instead, with the member key it already
holds (node.ledger rule 3): :class:`CheckpointDuty` is one polling pass of the same rules, through the node's
:class:`~node.ledger.Ledger`, on the same decisions (:func:`network.peer.checkpoints.cosign_refusal`,
:func:`~network.peer.checkpoints.plan_proposal`):

1. **Cosign** the newest proposed checkpoint if it is not final and this member has not cosigned it: only if
   its body is the one its fields give and it is dated within ``tolerance_ms`` of this node's clock; otherwise
   it is listed in :attr:`CheckpointDuty.refused` with the reason and never cosigned.
2. **Propose** the next checkpoint when the anchor log, the status tree or the membership changed since the
   latest final checkpoint, or that checkpoint is older than ``refresh_ms`` (so verifiers with a maximum
   checkpoint age keep deciding on an idle ledger), then cosign it. Several provinces' nodes may propose the
   same ``seq`` at once: the contract accepts one (``CHECKPOINT_SEQ_REPLAY`` for the others, which then cosign
   the accepted one at their next pass).
3. **Timestamps** are this node's clock, never before the checkpoint (cosignature) or the ledger time and the
   previous checkpoint (proposal), nor before this duty's previous transaction.

``licledger node serve`` runs a pass every ``checkpoint_duty_interval_s`` when ``LICLEDGER_LEDGER_BACKEND`` is
``fabric`` (sync.scheduler). A pass never raises for ledger trouble; it reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaincode.checkpoints import checkpoint_body, cosign
from core.errors import LicledgerError
from core.sm2 import PrivateKey
from core.transactions import cosign_checkpoint, propose_checkpoint
from network.peer.checkpoints import DEFAULT_REFRESH_MS, DEFAULT_TOLERANCE_MS, cosign_refusal, plan_proposal
from node.ledger import Ledger

__all__ = ["CheckpointDuty", "DutyReport"]

log = logging.getLogger("licledger.checkpoints")


@dataclass
class DutyReport:
    """What one pass did: checkpoints cosigned and proposed, and the ledger's refusals or trouble."""

    cosigned: list[int] = field(default_factory=list)
    proposed: int | None = None
    refused: dict[int, str] = field(default_factory=dict)
    error: str | None = None


class CheckpointDuty:
    """Member ``member``'s checkpoint duty on ``ledger`` (rules in the module docstring); ``key()`` is the
    member key to sign with now (it follows a key rotation)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        member: str,
        key: Callable[[], PrivateKey],
        clock: Callable[[], int],
        refresh_ms: int = DEFAULT_REFRESH_MS,
        tolerance_ms: int = DEFAULT_TOLERANCE_MS,
    ) -> None:
        if refresh_ms < 1 or tolerance_ms < 1:
            raise ValueError("refresh_ms and tolerance_ms must be >= 1")
        self.ledger = ledger
        self.member = member
        self.key = key
        self.clock = clock
        self.refresh_ms = refresh_ms
        self.tolerance_ms = tolerance_ms
        self.refused: dict[int, str] = {}
        self._last_ms = -1

    def _query(self, function: str, args: list[str]) -> dict[str, Any]:
        answer = self.ledger.query(function, *args)
        if not isinstance(answer, dict):
            raise LicledgerError(f"{function} answered {type(answer).__name__}")
        return answer

    def _timestamp(self, at_least: int) -> int:
        self._last_ms = max(self.clock(), at_least, self._last_ms + 1)
        return self._last_ms

    def run_once(self) -> DutyReport:
        report = DutyReport()
        try:
            self._cosign_pending(report)
            plan = plan_proposal(self._query, self.clock(), self.refresh_ms, self.tolerance_ms, self.member)
            if plan is not None:
                seq, not_before = plan
                envelope = propose_checkpoint(
                    self.ledger.network_id,
                    member=self.member,
                    seq=seq,
                    key=self.key(),
                    timestamp_ms=self._timestamp(not_before),
                )
                [verdict] = self.ledger.submit([envelope])
                if verdict.valid:
                    report.proposed = seq
                    log.info("%s: proposed checkpoint %d", self.member, seq)
                else:  # e.g. another province proposed this seq first: cosign theirs at the next pass
                    log.info("%s: proposal of checkpoint %d refused: %s", self.member, seq, verdict.reason)
                self._cosign_pending(report)
        except LicledgerError as exc:
            report.error = str(exc)
            log.warning("%s: checkpoint duty: %s", self.member, exc)
        report.refused = dict(self.refused)
        return report

    def _cosign_pending(self, report: DutyReport) -> None:
        nxt = int(self._query("GetLedgerInfo", [])["checkpoint_next"])
        if nxt == 0:
            return
        seq = nxt - 1
        record = self._query("GetCheckpoint", [str(seq)])
        if record["final"] or seq in self.refused:
            return
        if any(c["member"] == self.member for c in record["cosignatures"]):
            return
        problem = cosign_refusal(record, self.ledger.network_id, self.clock(), self.tolerance_ms)
        if problem is not None:
            self.refused[seq] = problem
            log.warning("%s: not cosigning checkpoint %d: %s", self.member, seq, problem)
            return
        key = self.key()  # once: the cosignature and the envelope name the same key
        body = checkpoint_body(record["network_id"], record["fields"])
        envelope = cosign_checkpoint(
            self.ledger.network_id,
            member=self.member,
            seq=seq,
            signature=cosign(body, key),
            key=key,
            timestamp_ms=self._timestamp(int(record["fields"]["timestamp_ms"])),
        )
        [verdict] = self.ledger.submit([envelope])
        if verdict.valid:
            report.cosigned.append(seq)
            log.info("%s: cosigned checkpoint %d (log size %s)", self.member, seq, record["fields"]["log_size"])
        else:
            log.warning("%s: cosignature of checkpoint %d refused: %s", self.member, seq, verdict.reason)
