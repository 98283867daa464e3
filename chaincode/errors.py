"""Why the license-registry contract rejects a transaction or a query: stable reason codes with evidence.

Every rejection raises :class:`TransactionRejected` with a machine-readable :class:`Reason` (stable across
releases: clients, peers and tests match on it), a human message and an ``evidence`` mapping (expected and
found values). Its ``str()`` is ``"<REASON>: <message>"``: that is the text the Fabric contract dispatcher
puts in the error response's ``message`` field (fabric_contract_api turns any exception into ``str(exc)``), so
the code survives the Fabric shim unchanged and :mod:`network.executor` parses it back with
:func:`split_reason`.

Queries (evaluate transactions) raise :class:`QueryError` the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from core.errors import LicledgerError

__all__ = ["QueryError", "Reason", "TransactionRejected", "require_next_seq", "split_reason"]


class Reason(StrEnum):
    """Stable reason codes. docs/chaincode.md lists which rule raises each one."""

    # the envelope itself
    MALFORMED_PAYLOAD = "MALFORMED_PAYLOAD"
    MISSING_TX_TIMESTAMP = "MISSING_TX_TIMESTAMP"
    TIMESTAMP_MISMATCH = "TIMESTAMP_MISMATCH"
    TIMESTAMP_REGRESSION = "TIMESTAMP_REGRESSION"
    # network
    NOT_INITIALISED = "NOT_INITIALISED"
    ALREADY_INITIALISED = "ALREADY_INITIALISED"
    WRONG_NETWORK = "WRONG_NETWORK"
    # authorship and signatures
    UNKNOWN_MEMBER = "UNKNOWN_MEMBER"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    KEY_NOT_VALID_AT_TIME = "KEY_NOT_VALID_AT_TIME"
    KEY_RETIRED = "KEY_RETIRED"
    MISSING_SIGNATURE = "MISSING_SIGNATURE"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    UNEXPECTED_SIGNATURE = "UNEXPECTED_SIGNATURE"
    ROLE_NOT_ALLOWED = "ROLE_NOT_ALLOWED"
    # membership
    MISSING_ENDORSEMENT = "MISSING_ENDORSEMENT"
    BAD_ENDORSEMENT = "BAD_ENDORSEMENT"
    MISSING_PROOF_OF_POSSESSION = "MISSING_PROOF_OF_POSSESSION"
    MEMBER_EXISTS = "MEMBER_EXISTS"
    KEY_EXISTS = "KEY_EXISTS"
    ISSUER_CONFLICT = "ISSUER_CONFLICT"
    LAST_VALID_KEY = "LAST_VALID_KEY"
    MEMBER_SEQ_GAP = "MEMBER_SEQ_GAP"
    MEMBER_SEQ_REPLAY = "MEMBER_SEQ_REPLAY"
    # anchor log
    BATCH_SEQ_GAP = "BATCH_SEQ_GAP"
    BATCH_SEQ_REPLAY = "BATCH_SEQ_REPLAY"
    BATCH_SEQ_DUPLICATE = "BATCH_SEQ_DUPLICATE"
    # status map
    WRONG_ISSUER = "WRONG_ISSUER"
    UNKNOWN_BATCH = "UNKNOWN_BATCH"
    NOT_ANCHORED = "NOT_ANCHORED"
    STATUS_SEQ_GAP = "STATUS_SEQ_GAP"
    STATUS_SEQ_REPLAY = "STATUS_SEQ_REPLAY"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    EFFECTIVE_TIME_REGRESSION = "EFFECTIVE_TIME_REGRESSION"
    VERSION_REGRESSION = "VERSION_REGRESSION"
    # checkpoints
    CHECKPOINT_SEQ_GAP = "CHECKPOINT_SEQ_GAP"
    CHECKPOINT_SEQ_REPLAY = "CHECKPOINT_SEQ_REPLAY"
    UNKNOWN_CHECKPOINT = "UNKNOWN_CHECKPOINT"
    DUPLICATE_COSIGNATURE = "DUPLICATE_COSIGNATURE"
    BAD_COSIGNATURE = "BAD_COSIGNATURE"
    # queries
    NOT_FOUND = "NOT_FOUND"
    BAD_QUERY = "BAD_QUERY"
    # a bug in the contract (never expected; deterministic all the same)
    INTERNAL_ERROR = "INTERNAL_ERROR"


class TransactionRejected(LicledgerError):
    """A submitted transaction violates a rule of the contract. Nothing it would have written is written."""

    def __init__(self, reason: Reason, message: str, evidence: Mapping[str, Any] | None = None) -> None:
        self.reason = Reason(reason)
        self.message = message
        self.evidence: dict[str, Any] = dict(evidence or {})
        super().__init__(f"{self.reason.value}: {message}")


def require_next_seq(
    got: int,
    expected: int,
    *,
    replay: Reason | None,
    gap: Reason,
    what: str,
    evidence: Mapping[str, Any] | None = None,
) -> None:
    """The rule every counter on the ledger follows (batch, status, checkpoint, member record and node
    announcement sequence numbers): a transaction carries exactly the next number, ``expected``.

    A lower one is a ``replay`` (the number was used), a higher one a ``gap`` (one is missing); both are
    :class:`TransactionRejected` naming ``what`` and carrying ``expected`` and ``got`` with ``evidence``.
    ``replay=None`` leaves a lower number to the caller (a batch's replay is told apart from a duplicate by
    the stored batch's transaction id)."""
    if got == expected or (got < expected and replay is None):
        return
    reason, verb = (replay, "was already used") if got < expected else (gap, "skips a number")
    assert reason is not None
    raise TransactionRejected(
        reason, f"{what} {got} {verb}; the next is {expected}", {**(evidence or {}), "expected": expected, "got": got}
    )


class QueryError(LicledgerError):
    """A query (evaluate transaction) cannot be answered: bad arguments or nothing stored under them."""

    def __init__(self, reason: Reason, message: str) -> None:
        self.reason = Reason(reason)
        self.message = message
        super().__init__(f"{self.reason.value}: {message}")


_REASON_PREFIX = re.compile(r"([A-Z][A-Z0-9_]*): (.*)", re.DOTALL)


def split_reason(text: str) -> tuple[Reason | None, str]:
    """Split ``"<REASON>: <message>"`` (the ``str()`` of the errors above) into its parts.

    Returns ``(None, text)`` when ``text`` does not start with a known reason code, as for the dispatcher's
    own errors (unknown function, wrong number of parameters).
    """
    match = _REASON_PREFIX.fullmatch(text)
    if match and match.group(1) in Reason.__members__:
        return Reason(match.group(1)), match.group(2)
    return None, text
