"""The verifier's trust core: does a proof bundle prove a license valid? No I/O: bytes in, a verdict out.

The checklist (after sigstore-python's ``verify/verifier.py``); each step is tagged ``# N.`` in the code and
explained in docs/verifier.md. A bundle is VALID only when every step passes.

1. **Bundle.** Parse and validate the bundle (:meth:`core.bundle.ProofBundle.from_json`: version, sizes,
   encodings, one license and one issuer throughout) and, if the caller names a license, that it is that one.
2. **Issuer and keys.** The issuer's member record is proven (sparse Merkle proof, :mod:`core.smt`) under the
   checkpoint's membership root; it is a province, the license's issuing authority (GB 32100 code in the
   GB/T 36904 identifier) is one of its issuers, the key that anchored the batch was valid when it did, and the
   key named by the seal was valid at the seal's signing time (GB/T 32918 keys with validity intervals,
   docs/chaincode.md "Membership"), which cannot be later than the anchoring. Keys from the genesis alone are not
   enough: members rotate keys, and the record as of the checkpoint lists every key with its interval.
3. **Seal and commitment.** With the document disclosed: ``SM3(salt || canonical document)`` is the commitment
   (GM/T 0004, :mod:`core.commitment`) and the seal's SM2 signature verifies over the canonical document (its
   bytes as disclosed, :func:`core.licenses.parse_signed_document`) under
   that key (:func:`core.seal.verify_seal`). With only the commitment disclosed there is nothing to check here:
   the issuer's anchoring (steps 4-5, proven by step 2's key check) vouches for the commitment.
4. **Leaf in batch.** The leaf record is ``leaf_data(license_id, version, commitment)`` and its RFC 9162 §2.1.3
   inclusion proof leads to the batch root.
5. **Batch in log.** The batch record's RFC 9162 inclusion proof leads to the checkpoint's anchor-log root at the
   checkpoint's ``tree_size``.
6. **Checkpoint.** The checkpoint (C2SP signed note, :mod:`core.checkpoint`) is for this network and carries
   cosignatures of a quorum of distinct members under keys valid at its timestamp, and does not conflict with the
   trust root's own checkpoint (same size, other root: a split view). Which keys count: see *Bootstrapping*.
7. **Status.** The status record (or its absence) is proven under the checkpoint's status root: no record means
   the license never changed status (active as issued); ``revoked`` gives REVOKED, ``suspended`` SUSPENDED,
   ``active``/``reinstated`` pass. The record names the license's current version (the contract's version
   update, reason ``NEW_VERSION``, docs/chaincode.md "Status map"): a newer version than the bundle's gives
   SUPERSEDED (the voucher is an old version, naming the newer one); the same version with another commitment
   is INVALID (``STATUS_OTHER_LEAF``); an older one says nothing about this version. Revocation and suspension
   apply to the license, so they win over SUPERSEDED.
8. **Freshness.** The checkpoint is not older than the caller's policy (``max_checkpoint_age_ms``) and not
   dated in the future beyond :data:`MAX_CLOCK_SKEW_MS`; otherwise the status is not known *now*: UNDECIDED.

Steps 2, 4, 5 and 7 prove facts relative to the checkpoint's roots; step 6 is what makes those roots trusted, so
it runs right after step 1 (order 1, 6, 2, 3, 4, 5, 7, 8): a forged checkpoint is reported as such, not as the
first proof that disagrees with it. A failure anywhere in steps 1-7 makes the verdict INVALID; the first failure
ends the run (steps not reached are reported as not run) and carries the evidence: expected and calculated
roots, key ids and intervals, the quorum's shortfall. Results: VALID (exit code 0); INVALID, REVOKED, SUSPENDED,
SUPERSEDED (1); UNDECIDED (2). A revocation is final (docs/chaincode.md transition table), so a revoked license
stays REVOKED even under a stale checkpoint, and so does a superseded version (versions only go forwards); for any
other status a stale checkpoint gives UNDECIDED.

**Bootstrapping (step 6)**: which keys verify cosignatures, and why that is safe, is rule 2 of
:mod:`verifier.trust` (genesis keys, overlaid with member records proven under the trust root's own, already
verified checkpoint; never the keys the checkpoint under test proves for itself).

**Raising vs returning.** Untrusted data (the bundle, the note) never raises: every failure is an INVALID or
UNDECIDED verdict whose failing step carries the evidence. Caller misuse (wrong types, negative times, an
unparsable ``expected_license_id``) raises ``ValueError``/``TypeError``.

**Cost.** The trust root memoises each checkpoint's cosignature check (keyed by the note's bytes) and the issuer's
membership proof, and :mod:`core.bundle` memoises parsing the parts bundles share, so verifying many bundles
under one checkpoint costs one SM2 verification each (the seal's) plus hashing and parsing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from chaincode.anchoring import status_tree_key
from core.bundle import InvalidBundleError, ProofBundle
from core.checkpoint import QuorumError
from core.codes import LICENSE_OID, LicenseId
from core.commitment import CommitmentMismatchError, leaf_data, verify_commitment
from core.consortium import PROVINCE, MemberRecord
from core.errors import DocumentError, ProofFormatError, RootMismatchError, SignatureError, SignatureFormatError
from core.licenses import License, canonical_bytes
from core.merkle import leaf_hash, verify_inclusion
from core.seal import SealMismatchError, verify_seal
from core.smt import verify_sparse_proof
from core.transactions import ACTIVE, REVOKED, SUSPENDED
from verifier.trust import (
    TRUST_ROOT_FORMAT,
    ConsistencyError,
    SplitViewError,
    TrustRoot,
    TrustRootError,
    WrongNetworkError,
    advance_checkpoint,
    compare_checkpoints,
    load_trust_root,
)

__all__ = [
    "MAX_CLOCK_SKEW_MS",
    "STEP_NAMES",
    "TRUST_ROOT_FORMAT",
    "ConsistencyError",
    "Facts",
    "Result",
    "SplitViewError",
    "StepResult",
    "TrustRoot",
    "TrustRootError",
    "Verdict",
    "WrongNetworkError",
    "advance_checkpoint",
    "compare_checkpoints",
    "load_trust_root",
    "verify_bundle",
]

MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
"""How far a checkpoint may be dated after ``now_ms`` (the contract's own tolerance for transaction times)."""

STEP_NAMES: dict[int, str] = {
    1: "bundle",
    2: "issuer and keys",
    3: "seal and commitment",
    4: "leaf in batch",
    5: "batch in log",
    6: "checkpoint",
    7: "status",
    8: "freshness",
}


_STEP_ORDER = tuple(sorted(STEP_NAMES))


class _NoEvidence(Mapping[str, Any]):
    """The empty evidence of a step that passed: immutable, shared, and picklable (verdicts cross processes)."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"

    def __reduce__(self) -> str:
        return "NO_EVIDENCE"  # pickled by name: the one instance


NO_EVIDENCE: Mapping[str, Any] = _NoEvidence()


class Result(StrEnum):
    VALID = "VALID"
    REVOKED = "REVOKED"
    SUSPENDED = "SUSPENDED"
    SUPERSEDED = "SUPERSEDED"
    """A newer version of the license is anchored: this bundle's version is no longer the license."""
    INVALID = "INVALID"
    UNDECIDED = "UNDECIDED"

    @property
    def exit_code(self) -> int:
        """0 valid, 1 invalid / revoked / suspended / superseded, 2 could not decide."""
        return {Result.VALID: 0, Result.UNDECIDED: 2}.get(self, 1)


class StepResult(NamedTuple):
    """One step of the checklist: ``ok`` is ``True`` (passed), ``False`` (failed) or ``None`` (not run).

    Immutable like the verdict that holds it; a named tuple because eight are made for every bundle verified, and
    it is the cheapest immutable record Python has."""

    number: int
    name: str
    ok: bool | None
    detail: str
    reason: str | None = None
    """A stable code for a failure (``LEAF_NOT_IN_BATCH``, ``NO_QUORUM``, ...), ``None`` when passed."""
    evidence: Mapping[str, Any] = NO_EVIDENCE
    """JSON values: expected and calculated roots, key ids and intervals, cosigners, ..."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "reason": self.reason,
            "evidence": dict(self.evidence),
        }


class Facts(NamedTuple):
    """What the bundle says about the license. ``proven`` is ``False`` when the verdict is INVALID: then only the
    claimed ``license_id`` and ``issuer`` are filled, for the report, and none of it may be relied on. (A named
    tuple, as :class:`StepResult`: immutable and cheap to make.)"""

    proven: bool
    license_id: str | None = None
    issuer: str | None = None
    kind: str | None = None
    issuer_authority: str | None = None
    commitment: str | None = None
    status: str | None = None
    status_reason: str | None = None
    status_effective_ms: int | None = None
    signing_time_ms: int | None = None
    anchored_ms: int | None = None
    checkpoint_timestamp_ms: int | None = None
    checkpoint_log_size: int | None = None
    cosigners: tuple[str, ...] = ()
    superseded_by: str | None = None
    """The newer version (full identifier) the ledger's status record names, when it is newer than the bundle's."""
    license: License | None = None
    """The disclosed document, parsed (``None``: only the commitment was disclosed)."""

    @property
    def disclosed(self) -> bool:
        return self.license is not None

    @property
    def document(self) -> dict[str, Any] | None:
        """The disclosed document (canonical JSON value), or ``None``."""
        return None if self.license is None else self.license.to_canonical_dict()

    @property
    def holder(self) -> dict[str, Any] | None:
        """The holder as disclosed: in full with the document; ``None`` without (nothing about it is proven)."""
        return None if self.license is None else dict(self.license.to_canonical_dict()["holder"])

    @property
    def holder_masked(self) -> dict[str, Any] | None:
        """The holder with personal data masked (``张*``, ``1101**********123X``), for screens and logs."""
        return None if self.license is None else dict(self.license.masked()["holder"])

    def to_dict(self, *, personal: bool = True) -> dict[str, Any]:
        """JSON value of the facts; ``personal=False`` replaces the document and holder by masked views."""
        out = {name: getattr(self, name) for name in self._fields if name != "license"}
        out["cosigners"] = list(self.cosigners)
        out["disclosed"] = self.disclosed
        if self.license is None:
            out["holder"] = out["document"] = None
        elif personal:
            out["holder"], out["document"] = self.holder, self.document
        else:
            out["holder"], out["document"] = self.holder_masked, self.license.masked()
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of :func:`verify_bundle`: the result, all eight steps in order, and the facts."""

    result: Result
    steps: tuple[StepResult, ...]
    facts: Facts

    @property
    def exit_code(self) -> int:
        return self.result.exit_code

    @property
    def failed_step(self) -> StepResult | None:
        """The first step that did not pass (``None`` when all passed)."""
        return next((s for s in self.steps if s.ok is False), None)

    def to_dict(self, *, personal: bool = True) -> dict[str, Any]:
        return {
            "result": self.result.value,
            "exit_code": self.exit_code,
            "steps": [s.to_dict() for s in self.steps],
            "facts": self.facts.to_dict(personal=personal),
        }


# --- verification ----------------------------------------------------------------------------------------------


class _StepFailed(Exception):
    def __init__(self, reason: str, detail: str, evidence: Mapping[str, Any] | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.evidence = dict(evidence or {})
        super().__init__(detail)


def _roots(exc: RootMismatchError) -> dict[str, str]:
    return {"expected_root": exc.expected_root.hex(), "calculated_root": exc.calculated_root.hex()}


def _check_caller(trust_root: object, now_ms: object, max_age: object, expected: object) -> LicenseId | str | None:
    if not isinstance(trust_root, TrustRoot):
        raise TypeError(f"trust_root must be a TrustRoot, not {type(trust_root).__name__}")
    if type(now_ms) is not int or now_ms < 0:
        raise ValueError("now_ms must be a non-negative int (milliseconds since the Unix epoch)")
    if max_age is not None and (type(max_age) is not int or max_age < 0):
        raise ValueError("max_checkpoint_age_ms must be None or a non-negative int")
    if expected is None:
        return None
    if not isinstance(expected, str):
        raise TypeError("expected_license_id must be a str")
    parts = expected.split(".")
    try:
        if len(parts) == 10:
            return LicenseId.parse(expected)
        if len(parts) == 8 and ".".join(parts[:5]) == LICENSE_OID:
            return LicenseId.build(parts[5], parts[6], parts[7]).base
    except DocumentError as exc:
        raise ValueError(f"expected_license_id {expected!r}: {exc}") from None
    raise ValueError(f"expected_license_id {expected!r} is not a license identifier or identifier base")


def verify_bundle(
    bundle: ProofBundle | bytes | str,
    trust_root: TrustRoot,
    *,
    now_ms: int,
    max_checkpoint_age_ms: int | None,
    expected_license_id: str | None = None,
) -> Verdict:
    """Run the checklist (module docstring) on ``bundle`` and return the :class:`Verdict`; never raises for
    untrusted data. ``expected_license_id`` (full identifier or base) makes a bundle for any other license INVALID.
    """
    expected = _check_caller(trust_root, now_ms, max_checkpoint_age_ms, expected_license_id)
    results: dict[int, StepResult] = {}
    # 1. parse and validate the bundle
    try:
        b = _step1(bundle, expected)
    except _StepFailed as failure:
        return _invalid(results, 1, failure, None)
    results[1] = StepResult(
        1, STEP_NAMES[1], True, f"{'document' if b.disclosed else 'commitment'} disclosed; {b.license_id}"
    )
    run = _Run(b, trust_root)
    # 6 first: every other proof is relative to the checkpoint's roots, so a forged checkpoint is reported as
    # such (step 6), not as the first proof that disagrees with it. Then 2, 3, 4, 5, 7 in order.
    for number, check in ((6, _step6), (2, _step2), (3, _step3), (4, _step4), (5, _step5), (7, _step7)):
        try:
            detail = check(run)
        except _StepFailed as failure:
            return _invalid(results, number, failure, b)
        results[number] = StepResult(number, STEP_NAMES[number], True, detail)
    status = run.status
    result = {REVOKED: Result.REVOKED, SUSPENDED: Result.SUSPENDED}.get(status, Result.VALID)
    if result is Result.VALID and run.superseded_by is not None:
        result = Result.SUPERSEDED
    if result is not Result.VALID:
        s = b.status
        assert s is not None
        evidence = {"status": s.status, "reason": s.reason, "effective_ms": s.effective_ms, "status_seq": s.status_seq}
        detail = results[7].detail
        if result is Result.SUPERSEDED:
            evidence.update(license_id=s.license_id, commitment=s.commitment.hex(), batch_seq=s.batch_seq)
            detail = f"superseded: the license's current version is {s.license_id} ({s.status} as of the checkpoint)"
        results[7] = StepResult(7, STEP_NAMES[7], False, detail, result.value, evidence)
    # 8. freshness
    final = result in (Result.REVOKED, Result.SUPERSEDED)
    results[8] = _step8(b.checkpoint.timestamp_ms, now_ms, max_checkpoint_age_ms, final)
    if results[8].ok is False and not final:
        result = Result.UNDECIDED  # a revocation or a newer version is final; anything else may have changed since
    facts = _facts(b, status, run.cosigners, run.superseded_by)
    return Verdict(result, tuple([results[n] for n in _STEP_ORDER]), facts)


@dataclasses.dataclass(slots=True)
class _Run:
    b: ProofBundle
    trust_root: TrustRoot
    record: MemberRecord | None = None
    cosigners: tuple[str, ...] = ()
    status: str = ACTIVE
    superseded_by: str | None = None


def _invalid(results: dict[int, StepResult], number: int, failure: _StepFailed, b: ProofBundle | None) -> Verdict:
    results[number] = StepResult(number, STEP_NAMES[number], False, failure.detail, failure.reason, failure.evidence)
    steps = tuple(results.get(n) or StepResult(n, STEP_NAMES[n], None, "not run") for n in STEP_NAMES)
    claimed = Facts(False, None if b is None else str(b.license_id), None if b is None else b.issuer)
    return Verdict(Result.INVALID, steps, claimed)


# 1. the bundle parses (version, sizes, encodings, one license and issuer) and is for the license asked about
def _step1(bundle: ProofBundle | bytes | str, expected: LicenseId | str | None) -> ProofBundle:
    if isinstance(bundle, ProofBundle):
        b = bundle
    elif isinstance(bundle, bytes | bytearray | str):
        try:
            b = ProofBundle.from_json(bundle)
        except InvalidBundleError as exc:
            raise _StepFailed("MALFORMED_BUNDLE", str(exc), {"path": exc.path, "problem": exc.problem}) from None
    else:
        raise TypeError(f"bundle must be a ProofBundle, bytes or str, not {type(bundle).__name__}")
    if expected is not None:
        found = str(b.license_id) if isinstance(expected, LicenseId) else b.license_id.base
        if found != str(expected):
            raise _StepFailed(
                "WRONG_LICENSE",
                f"the bundle is for {b.license_id}, not {expected}",
                {"expected": str(expected), "found": str(b.license_id)},
            )
    return b


# 6. the checkpoint is this network's, cosigned by a quorum of known members with keys valid at its time, and
#    does not conflict with the trust root's checkpoint
def _step6(run: _Run) -> str:
    try:
        _, run.cosigners = run.trust_root.verify_checkpoint(run.b.note)
    except WrongNetworkError as exc:
        raise _StepFailed("WRONG_NETWORK", str(exc), {"expected": exc.expected, "found": exc.found}) from None
    except QuorumError as exc:
        evidence = {
            "needed": exc.needed,
            "got": exc.got,
            "verified": exc.verified_names,
            "failures": [{"name": f.name, "key_hint": f.key_hint.hex(), "reason": f.reason} for f in exc.failures],
        }
        raise _StepFailed("NO_QUORUM", str(exc), evidence) from None
    except SplitViewError as exc:
        evidence = {"trusted": exc.trusted.body().decode(), "bundle": exc.new.body().decode()}
        raise _StepFailed(
            "SPLIT_VIEW", f"{exc}: the bundle's checkpoint conflicts with the trusted one", evidence
        ) from None
    cp = run.b.checkpoint
    return (
        f"checkpoint at height {cp.height}, tree_size {cp.log_size}, cosigned by {len(run.cosigners)} "
        f"({', '.join(run.cosigners)}) of the {run.trust_root.quorum} required"
    )


# 5. the batch is in the anchor log at the checkpoint's tree_size (RFC 9162 §2.1.3 inclusion proof)
def _step5(run: _Run) -> str:
    b, cp = run.b, run.b.checkpoint
    try:
        verify_inclusion(b.log_index, cp.log_size, b.batch.leaf_hash, b.log_proof, cp.log_root)
    except ProofFormatError as exc:
        raise _StepFailed("BATCH_PROOF_MALFORMED", f"batch inclusion proof: {exc}") from None
    except RootMismatchError as exc:
        raise _StepFailed(
            "BATCH_NOT_IN_LOG",
            f"the batch is not entry {b.log_index} of the anchor log at tree_size {cp.log_size}",
            {**_roots(exc), "log_index": b.log_index, "tree_size": cp.log_size},
        ) from None
    return f"batch {b.issuer}/{b.batch.batch_seq} is entry {b.log_index} of the anchor log at tree_size {cp.log_size}"


# 8. freshness: the checkpoint is neither older than the caller's policy allows nor dated in the future
def _step8(checkpoint_ms: int, now_ms: int, max_age: int | None, final: bool) -> StepResult:
    age = now_ms - checkpoint_ms
    if age < -MAX_CLOCK_SKEW_MS or (max_age is not None and age > max_age):
        return _stale(age, checkpoint_ms, now_ms, max_age, final)
    policy = "no freshness policy" if max_age is None else f"at most {max_age} ms allowed"
    return StepResult(8, STEP_NAMES[8], True, f"the checkpoint is {age} ms old ({policy})")


def _stale(age: int, checkpoint_ms: int, now_ms: int, max_age: int | None, final: bool) -> StepResult:
    """Step 8 failed: the checkpoint is dated in the future, or older than ``max_age``."""
    evidence = {"checkpoint_ms": checkpoint_ms, "now_ms": now_ms, "max_age_ms": max_age}
    if age < -MAX_CLOCK_SKEW_MS:
        detail = f"the checkpoint is dated {-age} ms in the future: check this computer's clock"
        return StepResult(8, STEP_NAMES[8], False, detail, "CHECKPOINT_IN_FUTURE", evidence)
    detail = f"the checkpoint is {age} ms old, more than the {max_age} ms allowed: the status now is not known"
    if final:
        detail += " (but a revocation or a newer version is final)"
    return StepResult(8, STEP_NAMES[8], False, detail, "STALE_CHECKPOINT", evidence)


# 2. the issuer is a member, its authority is the license's, and its keys were valid when they anchored and sealed
def _step2(run: _Run) -> str:
    b = run.b
    cp, record = b.checkpoint, b.member
    try:
        run.trust_root.verify_member(cp.membership_root, record, b.issuer, b.member_proof)
    except ProofFormatError as exc:
        raise _StepFailed("MEMBER_PROOF_MALFORMED", f"member proof: {exc}") from None
    except RootMismatchError as exc:
        raise _StepFailed(
            "MEMBER_PROOF_INVALID",
            f"the member record of {b.issuer} is not proven under the checkpoint's membership root",
            _roots(exc),
        ) from None
    if record is None:
        raise _StepFailed("NOT_A_MEMBER", f"{b.issuer} is proven not to be a member at the checkpoint")
    if record.role != PROVINCE:
        raise _StepFailed("NOT_A_PROVINCE", f"{b.issuer} is a {record.role}, and only provinces issue licenses")
    if b.license_id.issuer_uscc not in record.issuers:
        raise _StepFailed(
            "ISSUER_NOT_OF_MEMBER",
            f"the license's issuing authority {b.license_id.issuer_uscc} is not one of {b.issuer}'s",
            {"license_issuer": b.license_id.issuer_uscc, "member_issuers": list(record.issuers)},
        )
    anchor_key = record.key(b.batch.key_id)
    if anchor_key is None or not anchor_key.valid_at(b.batch.timestamp_ms):
        raise _StepFailed(
            "ANCHOR_KEY_NOT_VALID" if anchor_key else "ANCHOR_KEY_UNKNOWN",
            f"the batch was anchored with key {b.batch.key_id[:16]}…, "
            + ("not valid then" if anchor_key else f"not a key of {b.issuer}"),
            _key_evidence(record, b.batch.key_id, b.batch.timestamp_ms),
        )
    seal = b.seal
    if seal is not None:
        seal_key = record.key(seal.key_id)
        if seal_key is None:
            raise _StepFailed(
                "SEAL_KEY_UNKNOWN",
                f"the seal names key {seal.key_id[:16]}…, which is not a key of {b.issuer}",
                _key_evidence(record, seal.key_id, seal.signing_time),
            )
        if not seal_key.valid_at(seal.signing_time):
            raise _StepFailed(
                "SEAL_KEY_NOT_VALID_AT_SIGNING_TIME",
                f"key {seal.key_id[:16]}… of {b.issuer} is valid in [{seal_key.valid_from_ms}, "
                f"{seal_key.valid_until_ms}) but the seal says it signed at {seal.signing_time}",
                _key_evidence(record, seal.key_id, seal.signing_time),
            )
        if seal.signing_time > b.batch.timestamp_ms:
            raise _StepFailed(
                "SEALED_AFTER_ANCHORING",
                f"the seal's signing time {seal.signing_time} is after its batch was anchored ({b.batch.timestamp_ms})",
                {"signing_time": seal.signing_time, "anchored_ms": b.batch.timestamp_ms},
            )
    run.record = record
    keys = "anchoring and sealing keys were" if seal is not None else "anchoring key was"
    return f"{b.issuer} is a province member issuing for {b.license_id.issuer_uscc}; the {keys} valid then"


def _key_evidence(record: MemberRecord, key_id: str, at_ms: int) -> dict[str, Any]:
    return {
        "key_id": key_id,
        "at_ms": at_ms,
        "member_keys": [
            {"key_id": k.key_id, "valid_from_ms": k.valid_from_ms, "valid_until_ms": k.valid_until_ms}
            for k in record.keys
        ],
    }


# 3. the commitment opens to the disclosed document and the seal's SM2 signature verifies over it
def _step3(run: _Run) -> str:
    b, record = run.b, run.record
    assert record is not None  # step 2 ran
    if b.document is None or b.salt is None or b.seal is None:
        return "only the commitment is disclosed: no document or seal to check (the issuer's anchoring vouches for it)"
    document_bytes = canonical_bytes(b.document)
    try:
        verify_commitment(document_bytes, b.salt, b.commitment)
    except CommitmentMismatchError as exc:
        raise _StepFailed(
            "COMMITMENT_MISMATCH",
            "SM3(salt || document) is not the commitment",
            {"expected": exc.expected.hex(), "calculated": exc.calculated.hex()},
        ) from None
    seal_key = record.key(b.seal.key_id)
    assert seal_key is not None  # step 2
    try:
        verify_seal(b.document, b.seal, seal_key.public_key)
    except SealMismatchError as exc:
        raise _StepFailed(
            "SEAL_MISMATCH", str(exc), {"what": exc.what, "expected": exc.expected, "calculated": exc.calculated}
        ) from None
    except (SignatureError, SignatureFormatError) as exc:
        raise _StepFailed(
            "BAD_SEAL_SIGNATURE",
            f"the seal's SM2 signature does not verify over the document: {exc}",
            {"key_id": b.seal.key_id},
        ) from None
    return f"commitment opens to the document; seal by {b.seal.issuer_authority} verifies (SM2)"


# 4. the leaf record is this license version's and is in its batch (RFC 9162 §2.1.3 inclusion proof)
def _step4(run: _Run) -> str:
    b = run.b
    lid, leaf = b.license_id, b.leaf
    if (leaf.license, leaf.version, leaf.commitment) != (lid.base, lid.version, b.commitment):
        raise _StepFailed(
            "LEAF_MISMATCH",
            "the leaf record is not the one for this license id, version and commitment",
            {
                "expected": {"license": lid.base, "version": lid.version, "commitment": b.commitment.hex()},
                "found": leaf.to_dict(),
            },
        )
    try:
        verify_inclusion(
            b.leaf_index,
            b.batch.leaf_count,
            leaf_hash(leaf_data(lid, lid.version, b.commitment)),
            b.leaf_proof,
            b.batch.root,
        )
    except ProofFormatError as exc:
        raise _StepFailed("LEAF_PROOF_MALFORMED", f"leaf inclusion proof: {exc}") from None
    except RootMismatchError as exc:
        raise _StepFailed(
            "LEAF_NOT_IN_BATCH",
            f"the leaf is not leaf {b.leaf_index} of batch {b.issuer}/{b.batch.batch_seq}",
            {**_roots(exc), "leaf_index": b.leaf_index, "leaf_count": b.batch.leaf_count},
        ) from None
    return f"leaf {b.leaf_index} of the {b.batch.leaf_count} in batch {b.issuer}/{b.batch.batch_seq}"


# 7. the license's status as of the checkpoint (sparse Merkle proof under the status root)
def _step7(run: _Run) -> str:
    b = run.b
    record = b.status
    try:
        verify_sparse_proof(
            b.checkpoint.status_root,
            status_tree_key(b.license_id.base),
            None if record is None else record.value_hash,
            b.status_proof,
        )
    except ProofFormatError as exc:
        raise _StepFailed("STATUS_PROOF_MALFORMED", f"status proof: {exc}") from None
    except RootMismatchError as exc:
        what = "the absence of a status record" if record is None else f"status {record.status!r}"
        raise _StepFailed(
            "STATUS_PROOF_INVALID", f"{what} is not proven under the checkpoint's status root", _roots(exc)
        ) from None
    if record is None:
        return "no status record: the license never changed status, active as issued"
    run.status = record.status
    named = LicenseId.parse(record.license_id)
    if named.version > b.license_id.version:
        run.superseded_by = record.license_id
    elif named.version == b.license_id.version and record.commitment != b.commitment:
        raise _StepFailed(
            "STATUS_OTHER_LEAF",
            f"the status record names another leaf of version {named.version} (commitment "
            f"{record.commitment.hex()[:16]}…, batch {record.issuer}/{record.batch_seq} leaf {record.leaf_index})",
            {"record_commitment": record.commitment.hex(), "bundle_commitment": b.commitment.hex()},
        )
    return f"{record.status} as of the checkpoint (reason {record.reason}, effective {record.effective_ms})"


def _facts(b: ProofBundle, status: str, cosigners: Sequence[str], superseded_by: str | None) -> Facts:
    return Facts(
        proven=True,
        license_id=str(b.license_id),
        issuer=b.issuer,
        kind=None if b.license_id.kind is None else b.license_id.kind.value,
        issuer_authority=None if b.seal is None else b.seal.issuer_authority,
        commitment=b.commitment.hex(),
        status=status,
        status_reason=None if b.status is None else b.status.reason,
        status_effective_ms=None if b.status is None else b.status.effective_ms,
        signing_time_ms=None if b.seal is None else b.seal.signing_time,
        anchored_ms=b.batch.timestamp_ms,
        checkpoint_timestamp_ms=b.checkpoint.timestamp_ms,
        checkpoint_log_size=b.checkpoint.log_size,
        cosigners=tuple(cosigners),
        superseded_by=superseded_by,
        license=b.document,
    )
