"""What a verifier trusts, and how that trust advances: the pinned genesis, the latest verified checkpoint, and
the member records proven under it. No I/O.

Rules, before any code:

1. **The genesis is pinned.** Its SM3 is the network id (docs/chaincode.md); every checkpoint's origin must be
   ``licledger/<network id>``. :func:`load_trust_root` takes the genesis from a trust-root file, a genesis
   document, a ``GetGenesis`` answer or a local network's ``network.json``, and can check it against a network id
   obtained from a channel the user trusts.
2. **Bootstrapping: which keys verify cosignatures.** A checkpoint's own membership root cannot vouch for the keys
   that cosign it: whoever forges a checkpoint forges its membership root too. So cosignatures are verified only
   with keys already trusted: the genesis members' records, overlaid with member records proven under the trust
   root's own checkpoint, which was itself verified this way before it became trusted (:meth:`TrustRoot.advanced`).
   A key counts if it was valid at the checkpoint's timestamp according to those records (keys are never removed
   from a record, only retired, so a record knows every key's interval up to its own time). Each member counts
   once (:func:`core.checkpoint.verify_cosignatures`). The quorum is the genesis ``quorum`` (capped at the members
   known) or a majority of the members known.
   Why this is safe: a forged checkpoint needs a quorum of signatures under keys the verifier got from the genesis
   or from an earlier quorum-verified checkpoint, i.e. a quorum of colluding or compromised members.
   Its limits, stated plainly: a member whose key rotated after the trust root's checkpoint does not count until the
   trust root advances past the rotation (verification fails closed, never open); a trust root older than a key
   compromise and retirement still accepts the retired key (advance trust roots regularly, as TUF clients refresh
   their root metadata); if the consortium grew since, the majority is of the members the verifier knows.
3. **Advancing** (:func:`advance_checkpoint`, after Trillian Tessera's client): a new checkpoint replaces the
   trusted one only if its quorum verifies (rule 2), it does not conflict with the trusted one, it is not older,
   and an RFC 9162 §2.1.4 consistency proof shows its anchor log extends the trusted one. On failure it raises
   :class:`ConsistencyError` / :class:`SplitViewError` keeping both checkpoints and the proof as evidence.
4. **Equivocation** (:func:`compare_checkpoints`): two checkpoints with the same anchor-log ``tree_size`` and
   different roots, the same height and different bodies, or a log that shrank or a clock that ran back as the
   height grew, cannot both come from one honest ledger: :class:`SplitViewError` holds both.
5. **Caching.** A :class:`TrustRoot` memoises, keyed by the note's exact bytes, each checkpoint's verdict (success or
   failure), and every membership proof that verified, so that many bundles under one checkpoint cost one
   cosignature check in all.

A trust-root file (``licledger-trust-root/1``) is the verifier's own state, like a TUF client's trusted root: on
load its parts are checked against each other (checkpoint origin and quorum, member proofs), which catches
corruption and mixed-up files, not a hostile writer, who could as well replace the genesis.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Sequence
from typing import Any

from chaincode.checkpoints import origin_of
from core import canonical
from core.checkpoint import Checkpoint, Cosignature, QuorumError, parse_checkpoint, verify_cosignatures
from core.consortium import Genesis, MemberRecord, default_quorum, member_key
from core.errors import FormatError, LicledgerError, ProofFormatError, RootMismatchError, VerificationError
from core.merkle import verify_consistency
from core.sm2 import PublicKey
from core.smt import SparseProof, verify_sparse_proof
from core.transactions import INIT_CONSORTIUM, Envelope

__all__ = [
    "TRUST_ROOT_FORMAT",
    "ConsistencyError",
    "SplitViewError",
    "TrustRoot",
    "TrustRootError",
    "WrongNetworkError",
    "advance_checkpoint",
    "compare_checkpoints",
    "load_trust_root",
]

TRUST_ROOT_FORMAT = "licledger-trust-root/1"
_CACHE_LIMIT = 1024


# --- errors ------------------------------------------------------------------------------------------------------


class TrustRootError(FormatError):
    """A trust root (file or parts) is malformed or inconsistent; the verifier cannot decide anything with it."""


class ConsistencyError(VerificationError):
    """A new checkpoint is not a consistent extension of the trusted one. Keeps both and the proof as evidence
    (Trillian Tessera's client does the same); ``cause`` is the underlying proof error, if any."""

    def __init__(
        self,
        message: str,
        *,
        trusted: Checkpoint,
        new: Checkpoint,
        proof: Sequence[bytes] = (),
        cause: Exception | None = None,
    ) -> None:
        self.trusted = trusted
        self.new = new
        self.proof = tuple(bytes(p) for p in proof)
        self.cause = cause
        super().__init__(message)


class SplitViewError(ConsistencyError):
    """Two checkpoints of one log that cannot both be true (equivocation): same ``tree_size`` with different
    roots, same height with different bodies, or a log that shrank. ``trusted``/``new`` hold both bodies and
    ``notes`` the signed notes when known."""

    def __init__(
        self,
        message: str,
        *,
        trusted: Checkpoint,
        new: Checkpoint,
        proof: Sequence[bytes] = (),
        notes: tuple[bytes | None, bytes | None] = (None, None),
    ) -> None:
        self.notes = notes
        super().__init__(message, trusted=trusted, new=new, proof=proof)


# --- checkpoints ---------------------------------------------------------------------------------------------------


def compare_checkpoints(
    a: Checkpoint, b: Checkpoint, *, notes: tuple[bytes | None, bytes | None] = (None, None)
) -> None:
    """Raise :class:`SplitViewError` if ``a`` and ``b`` cannot both be checkpoints of one honest ledger.

    Conflicts: the same anchor-log ``tree_size`` with different roots (RFC 9162: a log has one tree per size);
    the same ``height`` with different bodies (one ledger head per height); the higher one with a smaller log or an
    earlier timestamp. Signatures are not checked here: equivocation evidence means something only when both
    notes verified (:meth:`TrustRoot.verify_checkpoint`). ``ValueError`` if they are of different logs.
    """
    if not isinstance(a, Checkpoint) or not isinstance(b, Checkpoint):
        raise TypeError("compare_checkpoints() takes two core.checkpoint.Checkpoint objects")
    if a.origin != b.origin:
        raise ValueError(f"checkpoints of different logs: {a.origin!r} and {b.origin!r}")
    if a == b:
        return
    reason = ""
    if a.log_size == b.log_size and a.log_root != b.log_root:
        reason = f"two anchor-log roots for tree_size {a.log_size}"
    elif a.height == b.height:
        reason = f"two different checkpoints at height {a.height}"
    else:
        older, newer = (a, b) if a.height < b.height else (b, a)
        if newer.log_size < older.log_size:
            reason = f"the log shrank from {older.log_size} to {newer.log_size} as the height grew"
        elif newer.timestamp_ms < older.timestamp_ms:
            reason = f"height {newer.height} is dated before height {older.height}"
    if reason:
        raise SplitViewError(f"split view: {reason}", trusted=a, new=b, notes=notes)


@dataclasses.dataclass(frozen=True, slots=True)
class _CheckpointCheck:
    checkpoint: Checkpoint
    cosignatures: tuple[Cosignature, ...]
    verified: tuple[str, ...]
    error: LicledgerError | None


class TrustRoot:
    """What a verifier trusts: the pinned genesis and, optionally, the latest checkpoint it verified, with member
    records proven under that checkpoint's membership root (rule 2 of the module docstring).

    Build with :meth:`from_genesis`, :func:`load_trust_root` or :meth:`advanced`. Immutable apart from its caches.
    """

    __slots__ = (
        "_checks",
        "_member_proofs",
        "checkpoint",
        "genesis",
        "members",
        "network_id",
        "note",
        "proven",
        "quorum",
    )

    genesis: Genesis
    network_id: str
    note: bytes | None
    checkpoint: Checkpoint | None
    members: dict[str, MemberRecord]
    proven: tuple[tuple[MemberRecord, SparseProof], ...]
    quorum: int

    def __init__(
        self,
        genesis: Genesis,
        *,
        note: bytes | None = None,
        member_proofs: Sequence[tuple[MemberRecord, SparseProof]] = (),
    ) -> None:
        """Raises :class:`TrustRootError` (or the core verification error) if the parts do not fit together."""
        if not isinstance(genesis, Genesis):
            raise TypeError("genesis must be a core.consortium.Genesis")
        self.genesis = genesis
        self.network_id = genesis.network_id
        self.members = {m.name: m for m in genesis.members}
        self.note = None
        self.checkpoint = None
        self.proven = ()
        self._checks: dict[bytes, _CheckpointCheck] = {}
        self._member_proofs: dict[tuple[bytes, MemberRecord, SparseProof], None] = {}
        if note is None:
            if member_proofs:
                raise TrustRootError("member records need the checkpoint they are proven under")
            self.quorum = self._quorum()
            return
        try:
            checkpoint, _ = parse_checkpoint(bytes(note))
        except FormatError as exc:
            raise TrustRootError(f"trust root checkpoint: {exc}") from None
        if checkpoint.origin != self.origin:
            raise TrustRootError(f"trust root checkpoint is for {checkpoint.origin!r}, not {self.origin!r}")
        for record, proof in member_proofs:
            try:
                verify_sparse_proof(checkpoint.membership_root, member_key(record.name), record.record_hash(), proof)
            except (ProofFormatError, RootMismatchError) as exc:
                raise TrustRootError(f"trust root member {record.name}: {exc}") from None
            self.members[record.name] = record
        self.proven = tuple(member_proofs)
        self.quorum = self._quorum()
        # A consistency check of the stored parts, not a proof: see "Bootstrapping" (the file is the verifier's own).
        check = self._check(bytes(note))
        if check.error is not None:
            raise TrustRootError(f"trust root checkpoint does not verify: {check.error}")
        self.note = bytes(note)
        self.checkpoint = checkpoint

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> TrustRoot:
        return cls(genesis)

    @property
    def origin(self) -> str:
        """The checkpoint origin of this network: ``licledger/<network id>``."""
        return origin_of(self.network_id)

    def _quorum(self) -> int:
        known = len(self.members)
        return min(self.genesis.quorum, known) if self.genesis.quorum is not None else default_quorum(known)

    def keys_at(self, timestamp_ms: int) -> dict[str, list[PublicKey]]:
        """Every known member's public keys valid at ``timestamp_ms`` (possibly none)."""
        return {
            name: [k.public_key for k in record.keys if k.valid_at(timestamp_ms)]
            for name, record in self.members.items()
        }

    def _check(self, note: bytes) -> _CheckpointCheck:
        cached = self._checks.get(note)  # keyed by the exact bytes: hashing them for a dict costs less than SM3
        if cached is not None:
            return cached
        checkpoint, cosigs = parse_checkpoint(note)  # the bundle parsed it already; memoised there
        error: LicledgerError | None = None
        verified: list[str] = []
        if checkpoint.origin != self.origin:
            error = WrongNetworkError(checkpoint.origin, self.origin)
        else:
            try:
                verified = verify_cosignatures(checkpoint, cosigs, self.keys_at(checkpoint.timestamp_ms), self.quorum)
                if self.checkpoint is not None:
                    compare_checkpoints(self.checkpoint, checkpoint, notes=(self.note, note))
            except (QuorumError, SplitViewError) as exc:
                error = exc
        result = _CheckpointCheck(checkpoint, tuple(cosigs), tuple(verified), error)
        if len(self._checks) >= _CACHE_LIMIT:
            self._checks.clear()
        self._checks[bytes(note)] = result
        return result

    def verify_checkpoint(self, note: bytes) -> tuple[Checkpoint, tuple[str, ...]]:
        """The checkpoint of a signed note and the members whose cosignatures verified (step 6), memoised by the
        note's bytes. Raises ``FormatError`` (malformed, or another network's), :class:`QuorumError` or
        :class:`SplitViewError` (conflicts with this trust root's checkpoint)."""
        if not isinstance(note, bytes):
            raise TypeError("note must be bytes")
        check = self._check(note)
        if check.error is not None:
            raise check.error.with_traceback(None)
        return check.checkpoint, check.verified

    def verify_member(self, root: bytes, record: MemberRecord | None, name: str, proof: SparseProof) -> None:
        """Verify a member record (or its absence) under a membership root; successes are memoised."""
        key = (root, record, proof) if record is not None else None
        if key is not None and key in self._member_proofs:
            return
        verify_sparse_proof(root, member_key(name), None if record is None else record.record_hash(), proof)
        if key is not None:
            if len(self._member_proofs) >= _CACHE_LIMIT:
                self._member_proofs.clear()
            self._member_proofs[key] = None

    def advanced(
        self,
        new_note: bytes,
        consistency_proof: Sequence[bytes],
        member_proofs: Sequence[tuple[MemberRecord, SparseProof]] = (),
    ) -> TrustRoot:
        """The trust root at ``new_note`` once :func:`advance_checkpoint` accepted it (with this root's keys).

        ``member_proofs`` are ``GetMember`` records and proofs at the new checkpoint: they replace what this root
        knew, so pass every member whose keys changed since the genesis (an updater simply passes all members).
        The new root must verify its own checkpoint with what it knows; :class:`TrustRootError` otherwise.
        """
        advance_checkpoint(self.checkpoint, new_note, consistency_proof, self)
        return TrustRoot(self.genesis, note=new_note, member_proofs=member_proofs)

    # --- the trust root file ---

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TRUST_ROOT_FORMAT,
            "network_id": self.network_id,
            "genesis": self.genesis.to_dict(),
            "checkpoint": None if self.note is None else self.note.decode("utf-8"),
            "members": [{"record": r.to_dict(), "proof": p.to_dict()} for r, p in self.proven],
        }

    def to_json(self) -> bytes:
        return canonical.encode(self.to_dict())


