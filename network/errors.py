"""Errors raised by the ledger network (ordering, and later the peer and its sync protocol).

They extend the tree in :mod:`core.errors` and follow its split by source:

* :class:`OrderingUnavailableError` is a transport / availability failure: nothing is wrong with the caller's
  input, the ordering service just could not confirm a commit in time (no leader, no quorum, timeout). It is
  not a :class:`~core.errors.VerificationError` because ordering never decides whether a transaction is valid.
* :class:`OrderingJournalError` means a local ordering journal is malformed (corrupt in its middle): a
  :class:`~core.errors.FormatError`, carrying the file and byte offset as evidence.
"""

from __future__ import annotations

from core.errors import FormatError, LicledgerError


class OrderingUnavailableError(LicledgerError):
    """The ordering service could not commit (or confirm the commit of) a payload before the deadline.

    The outcome of the append is *unknown*: the payload may still be ordered later (it may sit in a leader's
    queue or in a minority's log that later becomes a majority). Retrying ``append`` with the same payload is
    safe: the ordering service de-duplicates by SM3 digest and returns the position of the first copy.

    Evidence: ``reason`` (``"timeout"``, ``"no_leader"``, ``"leader_changed"``, ``"bind_failed"``, ...),
    ``leader`` (the last known leader address, or ``None``) and ``timeout`` (seconds waited).
    """

    def __init__(self, message: str, *, reason: str, leader: str | None = None, timeout: float | None = None) -> None:
        self.reason = reason
        self.leader = leader
        self.timeout = timeout
        detail = [f"reason={reason}"]
        if timeout is not None:
            detail.append(f"waited {timeout:.3f}s")
        detail.append(f"last known leader={leader or 'none'}")
        super().__init__(f"{message} ({', '.join(detail)})")


class OrderingJournalError(FormatError):
    """A local ordering journal is corrupt before its last record, so it cannot be a torn final write.

    A torn *final* record (crash during append) is not an error: it was never acknowledged and is truncated on
    open. Anything else is evidence of tampering or media failure, reported with ``path`` and ``offset``.
    """

    def __init__(self, message: str, *, path: str, offset: int) -> None:
        self.path = path
        self.offset = offset
        super().__init__(f"{message} (journal {path}, byte offset {offset})")
