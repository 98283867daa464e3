"""Proofs, vouchers and the ledger's checkpoints (docs/node.md, "Proofs and vouchers").

* ``GET /v1/licenses/{id}/proof``: the proof bundle (:mod:`core.bundle`, ``licledger-proof/1``) against the latest
  final checkpoint. Anyone with the license id gets the public view (issuer, commitment, proofs, status); the
  document, salt and seal go only to roles entitled to the personal data (operator, auditor, the holder, the
  person's institutions), and each such disclosure is audited (``license.proof``). ``?view=public`` asks for the
  public view whatever the role.
* ``GET /v1/commitments/{commitment}/proof``: the same for the license version that committed to ``commitment``
  (hex ``SM3(salt || document)``, what a holder's QR reference and the ledger's leaf carry), for a verifier who
  holds the commitment but not the identifier; 404 when this node holds no such version.
* ``GET /v1/licenses/{id}/voucher.pdf``: the printed voucher (:mod:`node.voucher`) with the same split.
* ``GET /v1/ledger/checkpoint``: the latest final checkpoint; ``GET /v1/ledger/consistency?from=&to=``: the
  RFC 9162 consistency proof between two final checkpoints (by checkpoint ``seq``), so a verifier can advance
  its trusted checkpoint (:func:`verifier.trust.advance_checkpoint`).
* ``GET /v1/ledger/proofs?license_id=&issuer=&log_index=[&seq=]``: for **any** member's license, the ledger's
  parts of its bundle at a final checkpoint (batch inclusion in the anchor log, status proof, issuer's member
  record), so a verifier can refresh a stale bundle from any node; ``GET /v1/ledger/members?name=...[&seq=]``:
  member records with their proofs at a checkpoint (key rotations), docs/verifier.md "Cross-node resolution".
* A proof or voucher of a license issued by **another province** is answered ``307 Temporary Redirect`` to that
  province's node when the node's directory (``LICLEDGER_NODE_DIRECTORY``) knows it, with ``{"detail",
  "issuer", "node"}``; otherwise 404 as for any unknown license.

Callers without a credential are rate-limited like the other public routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from core.bundle import public_view
from core.commitment import COMMITMENT_HEX
from core.errors import DocumentError
from node import audit, queries, records
from node.access import Principal, sees_personal_data
from node.api.deps import Ctx, CurrentPrincipal, NodeDep, ReadSessionDep, rate_limit
from node.api.routes.licenses import ERRORS, LicenseIdPath
from node.context import NodeContext
from node.db.engine import unit_of_work
from node.errors import NotFoundError, PermissionDeniedError
from node.proofs import MAX_MEMBERS, ProofService, issuer_nodes
from node.voucher import render_voucher

router = APIRouter(tags=["proofs"])
PROOF_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 425: ERRORS[409], 502: ERRORS[409], 503: ERRORS[409]}
BUNDLE_MEDIA_TYPE = "application/json"
BUNDLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {BUNDLE_MEDIA_TYPE: {}}, "description": "a licledger-proof/1 bundle"},
    **PROOF_ERRORS,
}


def get_proofs(request: Request, node: NodeDep) -> ProofService:
    service: ProofService | None = getattr(request.app.state, "proofs", None)
    if service is None:
        service = request.app.state.proofs = ProofService(node)
    return service


ProofsDep = Annotated[ProofService, Depends(get_proofs)]


def limited(request: Request, principal: CurrentPrincipal) -> Principal:
    """The caller; the public (no credential) is rate-limited per client IP."""
    if principal.role == "public":
        rate_limit(request)
    return principal


Caller = Annotated[Principal, Depends(limited)]


@dataclass(frozen=True, slots=True)
class ProofCall:
    """What every proof and voucher route works with: the caller (rate-limited when public), a read-only session,
    the proof service, the node and the request's id and time."""

    principal: Principal
    session: Session
    proofs: ProofService
    node: NodeContext
    ctx: records.Request


