"""The verification service a provincial node runs for agencies and the public web page: its own trust root,
kept current from the ledger, and the checks of :mod:`verifier.core` on what callers submit.

Rules, before any code:

1. **The node's trust root** is its network's genesis, pinned by the node's configured ``network_id`` (the SM3
   of the genesis: a ``GetGenesis`` answer with another hash is refused), plus the ledger's latest final
   checkpoint with every member's record proven under it (``GetMember``).
2. **It advances like any verifier's** (:meth:`verifier.trust.TrustRoot.advanced`): quorum under keys already
   trusted, no conflict, no rollback, and an RFC 9162 §2.1.4 consistency proof (``GetLogConsistencyProof``)
   from the trusted checkpoint. The node's own peers are not trusted more than anyone's: a checkpoint that fails
   is not adopted, the failure (with both checkpoints) is kept in :attr:`NodeVerifier.alarm` and logged, and
   verification goes on with the last trusted root.
3. **Refresh** at most every ``refresh_ms`` (the first verification fetches the genesis); if the ledger is
   unreachable the last trusted root is used, and with none yet the ledger error propagates (HTTP 503).
4. **Verdicts** are :func:`verifier.core.verify_bundle`'s, never changed here. A malformed bundle is the caller's
   error (:class:`core.bundle.InvalidBundleError`, HTTP 422 naming the field) before any verification.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.bundle import ProofBundle
from core.consortium import Genesis, MemberRecord
from core.errors import FormatError, LicledgerError
from core.smt import SparseProof
from node.ledger import LedgerClient, LedgerRequestError, LedgerUnavailableError
from verifier.core import Verdict, verify_bundle
from verifier.trust import ConsistencyError, TrustRoot, TrustRootError

__all__ = ["DEFAULT_MAX_AGE_MS", "NodeVerifier", "TrustedCheckpoint"]

log = logging.getLogger("licledger.verifier")
DEFAULT_MAX_AGE_MS = 24 * 3_600_000


@dataclass(frozen=True, slots=True)
class TrustedCheckpoint:
    """What the node's trust root holds now, for answers: seq, tree_size, timestamp (``None`` fields: genesis)."""

    seq: int | None
    tree_size: int | None
    timestamp_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "tree_size": self.tree_size, "timestamp_ms": self.timestamp_ms}


class NodeVerifier:
    """Rules 1-4 for one node; thread-safe (the web app's worker threads share one)."""

    def __init__(
        self, ledger: LedgerClient, *, refresh_ms: int = 1000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ledger = ledger
        self.refresh_ms = refresh_ms
        self._clock = clock
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._refreshing = False
        self._root: TrustRoot | None = None
        self._seq: int | None = None
        self._checked_at: float | None = None
        self.alarm: dict[str, Any] | None = None
        """The last checkpoint that could not be adopted, with the trusted one and why (rule 2)."""

    def trust_root(self) -> tuple[TrustRoot, TrustedCheckpoint]:
        """The current trust root (refreshed per rule 3). One thread refreshes at a time; the others go on with
        the current root meanwhile (only the very first call, with no root yet, waits)."""
        now = self._clock()
        with self._lock:
            due = self._checked_at is None or (now - self._checked_at) * 1000 >= self.refresh_ms
            refresh = due and not self._refreshing
            if refresh:
                self._refreshing = True
            root, seq = self._root, self._seq
        if refresh:
            try:
                with self._refresh_lock:
                    self._refresh()
                with self._lock:
                    self._checked_at = now
            except (LedgerUnavailableError, LedgerRequestError) as exc:
                if self._root is None:
                    raise
                log.warning("verifier: ledger unreachable, using the trusted checkpoint: %s", exc)
            finally:
                with self._lock:
                    self._refreshing = False
            with self._lock:
                root, seq = self._root, self._seq
        elif root is None:
            with self._refresh_lock:  # wait for the first refresh to finish, or do it
                if self._root is None:
                    self._refresh()
            root, seq = self._root, self._seq
        assert root is not None
        cp = root.checkpoint
        info = TrustedCheckpoint(
            seq if cp is not None else None,
            None if cp is None else cp.log_size,
            None if cp is None else cp.timestamp_ms,
        )
        return root, info

    def _refresh(self) -> None:
        if self._root is None:
            answer = self.ledger.query("GetGenesis")
            try:
                genesis = Genesis.from_dict((answer or {}).get("genesis"))
            except FormatError as exc:
                raise LedgerRequestError(None, "MALFORMED_ANSWER", f"GetGenesis: {exc}") from None
            if genesis.network_id != self.ledger.network_id:
                raise LedgerRequestError(
                    None, "WRONG_GENESIS", f"the ledger's genesis has network id {genesis.network_id}, not ours"
                )
            with self._lock:
                self._root = TrustRoot.from_genesis(genesis)
        latest = self.ledger.latest_final_checkpoint()
        if latest is None:
            return
        note, seq = str(latest["note"]).encode("utf-8"), int(latest["seq"])
        root = self._root
        assert root is not None
        if root.note == note:
            return
        try:
            proof = self._consistency(root, int(latest["fields"]["log_size"]))
            advanced = root.advanced(note, proof, self._members(root, seq))
        except (ConsistencyError, TrustRootError, FormatError, LicledgerError) as exc:
            if isinstance(exc, LedgerUnavailableError):
                raise
            self.alarm = {
                "problem": str(exc),
                "trusted": None if root.note is None else root.note.decode("utf-8"),
                "refused": note.decode("utf-8", errors="replace"),
                "seq": seq,
            }
            log.error("verifier: the ledger's checkpoint %d was not adopted: %s", seq, exc)
            return
        with self._lock:
            self._root, self._seq = advanced, seq

    def _consistency(self, root: TrustRoot, new_size: int) -> list[bytes]:
        old = root.checkpoint
        if old is None or old.log_size == 0 or old.log_size >= new_size:
            return []
        answer = self.ledger.query("GetLogConsistencyProof", str(old.log_size), str(new_size))
        if answer is None:
            raise LedgerRequestError(404, "NOT_FOUND", "no consistency proof")
        return [bytes.fromhex(p) for p in answer["consistency_proof"]]

    def _members(self, root: TrustRoot, seq: int) -> list[tuple[MemberRecord, SparseProof]]:
        out = []
        for name in sorted(root.members):
            answer = self.ledger.query("GetMember", name, str(seq))
            if answer is not None and answer.get("record") is not None:
                out.append((MemberRecord.from_dict(answer["record"]), SparseProof.from_dict(answer["proof"])))
        return out

    def verify(
        self,
        bundle: ProofBundle,
        *,
        now_ms: int,
        max_age_ms: int | None = DEFAULT_MAX_AGE_MS,
        expected_license_id: str | None = None,
    ) -> tuple[Verdict, TrustedCheckpoint]:
        """Rule 4: the verdict of ``bundle`` under the node's trust root, and which checkpoint that root holds."""
        root, info = self.trust_root()
        verdict = verify_bundle(
            bundle, root, now_ms=now_ms, max_checkpoint_age_ms=max_age_ms, expected_license_id=expected_license_id
        )
        return verdict, info