class WrongNetworkError(FormatError):
    """A checkpoint of another network (its origin is not this trust root's)."""

    def __init__(self, found: str, expected: str) -> None:
        self.found = found
        self.expected = expected
        super().__init__(f"checkpoint is for {found!r}, this trust root is for {expected!r}")


def advance_checkpoint(
    trusted: Checkpoint | None, new_note: bytes, consistency_proof: Sequence[bytes], trust_root: TrustRoot
) -> Checkpoint:
    """Accept ``new_note`` as the next trusted checkpoint after ``trusted`` (Trillian Tessera's client rule).

    In order: the note verifies under ``trust_root`` (network, quorum: :meth:`TrustRoot.verify_checkpoint`); it
    does not conflict with ``trusted`` (:func:`compare_checkpoints`, :class:`SplitViewError`); it is not older
    (:class:`ConsistencyError`: no rollback); and ``consistency_proof`` (RFC 9162 §2.1.4) proves that its anchor log
    extends the trusted one (:class:`ConsistencyError` carrying both checkpoints, the proof and the cause). With no
    trusted checkpoint, or a trusted empty log, only the quorum and an empty proof are required.
    Returns the new checkpoint; the caller stores it only then.
    """
    if not isinstance(trust_root, TrustRoot):
        raise TypeError("trust_root must be a TrustRoot")
    if not isinstance(new_note, bytes):
        raise TypeError("new_note must be bytes")
    new, _ = trust_root.verify_checkpoint(new_note)
    if trusted is None:
        return new
    compare_checkpoints(trusted, new, notes=(trust_root.note if trusted == trust_root.checkpoint else None, new_note))
    proof = [bytes(p) for p in consistency_proof]
    if new.height < trusted.height or new.log_size < trusted.log_size:
        raise ConsistencyError(
            f"rollback: the new checkpoint (height {new.height}, tree_size {new.log_size}) is older than the "
            f"trusted one (height {trusted.height}, tree_size {trusted.log_size})",
            trusted=trusted,
            new=new,
            proof=proof,
        )
    if trusted.log_size == 0:
        if proof:
            raise ConsistencyError("a trusted empty log needs an empty proof", trusted=trusted, new=new, proof=proof)
        return new
    try:
        verify_consistency(trusted.log_size, new.log_size, proof, trusted.log_root, new.log_root)
    except (ProofFormatError, RootMismatchError) as exc:
        raise ConsistencyError(
            f"the anchor log at tree_size {new.log_size} is not proven to extend the trusted tree_size "
            f"{trusted.log_size}: {exc}",
            trusted=trusted,
            new=new,
            proof=proof,
            cause=exc,
        ) from None
    return new