def proof_call(principal: Caller, session: ReadSessionDep, proofs: ProofsDep, node: NodeDep, ctx: Ctx) -> ProofCall:
    return ProofCall(principal, session, proofs, node, ctx)


ProofCallDep = Annotated[ProofCall, Depends(proof_call)]
View = Annotated[
    Literal["full", "public"] | None,
    Query(description="`public`: without document, salt and seal; default: full for entitled roles."),
]


class Referral(Exception):
    """The license is another province's and the directory names its node: answer 307 there."""

    def __init__(self, response: Response) -> None:
        self.response = response


def referral(request: Request, node: Any, license_id: str, suffix: str) -> Response | None:
    """A 307 to the issuing province's node for a license this node does not hold, or ``None``."""
    ref = queries.parse_license_ref(license_id)
    found = issuer_nodes(node.settings, node.ledger, ref, node.directory.current())
    if len(found) != 1:
        return None
    [(province, url)] = found.items()
    query = f"?{request.url.query}" if request.url.query else ""
    location = f"{url}/v1/licenses/{quote(license_id, safe='')}/{suffix}{query}"
    body = {
        "detail": f"license {license_id} is issued in province {province}; ask its node",
        "issuer": province,
        "node": url,
    }
    return JSONResponse(body, status_code=307, headers={"Location": location})


def _prepare(
    call: ProofCall, license_id: str, view: str | None, request: Request, suffix: str
) -> tuple[queries.Loaded, bool]:
    try:
        loaded = queries.load(call.session, queries.parse_license_ref(license_id))
    except NotFoundError:
        redirect = referral(request, call.node, license_id, suffix)
        if redirect is not None:
            raise Referral(redirect) from None
        raise
    return loaded, _disclose(call.principal, loaded, view)


def _disclose(principal: Principal, loaded: queries.Loaded, view: str | None) -> bool:
    """Whether the answer carries the document, salt and seal: the entitled roles' default, else what ``view``
    asks; 403 for ``view=full`` from anyone else."""
    entitled = sees_personal_data(principal, loaded.row.holder_hash, loaded.institutions)
    disclose = entitled if view is None else view == "full"
    if disclose and not entitled:
        raise PermissionDeniedError(
            "the full proof (document and salt) is for the holder and entitled roles", role=principal.role
        )
    return disclose


def _bundle_response(call: ProofCall, loaded: queries.Loaded, disclose: bool) -> Response:
    """The bundle of ``loaded`` against the latest final checkpoint; a disclosure is audited (``license.proof``,
    personal data) and committed before the answer leaves."""
    bundle = call.proofs.bundle(call.session, loaded, disclose=disclose)
    if disclose:
        _audit_disclosure(call, loaded, "license.proof")
    return Response(bundle.to_json(), media_type=BUNDLE_MEDIA_TYPE)


def _audit_disclosure(call: ProofCall, loaded: queries.Loaded, action: str) -> None:
    """Record that the caller was given ``loaded``'s personal data, in a unit of work of its own (the routes read
    in a read-only session: the write lock is held for this insert only, not while the ledger answers),
    committed before the answer leaves; if it fails, nothing is disclosed."""
    with unit_of_work(call.node.sessions) as session:
        audit.record(
            session,
            call.principal,
            action,
            now_ms=call.ctx.now_ms,
            request_id=call.ctx.request_id,
            object=loaded.version.full_id,
            personal_data=True,
        )


@router.get(
    "/v1/licenses/{license_id}/proof",
    responses=BUNDLE_RESPONSES,
    response_class=Response,
)
def get_proof(request: Request, license_id: LicenseIdPath, call: ProofCallDep, view: View = None) -> Response:
    """The license version's proof bundle against the latest final checkpoint (425 while there is none yet); 307
    to the issuer's node for another province's license the node's directory knows."""
    try:
        loaded, disclose = _prepare(call, license_id, view, request, "proof")
    except Referral as ref:
        return ref.response
    return _bundle_response(call, loaded, disclose)


