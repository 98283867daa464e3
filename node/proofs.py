"""Proof bundles for the node's licenses, assembled from its own records and the ledger's answers (no HTTP here).

A bundle (:mod:`core.bundle`, format ``licledger-proof/1``) proves one license version against the ledger's
latest **final** (quorum-cosigned) checkpoint. The node contributes what only it has (the leaf's RFC 9162
inclusion proof in its batch, rebuilt from the batch's leaf hashes; the document, salt and seal when disclosed)
and fetches the rest from the ledger at that checkpoint: the batch record (``GetBatch``), its inclusion in the
anchor log (``GetLogInclusionProof`` at the checkpoint's ``tree_size``), the status proof (``GetStatus``) and
the issuer's member record (``GetMember``). :func:`core.bundle.assemble_bundle` refuses parts that do not fit
together, so the node never serves a bundle it could have known to fail verification.

When a proof cannot be given yet, :class:`ProofNotReadyError` says why (HTTP 425 with ``Retry-After``):

* ``NOT_ANCHORED``: the version's batch is not on the ledger yet;
* ``NO_FINAL_CHECKPOINT``: no final checkpoint covers the batch yet (its anchor-log ``tree_size`` is not past
  the batch's log index);
* ``STATUS_PENDING``: the node holds a status change (suspension, revocation, ...) that is not anchored yet, or
  anchored but not yet under a final checkpoint: a bundle now would prove a status the node knows is outdated.

Ledger answers that do not depend on the newest state are cached: batch records (immutable once anchored),
inclusion proofs per ``(log index, tree size)``, member and status proofs per checkpoint, batch trees; the latest
final checkpoint for ``checkpoint_cache_ms``. A first proof of a license therefore costs one ledger round trip
(``GetStatus``), a repeated one none.

**What any member's node can give about any license** (cross-node resolution, docs/verifier.md): the parts of a
bundle that come from the ledger, which every member's peer holds (:meth:`ProofService.ledger_proofs`: the
batch's inclusion in the anchor log, the status proof and the issuer's member record at a final checkpoint;
:meth:`ProofService.member_proofs`: member records at a checkpoint), so a verifier can bring a stale bundle up to
date from any node; and, for a license of another province, the URL of the issuer's node from the node's
directory (:func:`issuer_nodes`, ``LICLEDGER_NODE_DIRECTORY``). Only the leaf's proof in its batch and the seal
come from the issuer. Nothing here is trusted by the verifier before its own checks.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import canonical, merkle
from core.bundle import ProofBundle, assemble_bundle
from core.licenses import in_province, parse_document
from node.context import NodeContext
from node.db.models import AnchorReceipt, LicenseVersion, Outbox
from node.errors import NodeError, NotFoundError
from node.ledger import Ledger, LedgerRequestError, LedgerUnavailableError
from node.queries import LicenseRef, Loaded
from node.settings import NodeSettings

K = TypeVar("K")
V = TypeVar("V")
CACHE_SIZE = 256
MAX_MEMBERS = 64


class ProofNotReadyError(NodeError):
    """A proof cannot be given *yet*; ``reason`` is a stable code, ``retry_after`` seconds a hint."""

    def __init__(self, reason: str, message: str, *, retry_after: int) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(message)


class NoLedgerError(NodeError):
    """The node has not joined a ledger, so it has no proofs to give."""


class _Lru(OrderedDict[K, V]):
    def __init__(self, size: int = CACHE_SIZE) -> None:
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def fetch(self, key: K, make: Callable[[], V]) -> V:
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        value = make()
        with self.lock:
            self[key] = value
            while len(self) > self.size:
                self.popitem(last=False)
        return value


class ProofService:
    """Builds bundles for one node; thread-safe (caches behind locks, ledger client shared)."""

    def __init__(self, node: NodeContext) -> None:
        self.node = node
        self._checkpoint: tuple[float, dict[str, Any] | None] | None = None
        self._cp_lock = threading.Lock()
        self._batches: _Lru[int, dict[str, Any]] = _Lru()
        self._inclusions: _Lru[tuple[int, int], dict[str, Any]] = _Lru()
        self._members: _Lru[int, dict[str, Any]] = _Lru(8)
        self._trees: _Lru[int, merkle.MerkleTree] = _Lru(64)
        self._statuses: _Lru[tuple[str, int], dict[str, Any] | None] = _Lru(4096)
        self._any_members: _Lru[tuple[str, int], dict[str, Any]] = _Lru(1024)

    @property
    def ledger(self) -> Ledger:
        if self.node.ledger is None:
            raise NoLedgerError("this node has not joined a ledger: no proofs, no checkpoints")
        return self.node.ledger

    # --- checkpoints ---

    def latest_checkpoint(self) -> dict[str, Any] | None:
        """The latest final checkpoint (``GetLatestFinalCheckpoint``), cached for ``checkpoint_cache_ms``."""
        ttl = self.node.settings.checkpoint_cache_ms / 1000
        with self._cp_lock:
            cached = self._checkpoint
        if cached is not None and time.monotonic() - cached[0] < ttl:
            return cached[1]
        value = self.ledger.latest_final_checkpoint()
        with self._cp_lock:
            self._checkpoint = (time.monotonic(), value)
        return value

    def checkpoint(self, seq: int) -> dict[str, Any] | None:
        """Final checkpoint ``seq`` or ``None`` (unknown or not final)."""
        answer = self.ledger.query("GetCheckpoint", str(seq))
        if answer is None or not answer.get("final") or not answer.get("note"):
            return None
        result: dict[str, Any] = answer
        return result

    def consistency(self, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
        """RFC 9162 §2.1.4 consistency proof (hex) from ``old``'s anchor log to ``new``'s."""
        size1, size2 = int(old["fields"]["log_size"]), int(new["fields"]["log_size"])
        if size1 == 0 or size1 == size2:
            return []
        answer = self.ledger.query("GetLogConsistencyProof", str(size1), str(size2))
        if answer is None:
            raise LedgerRequestError(404, "NOT_FOUND", f"no consistency proof {size1} -> {size2}")
        return list(answer["consistency_proof"])

    def final_checkpoint(self, seq: int | None) -> dict[str, Any]:
        """Final checkpoint ``seq`` (the latest with ``None``); :class:`NotFoundError` if there is none."""
        cp = self.latest_checkpoint() if seq is None else self.checkpoint(seq)
        if cp is None:
            raise NotFoundError("final checkpoint", "latest" if seq is None else str(seq))
        return cp

    # --- the ledger's parts of any member's bundle ---

    def ledger_proofs(self, license_base: str, issuer: str, log_index: int, seq: int | None) -> dict[str, Any]:
        """At final checkpoint ``seq`` (default the latest): the RFC 9162 inclusion proof of anchor-log entry
        ``log_index``, the status record and proof of ``license_base``, and ``issuer``'s member record and proof:
        what a bundle of any member's license needs from the ledger (the leaf's proof in its batch aside)."""
        cp = self.final_checkpoint(seq)
        at, log_size = int(cp["seq"]), int(cp["fields"]["log_size"])
        if log_index >= log_size:
            raise NotFoundError("anchor-log entry", f"{log_index} at checkpoint {at} (tree_size {log_size})")
        inclusion = self._inclusions.fetch(
            (log_index, log_size), lambda: self._query("GetLogInclusionProof", str(log_index), str(log_size))
        )
        status = self._statuses.fetch((license_base, at), lambda: self.ledger.query("GetStatus", license_base, str(at)))
        if status is None:
            raise NotFoundError("status proof of", license_base)
        member = self._member_at(issuer, at)
        return {"checkpoint": cp, "inclusion": inclusion, "status": status, "member": member}

    def member_proofs(self, names: list[str], seq: int | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Final checkpoint ``seq`` (default the latest) and each named member's record (or absence) with its
        sparse Merkle proof under the checkpoint's membership root."""
        if not 0 < len(names) <= MAX_MEMBERS:
            raise ValueError(f"give 1 to {MAX_MEMBERS} member names")
        cp = self.final_checkpoint(seq)
        at = int(cp["seq"])
        return cp, [self._member_at(n, at) for n in names]

    def _member_at(self, name: str, seq: int) -> dict[str, Any]:
        return self._any_members.fetch((name, seq), lambda: self._query("GetMember", name, str(seq)))

    # --- bundles ---

    def bundle(self, session: Session, loaded: Loaded, *, disclose: bool) -> ProofBundle:
        """The bundle of ``loaded``'s version; with ``disclose``, document, salt and seal included."""
        settings = self.node.settings
        member = settings.province
        wait = max(1, settings.anchor_batch_max_age_ms // 1000)
        version = loaded.version
        receipt = session.scalar(sa.select(AnchorReceipt).where(AnchorReceipt.version_id == version.id))
        if receipt is None or receipt.log_index is None:
            raise ProofNotReadyError(
                "NOT_ANCHORED", f"license {version.full_id} is not anchored on the ledger yet", retry_after=wait
            )
        status_rows = session.execute(
            sa.select(Outbox.status_seq, Outbox.state).where(
                Outbox.license_id == loaded.row.id, Outbox.kind == "status"
            )
        ).all()
        if any(state != "anchored" for _, state in status_rows):
            raise ProofNotReadyError(
                "STATUS_PENDING", "a status change of this license is not on the ledger yet", retry_after=wait
            )
        newest_seq = max((int(seq or 0) for seq, _ in status_rows), default=-1)
        cp = self.latest_checkpoint()
        if cp is None or int(cp["fields"]["log_size"]) <= receipt.log_index:
            raise ProofNotReadyError(
                "NO_FINAL_CHECKPOINT", "no final checkpoint covers this license's batch yet", retry_after=2
            )
        seq = int(cp["seq"])
        status = self._statuses.fetch(
            (loaded.row.base_id, seq), lambda: self.ledger.query("GetStatus", loaded.row.base_id, str(seq))
        )
        record = None if status is None else status.get("record")
        if (
            status is None
            or (record is None and newest_seq >= 0)
            or (record is not None and int(record["status_seq"]) < newest_seq)
        ):
            raise ProofNotReadyError(
                "STATUS_PENDING",
                "the license's latest status change is not under a final checkpoint yet",
                retry_after=2,
            )
        batch = self._batches.fetch(receipt.batch_seq, lambda: self._query("GetBatch", member, str(receipt.batch_seq)))
        log_size = int(cp["fields"]["log_size"])
        inclusion = self._inclusions.fetch(
            (receipt.log_index, log_size),
            lambda: self._query("GetLogInclusionProof", str(receipt.log_index), str(log_size)),
        )
        member_proof = self._members.fetch(seq, lambda: self._query("GetMember", member, str(seq)))
        tree = self._trees.fetch(receipt.batch_seq, lambda: self._tree(session, receipt.batch_seq))
        document = salt = seal = None
        if disclose:
            document = parse_document(version.document)
            salt = version.salt
            seal = canonical.decode(version.seal)
        return assemble_bundle(
            license_id=version.full_id,
            issuer=member,
            commitment_value=version.commitment,
            leaf_index=receipt.leaf_index,
            leaf_inclusion_proof=tree.inclusion_proof(receipt.leaf_index),
            batch=batch,
            log_inclusion=inclusion,
            status=status,
            member=member_proof,
            checkpoint=cp,
            document=document,
            salt=salt,
            seal=seal,
        )

    def _query(self, function: str, *args: str) -> dict[str, Any]:
        answer = self.ledger.query(function, *args)
        if not isinstance(answer, dict):
            raise LedgerRequestError(404, "NOT_FOUND", f"{function}({', '.join(args)}) found nothing")
        return answer

    @staticmethod
    def _tree(session: Session, batch_seq: int) -> merkle.MerkleTree:
        return merkle.MerkleTree(batch_leaf_hashes(session, batch_seq))


def batch_leaf_hashes(session: Session, batch_seq: int) -> list[bytes]:
    """The leaf hashes of batch ``batch_seq`` in leaf order, from the node's records (the batch's RFC 9162 tree)."""
    return list(
        session.scalars(
            sa.select(LicenseVersion.leaf_hash)
            .join(Outbox, Outbox.version_id == LicenseVersion.id)
            .where(Outbox.kind == "leaf", Outbox.batch_seq == batch_seq)
            .order_by(Outbox.leaf_index)
        )
    )


def issuer_nodes(
    settings: NodeSettings, ledger: Ledger | None, ref: LicenseRef, directory: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The other provinces' nodes (``{province: url}`` from ``directory``: the node's :class:`~node.directory.
    NodeDirectory`, by default ``LICLEDGER_NODE_DIRECTORY`` alone) that may hold the
    license ``ref``: those whose province contains the issuing authority's registration division (the USCC in the
    GB/T 36904 identifier). Where that is ambiguous (Xinjiang and the XPCC share ``65``: the XPCC's authorities
    are registered in Xinjiang's ``6590xx`` divisions), the ledger's member records decide (the member listing the
    authority among its issuers), if the ledger answers. The node's own province takes part in that choice, so a
    license of one of its own authorities is never referred to the neighbour; only the result excludes it. A hint
    for the caller, never a proof: the verifier checks whatever the issuer's node serves."""
    uscc = ref.base_id.split(".")[6]
    division = uscc[2:8]
    directory = settings.node_directory_map if directory is None else directory
    candidates = {p for p in {*directory, settings.province} if in_province(division, p)}
    if len(candidates) > 1 and ledger is not None:
        try:
            listed = {
                p
                for p in candidates
                if uscc in ((ledger.query("GetMember", p, "") or {}).get("record") or {}).get("issuers", ())
            }
        except (LedgerUnavailableError, LedgerRequestError):
            listed = set()
        candidates = listed or candidates
    return {p: directory[p] for p in sorted(candidates) if p != settings.province and p in directory}