# --- trust root files ----------------------------------------------------------------------------------------------


def load_trust_root(data: bytes, *, network_id: str | None = None) -> TrustRoot:
    """A trust root from a file's bytes: a trust-root file (``licledger-trust-root/1``, :meth:`TrustRoot.to_json`),
    a genesis document, a ``GetGenesis`` answer, or a local network's ``network.json`` (its signed genesis
    transaction). ``network_id``, if given, must be the genesis's SM3 (pin it from a channel you trust).
    Raises :class:`TrustRootError`."""
    try:
        value = canonical.decode(data)
    except FormatError as exc:
        raise TrustRootError(f"trust root is not strict JSON: {exc}") from None
    if not isinstance(value, dict):
        raise TrustRootError("trust root must be a JSON object")
    note: bytes | None = None
    proofs: list[tuple[MemberRecord, SparseProof]] = []
    try:
        if value.get("format") == TRUST_ROOT_FORMAT:
            if set(value) != {"format", "network_id", "genesis", "checkpoint", "members"}:
                raise TrustRootError(f"{TRUST_ROOT_FORMAT}: fields wrong: {sorted(value)}")
            genesis_value = value["genesis"]
            if value["checkpoint"] is not None:
                if not isinstance(value["checkpoint"], str):
                    raise TrustRootError("checkpoint must be the signed note text or null")
                note = value["checkpoint"].encode("utf-8")
            if not isinstance(value["members"], list):
                raise TrustRootError("members must be a list")
            for i, item in enumerate(value["members"]):
                if not isinstance(item, dict) or set(item) != {"record", "proof"}:
                    raise TrustRootError(f"members[{i}] must be {{record, proof}}")
                proofs.append(
                    (
                        MemberRecord.from_dict(item["record"], f"members[{i}].record"),
                        SparseProof.from_dict(item["proof"]),
                    )
                )
        elif "genesis_envelope" in value:
            envelope = Envelope.from_bytes(base64.b64decode(str(value["genesis_envelope"]), validate=True))
            if envelope.tx.type != INIT_CONSORTIUM:
                raise TrustRootError("network.json genesis_envelope is not an InitConsortium transaction")
            genesis_value = envelope.tx.args["genesis"]
        elif set(value) == {"genesis"}:
            genesis_value = value["genesis"]
        else:
            genesis_value = value
        genesis = Genesis.from_dict(genesis_value)
    except TrustRootError:
        raise
    except (FormatError, binascii.Error) as exc:
        raise TrustRootError(f"trust root: {exc}") from None
    if network_id is not None and genesis.network_id != network_id:
        raise TrustRootError(f"the genesis has network id {genesis.network_id}, not the pinned {network_id}")
    if value.get("format") == TRUST_ROOT_FORMAT and value["network_id"] != genesis.network_id:
        raise TrustRootError("trust root network_id is not the SM3 of its genesis")
    return TrustRoot(genesis, note=note, member_proofs=proofs)