CommitmentPath = Annotated[
    str,
    Path(
        pattern=f"^{COMMITMENT_HEX}$",
        description="A license version's commitment: SM3(salt || canonical document), 64 hex digits.",
    ),
]


@router.get(
    "/v1/commitments/{commitment}/proof",
    responses=BUNDLE_RESPONSES,
    response_class=Response,
)
def get_proof_by_commitment(commitment: CommitmentPath, call: ProofCallDep, view: View = None) -> Response:
    """The proof bundle of the license version that committed to ``commitment``: the same bundle, views, audit
    and 425s as ``GET /v1/licenses/{id}/proof`` for that version's full identifier. 404 if this node holds no
    such version (a commitment does not name its issuer, so there is no referral)."""
    loaded = queries.load(call.session, queries.ref_by_commitment(call.session, bytes.fromhex(commitment)))
    return _bundle_response(call, loaded, _disclose(call.principal, loaded, view))


@router.get(
    "/v1/licenses/{license_id}/voucher.pdf",
    responses={200: {"content": {"application/pdf": {}}, "description": "the printable voucher"}, **PROOF_ERRORS},
    response_class=Response,
)
def get_voucher(request: Request, license_id: LicenseIdPath, call: ProofCallDep, view: View = None) -> Response:
    """A one-page PDF with the license's facts and a QR code to verify it; personal data only if entitled."""
    try:
        loaded, disclose = _prepare(call, license_id, view, request, "voucher.pdf")
    except Referral as ref:
        return ref.response
    bundle = call.proofs.bundle(call.session, loaded, disclose=disclose)
    if not disclose:
        bundle = public_view(bundle)
    document = loaded.document()
    status = "active" if bundle.status is None else bundle.status.status
    pdf = render_voucher(
        document.to_canonical_dict() if disclose else document.masked(),
        masked=not disclose,
        status=status,
        license_id=str(bundle.license_id),
        commitment=bundle.commitment.hex(),
        checkpoint_size=bundle.checkpoint.log_size,
        checkpoint_ms=bundle.checkpoint.timestamp_ms,
        qr_payload=bundle.to_qr_payload(node_url=call.node.settings.node_url),
        node_url=call.node.settings.node_url,
        printed_ms=call.ctx.now_ms,
    )
    if disclose:
        _audit_disclosure(call, loaded, "license.voucher")
    filename = loaded.version.full_id.replace(".", "_") + ".pdf"
    return Response(
        pdf, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{filename}"'}
    )


class CheckpointOut(BaseModel):
    seq: int
    log_size: int
    timestamp_ms: int
    note: str
    """The C2SP signed note: body and SM2 cosignature lines (docs/checkpoint.md)."""


class ConsistencyOut(BaseModel):
    from_checkpoint: CheckpointOut
    to_checkpoint: CheckpointOut
    consistency_proof: list[str]
    """RFC 9162 §2.1.4 proof (hex SM3 hashes) from ``from``'s anchor log ``tree_size`` to ``to``'s."""


def _out(cp: dict[str, Any]) -> CheckpointOut:
    fields = cp["fields"]
    return CheckpointOut(
        seq=int(cp["seq"]), log_size=int(fields["log_size"]), timestamp_ms=int(fields["timestamp_ms"]), note=cp["note"]
    )


@router.get("/v1/ledger/checkpoint", response_model=CheckpointOut, responses=PROOF_ERRORS)
def latest_checkpoint(_: Caller, proofs: ProofsDep) -> CheckpointOut:
    """The ledger's latest final (quorum-cosigned) checkpoint."""
    cp = proofs.latest_checkpoint()
    if cp is None:
        raise NotFoundError("final checkpoint", "latest")
    return _out(cp)


