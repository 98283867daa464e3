"""A province's ledger workload: batches of synthetic license leaves, their anchors and status changes.

Used by the network tests and ``bench/bench_network.py``. Everything here is real: GB/T 36904 identifiers
(:class:`core.codes.LicenseId`), salted SM3 commitments, RFC 9162 batch trees
(:class:`core.merkle.MerkleTree`), and envelopes signed with the province's SM2 key through the
:mod:`core.transactions` builders. Only the license documents are absent: a commitment is the SM3 of random
bytes, which is what a commitment looks like on the ledger anyway.

Timestamps are the local clock made non-decreasing per province, because the contract refuses an author whose
clock goes back (``TIMESTAMP_REGRESSION``). A province submits its batches in ``batch_seq`` order and waits
for each submission to be ordered before the next, as a real node does.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from core.codes import TYPE_CODE_OF, LicenseId, LicenseKind
from core.commitment import license_leaf_hash
from core.consortium import synthetic_uscc
from core.merkle import MerkleTree
from core.sm2 import PrivateKey
from core.transactions import anchor_batch, change_status


@dataclass
class Batch:
    """One anchored batch: its leaves and the RFC 9162 tree over them."""

    issuer: str
    batch_seq: int
    license_ids: list[LicenseId]
    commitments: list[bytes]
    tree: MerkleTree

    @property
    def root(self) -> bytes:
        return self.tree.root_hash()


@dataclass
class Province:
    """A province member submitting anchors and status changes with its own key."""

    network_id: str
    name: str
    key: PrivateKey
    issuer_index: int = 0
    next_batch_seq: int = 0
    clock_ms: int = 0
    status_seq: dict[str, int] = field(default_factory=dict)

    @property
    def issuer_uscc(self) -> str:
        """The issuing authority (a unified social credit code the genesis gives this province)."""
        return synthetic_uscc(self.name, self.issuer_index)

    def now(self) -> int:
        self.clock_ms = max(self.clock_ms, int(time.time() * 1000))
        return self.clock_ms

    def make_batch(self, leaf_count: int, kind: LicenseKind = LicenseKind.PHYSICIAN) -> Batch:
        """``leaf_count`` new license versions (version 1) under fresh serials, and their tree."""
        if leaf_count < 1:
            raise ValueError("a batch has at least one leaf")
        seq = self.next_batch_seq
        ids = [LicenseId.build(TYPE_CODE_OF[kind], self.issuer_uscc, f"B{seq:06d}L{i:07d}") for i in range(leaf_count)]
        commitments = [secrets.token_bytes(32) for _ in ids]
        tree = MerkleTree(license_leaf_hash(lid, 1, c) for lid, c in zip(ids, commitments, strict=True))
        return Batch(self.name, seq, ids, commitments, tree)

    def anchor(self, batch: Batch, *, batch_seq: int | None = None) -> bytes:
        """The signed ``AnchorBatch`` envelope of ``batch``; advances ``next_batch_seq`` unless ``batch_seq``
        is given explicitly (to build a replayed or gapped anchor)."""
        seq = batch.batch_seq if batch_seq is None else batch_seq
        envelope = anchor_batch(
            self.network_id,
            issuer=self.name,
            batch_seq=seq,
            root=batch.root,
            leaf_count=batch.tree.size,
            key=self.key,
            timestamp_ms=self.now(),
        )
        if batch_seq is None:
            self.next_batch_seq = seq + 1
        return envelope

    def change_status(
        self,
        batch: Batch,
        leaf_index: int,
        status: str,
        *,
        reason: str = "DISCIPLINARY",
        seq: int | None = None,
    ) -> bytes:
        """The signed ``ChangeStatus`` envelope for leaf ``leaf_index`` of ``batch``, with inclusion proof."""
        license_id = batch.license_ids[leaf_index]
        status_seq = self.status_seq.get(license_id.base, 0) if seq is None else seq
        now = self.now()
        envelope = change_status(
            self.network_id,
            issuer=self.name,
            license_id=str(license_id),
            status=status,
            reason=reason,
            effective_ms=now,
            status_seq=status_seq,
            commitment=batch.commitments[leaf_index],
            batch_seq=batch.batch_seq,
            leaf_index=leaf_index,
            inclusion_proof=batch.tree.inclusion_proof(leaf_index),
            key=self.key,
            timestamp_ms=now,
        )
        self.status_seq[license_id.base] = status_seq + 1
        return envelope