@router.get("/v1/ledger/consistency", response_model=ConsistencyOut, responses=PROOF_ERRORS)
def consistency(
    _: Caller,
    proofs: ProofsDep,
    from_seq: Annotated[int, Query(alias="from", ge=0, le=2**53, description="seq of the older final checkpoint")],
    to_seq: Annotated[
        int | None, Query(alias="to", ge=0, le=2**53, description="seq of the newer one (default: latest)")
    ] = None,
) -> ConsistencyOut:
    """Both checkpoints and the consistency proof between their anchor logs."""
    new = proofs.latest_checkpoint() if to_seq is None else proofs.checkpoint(to_seq)
    if new is None:
        raise NotFoundError("final checkpoint", "latest" if to_seq is None else str(to_seq))
    if from_seq > int(new["seq"]):
        raise DocumentError("bad checkpoint range", {"from": "must not be after to"})
    old = proofs.checkpoint(from_seq)
    if old is None:
        raise NotFoundError("final checkpoint", str(from_seq))
    return ConsistencyOut(
        from_checkpoint=_out(old), to_checkpoint=_out(new), consistency_proof=proofs.consistency(old, new)
    )


class SparseOut(BaseModel):
    record: dict[str, Any] | None
    """The record (``licledger.status`` / member record), or ``null`` for none (then the proof is of absence)."""
    proof: dict[str, Any]
    """:meth:`core.smt.SparseProof.to_dict` under the checkpoint's status or membership root."""


class LedgerProofsOut(BaseModel):
    checkpoint: CheckpointOut
    log_index: int
    batch_inclusion_proof: list[str]
    """RFC 9162 inclusion proof (hex) of anchor-log entry ``log_index`` at the checkpoint's ``tree_size``."""
    status: SparseOut
    member: SparseOut


class MembersOut(BaseModel):
    checkpoint: CheckpointOut
    members: list[SparseOut]
    """In the order of the ``name`` parameters."""


def _sparse(answer: dict[str, Any]) -> SparseOut:
    return SparseOut(record=answer.get("record"), proof=answer["proof"])


@router.get("/v1/ledger/proofs", response_model=LedgerProofsOut, responses=PROOF_ERRORS)
def ledger_proofs(
    _: Caller,
    proofs: ProofsDep,
    license_id: Annotated[str, Query(min_length=1, max_length=160, description="identifier (full or base)")],
    issuer: Annotated[str, Query(pattern=r"^[0-9]{6}$", description="the member that anchored it")],
    log_index: Annotated[int, Query(ge=0, le=2**53, description="the batch's index in the anchor log")],
    seq: Annotated[int | None, Query(ge=0, le=2**53, description="final checkpoint (default: latest)")] = None,
) -> LedgerProofsOut:
    """The ledger's parts of a bundle of any member's license at a final checkpoint (refreshing a stale bundle)."""
    ref = queries.parse_license_ref(license_id)
    parts = proofs.ledger_proofs(ref.base_id, issuer, log_index, seq)
    return LedgerProofsOut(
        checkpoint=_out(parts["checkpoint"]),
        log_index=log_index,
        batch_inclusion_proof=list(parts["inclusion"]["inclusion_proof"]),
        status=_sparse(parts["status"]),
        member=_sparse(parts["member"]),
    )


@router.get("/v1/ledger/members", response_model=MembersOut, responses=PROOF_ERRORS)
def ledger_members(
    _: Caller,
    proofs: ProofsDep,
    name: Annotated[list[str], Query(min_length=1, max_length=MAX_MEMBERS, description="member names")],
    seq: Annotated[int | None, Query(ge=0, le=2**53, description="final checkpoint (default: latest)")] = None,
) -> MembersOut:
    """Member records (or their absence) with sparse Merkle proofs at a final checkpoint."""
    if any(not 0 < len(n) <= 64 for n in name):
        raise DocumentError("bad member name", {"name": "1 to 64 characters"})
    cp, answers = proofs.member_proofs(name, seq)
    return MembersOut(checkpoint=_out(cp), members=[_sparse(a) for a in answers])
