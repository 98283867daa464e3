"""Online verification: fetch what a verdict needs from nodes and peers, trusting none of them.

The trust core (:mod:`verifier.core`, :mod:`verifier.trust`) decides; this module fetches, in the order below,
and stops with evidence at the first thing it cannot accept (after Trillian Tessera's client and python-tuf's
updater: the I/O is here, every rule is in the I/O-free core).

1. **Checkpoints from every source.** Each node (``GET /v1/ledger/checkpoint``, docs/node.md) and each ledger
   peer (``GET /v1/checkpoint``, docs/network.md) is asked for its latest final checkpoint. A note counts only once
   :meth:`verifier.trust.TrustRoot.verify_checkpoint` accepts it (this network, a quorum of cosignatures under
   keys the verifier already trusts). Sources that do not answer, or answer with a note that does not verify, are
   reported and not counted.
2. **Split views.** Any two verified checkpoints that cannot both be true (:func:`verifier.trust.
   compare_checkpoints`), or a verified checkpoint that conflicts with the trusted one, end the run:
   :class:`SplitViewDetectedError` holds both notes and which source served each (exit code 1).
3. **Enough sources.** Fewer than ``min_sources`` (default 2) verified checkpoints: :class:`NotEnoughSourcesError`
   (exit code 2). One source can show a verifier a private fork; two independent ones must collude to. A URL
   counts once; whether two URLs are independent (two provinces' nodes, not one operator's) is the caller's to
   choose.
4. **Consistency.** Let *top* be the newest of the verified checkpoints and the trusted one. Every other one must
   be proven an earlier state of *top*'s anchor log by an RFC 9162 §2.1.4 consistency proof, fetched from any
   source (nodes by checkpoint ``seq``, ``GET /v1/ledger/consistency``; peers by tree size,
   ``GetLogConsistencyProof``) and verified here. Proofs that do not verify from any source are evidence of a
   fork (:class:`SplitViewDetectedError`); no proof at all is :class:`UndecidedError` (exit code 2).
5. **Advance.** The trusted checkpoint moves to *top* only through :meth:`TrustRoot.advanced` (quorum, no
   conflict, no rollback, consistency proof), with the members' records at *top* (``GetMember``) when a peer
   serves them; the caller then persists it (:class:`VerifierState`). A source behind the trusted checkpoint is
   reported as stale and never moves it back.
6. **The bundle.** Nodes are asked in turn for the license's proof bundle (public view). Each is verified against
   the advanced trust root with ``expected_license_id`` (and the voucher's commitment, for a QR reference); the
   first verdict whose proofs hold is the answer, so a node serving another license's bundle or a broken one is
   reported and skipped. A node that does not hold the license but knows the issuing province's node answers
   ``307`` with that node's URL (a *referral*, :class:`ReferralError`); the referred node is asked next (one hop,
   at most :data:`MAX_REFERRALS` per run). A bundle whose checkpoint is not *top* is first proven consistent with
   it (step 4) and then re-proven at *top* from **any** source that serves the ledger's parts (a peer's queries,
   or a node's ``GET /v1/ledger/proofs``: batch inclusion, status and member proofs); each re-proven bundle is
   verified again and a source whose parts fail is reported with the failing step's reason (evidence) and the
   next one is asked, so the status is the newest the consortium has signed.

:func:`advance_online` runs steps 1-5 alone (a verification service keeping its trust root current);
:class:`OnlineSession` runs them once and then step 6 for many bundles (a service's batch).

Nothing fetched is used before a proof about it has verified. Transport failures are :class:`SourceError` and
only make a source not count.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from core import canonical
from core.bundle import InvalidBundleError, ProofBundle
from core.checkpoint import Checkpoint, QuorumError
from core.codes import LICENSE_OID, LicenseId
from core.consortium import MemberRecord
from core.errors import (
    DocumentError,
    FormatError,
    LicledgerError,
    ProofFormatError,
    RootMismatchError,
    VerificationError,
)
from core.merkle import verify_consistency
from core.smt import SparseProof
from verifier.core import STEP_NAMES, Facts, Result, StepResult, Verdict, verify_bundle
from verifier.trust import (
    ConsistencyError,
    SplitViewError,
    TrustRoot,
    TrustRootError,
    compare_checkpoints,
    load_trust_root,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_REFERRALS",
    "STATE_FORMAT",
    "NotEnoughSourcesError",
    "Observation",
    "OnlineReport",
    "OnlineSession",
    "ReferralError",
    "Source",
    "SourceError",
    "SplitViewDetectedError",
    "UndecidedError",
    "VerifierState",
    "advance_online",
    "default_state_path",
    "reject_verdict",
    "undecided_verdict",
    "verify_online",
]

DEFAULT_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 1024 * 1024
STATE_FORMAT = "licledger-verifier-state/1"
MAX_REFERRALS = 3
Kind = Literal["node", "peer"]


# --- errors ------------------------------------------------------------------------------------------------------


class SourceError(LicledgerError):
    """A source did not answer usefully (transport, HTTP status, or an answer that is not the API's JSON)."""

    def __init__(self, url: str, status: int | None, detail: str) -> None:
        self.url = url
        self.status = status
        self.detail = detail
        super().__init__(f"{url}: {'no answer' if status is None else f'HTTP {status}'}: {detail}")


class ReferralError(SourceError):
    """A node does not hold the license but names the issuing province's node (HTTP 307/308): ``node`` is its
    base URL, ``issuer`` the province. A hint only: what that node serves is verified like anything else."""

    def __init__(self, url: str, status: int, node: str, issuer: str | None) -> None:
        self.node = node
        self.issuer = issuer
        super().__init__(url, status, f"referred to {node} (province {issuer or '?'})")


class SplitViewDetectedError(VerificationError):
    """Two quorum-cosigned checkpoints of one ledger that cannot both be true: the evidence of a split view (a
    source, or a quorum, showing different ledgers to different verifiers). Holds both notes and their sources."""

    def __init__(self, message: str, first: Observation, second: Observation, proof: Sequence[bytes] = ()) -> None:
        self.first = first
        self.second = second
        self.proof = tuple(proof)
        super().__init__(message)

    def evidence(self) -> dict[str, Any]:
        return {
            "problem": str(self),
            "checkpoints": [self.first.to_dict(), self.second.to_dict()],
            "consistency_proof": [p.hex() for p in self.proof],
        }


class NotEnoughSourcesError(LicledgerError):
    """Fewer sources than required gave a checkpoint that verifies; the verifier cannot rule out a private fork."""

    def __init__(self, got: int, needed: int) -> None:
        self.got = got
        self.needed = needed
        super().__init__(
            f"only {got} source(s) gave a checkpoint that verifies, {needed} needed "
            "(give more --node/--peer URLs, or accept one with --min-sources 1)"
        )


class UndecidedError(LicledgerError):
    """Something needed for a verdict could not be obtained (no bundle, no consistency proof)."""


# --- sources ----------------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed blindly: a 307/308 becomes a :class:`ReferralError` the run decides about."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _referral(url: str, status: int, location: str | None, raw: bytes) -> ReferralError:
    try:
        value = json.loads(raw)
    except ValueError:
        value = {}
    value = value if isinstance(value, dict) else {}
    node = value.get("node")
    if not isinstance(node, str):
        node = (location or "").split("/v1/", 1)[0]
    issuer = value.get("issuer") if isinstance(value.get("issuer"), str) else None
    parsed = urllib.parse.urlsplit(node)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SourceError(url, status, "a redirect without a usable node URL")
    return ReferralError(url, status, node.rstrip("/"), issuer)


def _http_get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 (checked scheme)
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            body: bytes = answer.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raw = exc.read(4096)
        if exc.code in (307, 308):
            raise _referral(url, exc.code, exc.headers.get("Location"), raw) from None
        try:
            detail = str(json.loads(raw).get("detail", ""))
        except (ValueError, AttributeError):
            detail = raw.decode("utf-8", errors="replace")[:200]
        raise SourceError(url, exc.code, detail or exc.reason) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SourceError(url, None, str(getattr(exc, "reason", exc))) from None
    if len(body) > MAX_ANSWER_BYTES:
        raise SourceError(url, 200, f"answer larger than {MAX_ANSWER_BYTES} bytes")
    return body


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """A provincial node (``kind="node"``, docs/node.md) or a ledger peer (``kind="peer"``, docs/network.md)."""

    url: str
    kind: Kind = "node"
    timeout: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"not an http(s) URL: {self.url!r}")
        if self.kind not in ("node", "peer"):
            raise ValueError("kind must be 'node' or 'peer'")
        object.__setattr__(self, "url", self.url.rstrip("/"))

    def __str__(self) -> str:
        return f"{self.kind} {self.url}"

    def _json(self, path: str, query: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        url = self.url + path + ("?" + urllib.parse.urlencode(list(query)) if query else "")
        try:
            value = json.loads(_http_get(url, self.timeout))
        except ValueError:
            raise SourceError(url, 200, "answer is not JSON") from None
        if not isinstance(value, dict):
            raise SourceError(url, 200, "answer is not a JSON object")
        return value

    def query(self, function: str, *args: str) -> dict[str, Any]:
        """A ledger query (peers only): ``GET /v1/query/{function}?arg=...``."""
        if self.kind != "peer":
            raise ValueError("only peers answer ledger queries")
        return self._json(f"/v1/query/{urllib.parse.quote(function)}", [("arg", a) for a in args])

    def checkpoint(self) -> tuple[bytes, int | None]:
        """The latest final checkpoint's note and its ``seq`` (an unverified hint)."""
        answer = self._json("/v1/ledger/checkpoint" if self.kind == "node" else "/v1/checkpoint")
        note, seq = answer.get("note"), answer.get("seq")
        if not isinstance(note, str):
            raise SourceError(self.url, 200, "the checkpoint answer has no note")
        return note.encode("utf-8"), seq if type(seq) is int and seq >= 0 else None

    def consistency(self, old: Observation, new: Observation) -> list[bytes]:
        """An RFC 9162 consistency proof from ``old``'s anchor log to ``new``'s (unverified)."""
        if self.kind == "node":
            if old.seq is None or new.seq is None:
                raise SourceError(self.url, None, "a node needs both checkpoints' seq for a consistency proof")
            answer = self._json("/v1/ledger/consistency", [("from", str(old.seq)), ("to", str(new.seq))])
        else:
            answer = self.query("GetLogConsistencyProof", str(old.checkpoint.log_size), str(new.checkpoint.log_size))
        proof = answer.get("consistency_proof")
        if not isinstance(proof, list) or not all(isinstance(p, str) for p in proof) or len(proof) > 64:
            raise SourceError(self.url, 200, "consistency_proof is not a list of hex hashes")
        try:
            return [bytes.fromhex(p) for p in proof]
        except ValueError:
            raise SourceError(self.url, 200, "consistency_proof is not a list of hex hashes") from None

    def ledger_proofs(self, bundle: ProofBundle, seq: int) -> dict[str, Any]:
        """The ledger's parts of ``bundle`` at checkpoint ``seq`` (unverified): a peer's ``GetLogInclusionProof``,
        ``GetStatus`` and ``GetMember`` or a node's ``GET /v1/ledger/proofs``, as ``{"inclusion_proof",
        "status", "member"}``."""
        if self.kind == "peer":
            raise ValueError("use query() on peers")
        answer = self._json(
            "/v1/ledger/proofs",
            [
                ("license_id", bundle.license_id.base),
                ("issuer", bundle.issuer),
                ("log_index", str(bundle.log_index)),
                ("seq", str(seq)),
            ],
        )
        checkpoint = answer.get("checkpoint")
        if not isinstance(checkpoint, dict) or checkpoint.get("seq") != seq:
            raise SourceError(self.url, 200, f"the answer is not at checkpoint {seq}")
        return {
            "inclusion_proof": answer.get("batch_inclusion_proof"),
            "status": answer.get("status"),
            "member": answer.get("member"),
        }

    def members(self, names: Sequence[str], seq: int) -> list[dict[str, Any]]:
        """Member records and proofs at checkpoint ``seq`` (nodes: ``GET /v1/ledger/members``), unverified."""
        if self.kind == "peer":
            return [self.query("GetMember", name, str(seq)) for name in names]
        answer = self._json("/v1/ledger/members", [*(("name", n) for n in names), ("seq", str(seq))])
        members = answer.get("members")
        checkpoint = answer.get("checkpoint")
        if not isinstance(checkpoint, dict) or checkpoint.get("seq") != seq:
            raise SourceError(self.url, 200, f"the answer is not at checkpoint {seq}")
        if not isinstance(members, list) or len(members) != len(names) or not all(isinstance(m, dict) for m in members):
            raise SourceError(self.url, 200, "members is not one record per name asked")
        return members

    def bundle(self, license_id: str) -> bytes:
        """The license's proof bundle, public view (nodes only): ``GET /v1/licenses/{id}/proof?view=public``."""
        if self.kind != "node":
            raise ValueError("only nodes serve proof bundles")
        quoted = urllib.parse.quote(license_id, safe="")
        return _http_get(f"{self.url}/v1/licenses/{quoted}/proof?view=public", self.timeout)

    def bundle_by_commitment(self, commitment: bytes) -> bytes:
        """The proof bundle of the license version with this commitment, public view (nodes only): ``GET
        /v1/commitments/{hex}/proof?view=public``. Only the issuer's node holds it (a commitment names no
        issuer, so no node can refer)."""
        if self.kind != "node":
            raise ValueError("only nodes serve proof bundles")
        return _http_get(f"{self.url}/v1/commitments/{commitment.hex()}/proof?view=public", self.timeout)


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """A checkpoint as some source served it (or as the verifier trusted it: ``source`` ``None``)."""

    source: Source | None
    note: bytes
    checkpoint: Checkpoint
    seq: int | None

    @property
    def where(self) -> str:
        return "the trusted checkpoint" if self.source is None else str(self.source)

    def to_dict(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "source": self.where,
            "seq": self.seq,
            "tree_size": cp.log_size,
            "root_hash": cp.log_root.hex(),
            "height": cp.height,
            "timestamp_ms": cp.timestamp_ms,
            "note": self.note.decode("utf-8", errors="replace"),
        }


# --- the verifier's state ---------------------------------------------------------------------------------------


def default_state_path(network_id: str) -> Path:
    """``$LICLEDGER_VERIFIER_HOME`` (default ``~/.licledger/verifier``) ``/<network id>.json``."""
    home = os.environ.get("LICLEDGER_VERIFIER_HOME") or str(Path.home() / ".licledger" / "verifier")
    return Path(home) / f"{network_id}.json"


@dataclasses.dataclass(frozen=True, slots=True)
class VerifierState:
    """What an online verifier keeps between runs (``licledger-verifier-state/1``): its trust root (a
    ``licledger-trust-root/1`` value, usable offline with ``--trust-root``) and the trusted checkpoint's ``seq``,
    which nodes need to serve consistency proofs from it."""

    trust_root: TrustRoot
    checkpoint_seq: int | None = None

    @classmethod
    def load(cls, path: Path, *, network_id: str | None = None) -> VerifierState:
        """Raises ``OSError`` or :class:`~verifier.trust.TrustRootError`."""
        value = canonical.decode(path.read_bytes())
        if not isinstance(value, dict) or value.get("format") != STATE_FORMAT:
            raise TrustRootError(f"{path} is not a {STATE_FORMAT} file")
        if set(value) != {"format", "trust_root", "checkpoint_seq"}:
            raise TrustRootError(f"{STATE_FORMAT}: fields wrong: {sorted(value)}")
        seq = value["checkpoint_seq"]
        if seq is not None and (type(seq) is not int or seq < 0):
            raise TrustRootError(f"{STATE_FORMAT}: checkpoint_seq must be a non-negative integer or null")
        root = load_trust_root(canonical.encode(value["trust_root"]), network_id=network_id)
        return cls(root, seq)

    def save(self, path: Path) -> None:
        """Write atomically (a temporary file, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        value = {"format": STATE_FORMAT, "trust_root": self.trust_root.to_dict(), "checkpoint_seq": self.checkpoint_seq}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(canonical.encode(value))
        os.replace(tmp, path)


# --- the run ------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class OnlineReport:
    """Everything an online run learned: the verdict (``None`` when it stopped before one), each source's
    answer, the trust root before and after, the notes a person should read, and the evidence of a split view."""

    verdict: Verdict | None = None
    sources: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    trusted_before: Observation | None = None
    trusted_after: Observation | None = None
    trust_root: TrustRoot | None = None
    advanced: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)
    split_view: dict[str, Any] | None = None
    undecided: str | None = None
    bundle_source: str | None = None

    @property
    def exit_code(self) -> int:
        if self.split_view is not None:
            return 1
        if self.verdict is None:
            return 2
        return self.verdict.exit_code

    @property
    def result(self) -> str:
        if self.split_view is not None:
            return "SPLIT_VIEW"
        if self.verdict is None:
            return Result.UNDECIDED.value
        return self.verdict.result.value

    def to_dict(self, *, personal: bool = False) -> dict[str, Any]:
        return {
            "result": self.result,
            "exit_code": self.exit_code,
            "verdict": None if self.verdict is None else self.verdict.to_dict(personal=personal),
            "sources": self.sources,
            "bundle_source": self.bundle_source,
            "trusted_checkpoint": {
                "before": None if self.trusted_before is None else self.trusted_before.to_dict(),
                "after": None if self.trusted_after is None else self.trusted_after.to_dict(),
                "advanced": self.advanced,
            },
            "split_view": self.split_view,
            "undecided": self.undecided,
            "notes": self.notes,
        }


def _trusted(root: TrustRoot, seq: int | None) -> Observation | None:
    if root.note is None or root.checkpoint is None:
        return None
    return Observation(None, root.note, root.checkpoint, seq)


def _newer(a: Checkpoint, b: Checkpoint) -> bool:
    return (a.log_size, a.height) > (b.log_size, b.height)


class _Run:
    def __init__(
        self, root: TrustRoot, seq: int | None, sources: Sequence[Source], report: OnlineReport, min_sources: int
    ) -> None:
        self.root = root
        self.sources = list(sources)
        self.report = report
        self.min_sources = min_sources
        self.trusted = _trusted(root, seq)
        self.seen: list[Observation] = []
        self.timeout = max((s.timeout for s in self.sources), default=DEFAULT_TIMEOUT_S)
        self._consistency: dict[tuple[Any, ...], list[bytes] | SplitViewDetectedError | UndecidedError] = {}

    def _say(self, source: Source, **what: Any) -> None:
        self.report.sources.append({"source": str(source), **what})

    # 1-3. checkpoints from every source; conflicts; enough of them
    def gather(self) -> None:
        for source in self.sources:
            try:
                note, seq = source.checkpoint()
                cp, cosigners = self.root.verify_checkpoint(note)
            except SourceError as exc:
                self._say(source, ok=False, problem=str(exc))
                continue
            except SplitViewError as exc:
                assert self.trusted is not None
                obs = Observation(source, note, exc.new, seq)
                raise SplitViewDetectedError(
                    f"{exc} ({source} against the trusted checkpoint)", self.trusted, obs
                ) from None
            except (FormatError, QuorumError) as exc:
                self._say(source, ok=False, problem=f"its checkpoint does not verify: {exc}")
                continue
            obs = Observation(source, note, cp, seq)
            self._say(source, ok=True, tree_size=cp.log_size, height=cp.height, cosigners=list(cosigners))
            for other in self.seen:
                self._compare(other, obs)
            self.seen.append(obs)
        if len(self.seen) < self.min_sources:
            raise NotEnoughSourcesError(len(self.seen), self.min_sources)

    @staticmethod
    def _compare(a: Observation, b: Observation) -> None:
        try:
            compare_checkpoints(a.checkpoint, b.checkpoint, notes=(a.note, b.note))
        except SplitViewError as exc:
            raise SplitViewDetectedError(f"{exc}: {a.where} and {b.where} disagree", a, b) from None

    # 4. every checkpoint proven consistent with the newest
    def top(self) -> Observation:
        candidates = ([self.trusted] if self.trusted is not None else []) + self.seen
        top = candidates[0]
        for obs in candidates[1:]:
            if _newer(obs.checkpoint, top.checkpoint):
                top = obs
        # prefer an observation of the top checkpoint that carries a seq (nodes need it for proofs)
        for obs in candidates:
            if obs.checkpoint == top.checkpoint and obs.seq is not None and top.seq is None:
                top = obs
        for obs in candidates:
            if obs.checkpoint.log_size < top.checkpoint.log_size:
                self.consistent(obs, top)
            if self.trusted is not None and obs is not self.trusted and _newer(self.trusted.checkpoint, obs.checkpoint):
                self.report.notes.append(f"{obs.where} is behind the trusted checkpoint (stale); it moves nothing back")
        return top

    def consistent(self, old: Observation, new: Observation) -> list[bytes]:
        """Prove ``old`` an earlier state of ``new``'s anchor log (any source's proof); raise with evidence. Each
        pair of checkpoints is proven once per run (the outcome, proof or error, is kept)."""
        key = (old.checkpoint, old.seq, new.checkpoint, new.seq)
        known = self._consistency.get(key)
        if known is None:
            try:
                known = self._consistent(old, new)
            except (SplitViewDetectedError, UndecidedError) as exc:
                known = exc
            self._consistency[key] = known
        if isinstance(known, Exception):
            raise known
        return known

    def _consistent(self, old: Observation, new: Observation) -> list[bytes]:
        a, b = old.checkpoint, new.checkpoint
        if a.log_size == 0 or a.log_size == b.log_size:
            self._compare(old, new)
            return []
        bad: list[tuple[Source, list[bytes], Exception]] = []
        for source in self._proof_sources(old, new):
            try:
                proof = source.consistency(old, new)
            except SourceError as exc:
                self.report.notes.append(f"no consistency proof from {source}: {exc.detail}")
                continue
            try:
                verify_consistency(a.log_size, b.log_size, proof, a.log_root, b.log_root)
            except (ProofFormatError, RootMismatchError) as exc:
                bad.append((source, proof, exc))
                continue
            return proof
        if bad:
            source, proof, problem = bad[0]
            raise SplitViewDetectedError(
                f"no source proves tree_size {a.log_size} ({old.where}) consistent with tree_size {b.log_size} "
                f"({new.where}); {source}'s proof fails: {problem}",
                old,
                new,
                proof,
            )
        raise UndecidedError(f"no source gave a consistency proof from tree_size {a.log_size} to {b.log_size}")

    def _proof_sources(self, old: Observation, new: Observation) -> list[Source]:
        peers = [s for s in self.sources if s.kind == "peer"]
        nodes = [s for s in self.sources if s.kind == "node" and old.seq is not None and new.seq is not None]
        return peers + nodes

    # 5. advance the trusted checkpoint to the top
    def advance(self, top: Observation) -> None:
        if self.trusted is not None and top.checkpoint == self.trusted.checkpoint:
            return
        proof: list[bytes] = []
        if self.trusted is not None:
            proof = self.consistent(self.trusted, top)
        members = self._member_proofs(top)
        try:
            self.root = self.root.advanced(top.note, proof, members)
        except TrustRootError as exc:
            self.report.notes.append(
                f"the trusted checkpoint was not advanced: {exc} (a --peer serving member records at the new "
                "checkpoint lets it advance past key rotations)"
            )
            return
        except ConsistencyError as exc:  # the core's own check disagrees with step 4: report, never advance
            raise SplitViewDetectedError(
                f"advancing the trusted checkpoint failed: {exc}", self.trusted or top, top
            ) from None
        self.trusted = top
        self.report.advanced = True

    def _member_proofs(self, top: Observation) -> list[tuple[MemberRecord, SparseProof]]:
        """Every known member's record and proof at ``top`` from a peer or a node (``TrustRoot.advanced`` verifies
        them under ``top``'s membership root; a source whose records do not parse is skipped)."""
        if top.seq is None:
            return []
        names = sorted(self.root.members)
        for source in sorted(self.sources, key=lambda s: s.kind != "peer"):
            try:
                out = []
                for name, answer in zip(names, source.members(names, top.seq), strict=True):
                    root = answer.get("root")
                    if root is not None and root != top.checkpoint.membership_root.hex():
                        raise SourceError(source.url, 200, f"GetMember {name} is not at the checkpoint's root")
                    if answer.get("record") is not None:
                        out.append((MemberRecord.from_dict(answer["record"]), SparseProof.from_dict(answer["proof"])))
                return out
            except (SourceError, FormatError, KeyError, TypeError, ValueError) as exc:
                self.report.notes.append(f"member records from {source} not used: {exc}")
        return []

    # 6. the bundle
    def refreshed(self, bundle: ProofBundle, top: Observation) -> Iterator[tuple[Source, ProofBundle]]:
        """``bundle`` re-proven at ``top`` with each source's batch inclusion, status and member proofs (peers'
        queries, nodes' ``/v1/ledger/proofs``), unverified; sources that give nothing usable are noted."""
        if top.seq is None:
            return
        for source in sorted(self.sources, key=lambda s: s.kind != "peer"):
            try:
                if source.kind == "peer":
                    inclusion = source.query(
                        "GetLogInclusionProof", str(bundle.log_index), str(top.checkpoint.log_size)
                    )["inclusion_proof"]
                    status = source.query("GetStatus", bundle.license_id.base, str(top.seq))
                    member = source.query("GetMember", bundle.issuer, str(top.seq))
                else:
                    parts = source.ledger_proofs(bundle, top.seq)
                    inclusion, status, member = parts["inclusion_proof"], parts["status"], parts["member"]
                value = bundle.to_dict()
                value["batch"]["inclusion_proof"] = inclusion
                value["status"] = {"record": status["record"], "proof": status["proof"]}
                value["member"] = {"record": member["record"], "proof": member["proof"]}
                value["checkpoint"] = top.note.decode("utf-8")
                yield source, ProofBundle.from_dict(value)
            except (SourceError, InvalidBundleError, KeyError, TypeError) as exc:
                self.report.notes.append(f"could not re-prove the bundle at the newest checkpoint via {source}: {exc}")


def _check_license_ref(text: str) -> None:
    """``ValueError`` unless ``text`` is a GB/T 36904 license identifier or identifier base."""
    parts = text.split(".") if isinstance(text, str) else []
    try:
        if len(parts) == 10:
            LicenseId.parse(text)
            return
        if len(parts) == 8 and ".".join(parts[:5]) == LICENSE_OID:
            LicenseId.build(parts[5], parts[6], parts[7])
            return
    except DocumentError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    raise ValueError(f"{text!r} is not a license identifier or identifier base")


def reject_verdict(verdict: Verdict, reason: str, detail: str, evidence: dict[str, Any]) -> Verdict:
    """``verdict`` turned INVALID at step 1 (a bundle that is not the one asked for)."""
    steps = tuple(
        StepResult(1, STEP_NAMES[1], False, detail, reason, evidence)
        if n == 1
        else StepResult(n, STEP_NAMES[n], None, "not run")
        for n in STEP_NAMES
    )
    return Verdict(Result.INVALID, steps, Facts(False, verdict.facts.license_id, verdict.facts.issuer))


def verify_online(
    trust_root: TrustRoot,
    sources: Sequence[Source],
    *,
    now_ms: int,
    max_checkpoint_age_ms: int | None,
    license_id: str | None = None,
    bundle: bytes | ProofBundle | None = None,
    expected_license_id: str | None = None,
    expected_commitment: bytes | None = None,
    checkpoint_seq: int | None = None,
    min_sources: int = 2,
    commitment: bytes | None = None,
) -> OnlineReport:
    """Run steps 1-6 of the module docstring for ``license_id`` or ``commitment`` (the bundle fetched from the node
    sources) or a ``bundle`` the caller has (only its checkpoint is brought up to date). Never raises for what
    sources send: the report says what happened (``report.exit_code``). The bundle must be for ``license_id`` (or
    ``expected_license_id``) and, when given, carry ``expected_commitment`` (a voucher's QR reference) or
    ``commitment``. ``checkpoint_seq`` is the trusted checkpoint's seq, if known. Caller misuse raises
    ``ValueError``.
    """
    _check_request(license_id, bundle, expected_license_id, commitment, expected_commitment)
    session = OnlineSession(trust_root, sources, checkpoint_seq=checkpoint_seq, min_sources=min_sources)
    return session.verify(
        now_ms=now_ms,
        max_checkpoint_age_ms=max_checkpoint_age_ms,
        license_id=license_id,
        bundle=bundle,
        expected_license_id=expected_license_id,
        expected_commitment=expected_commitment,
        commitment=commitment,
    )


Candidate = tuple[str, Callable[[], bytes | ProofBundle]]


def advance_online(
    trust_root: TrustRoot, sources: Sequence[Source], *, checkpoint_seq: int | None = None, min_sources: int = 2
) -> OnlineReport:
    """Steps 1-5 alone: gather and verify the sources' checkpoints, stop on a split view, prove consistency and
    advance the trust root (``report.trust_root``, ``report.trusted_after``; ``report.advanced``). Never raises
    for what sources send; ``report.split_view`` or ``report.undecided`` say why nothing advanced."""
    return OnlineSession(trust_root, sources, checkpoint_seq=checkpoint_seq, min_sources=min_sources).report


class OnlineSession:
    """Steps 1-5 run once, then step 6 for any number of bundles against the same newest checkpoint (*top*).

    What a verification service does with a batch: each source's checkpoint is fetched and verified once, the
    trust root is advanced once, and every consistency proof is fetched and verified once per pair of
    checkpoints (bundles of a batch mostly share their checkpoint); then each bundle that needs it is re-proven
    at *top* from the sources (:meth:`verify`). ``report`` is steps 1-5's (what :func:`advance_online` returns);
    each :meth:`verify` returns a report of its own that starts as a copy of it. Never raises for what sources
    send. One session serves one thread (a request), sequentially.
    """

    def __init__(
        self,
        trust_root: TrustRoot,
        sources: Sequence[Source],
        *,
        checkpoint_seq: int | None = None,
        min_sources: int = 2,
    ) -> None:
        if min_sources < 1:
            raise ValueError("min_sources must be at least 1")
        self.report = OnlineReport(trust_root=trust_root)
        unique = list({s.url: s for s in sources}.values())  # one URL counts once towards min_sources
        self._run = _Run(trust_root, checkpoint_seq, unique, self.report, min_sources)
        self.report.trusted_before = self._run.trusted
        self._top: Observation | None = None
        try:
            self._run.gather()
            top = self._run.top()
            self._run.advance(top)
            self._top = top
        except SplitViewDetectedError as exc:
            self.report.split_view = exc.evidence()
        except (NotEnoughSourcesError, UndecidedError) as exc:
            self.report.undecided = str(exc)
        self.report.trust_root, self.report.trusted_after = self._run.root, self._run.trusted

    def verify(
        self,
        *,
        now_ms: int,
        max_checkpoint_age_ms: int | None,
        license_id: str | None = None,
        bundle: bytes | ProofBundle | None = None,
        expected_license_id: str | None = None,
        expected_commitment: bytes | None = None,
        commitment: bytes | None = None,
    ) -> OnlineReport:
        """Step 6 for one ``license_id``, ``commitment`` or ``bundle`` (as :func:`verify_online`), against this
        session's *top*. If steps 1-5 stopped (a split view, too few sources), the report says so and has no
        verdict."""
        _check_request(license_id, bundle, expected_license_id, commitment, expected_commitment)
        expected_commitment = expected_commitment or commitment
        base = self.report
        report = dataclasses.replace(base, sources=list(base.sources), notes=list(base.notes))
        if self._top is None:
            return report
        run = self._run
        run.report = report  # what step 6 notes goes to this bundle's report
        try:
            candidates = _candidates(run, license_id, bundle, commitment)
            expected = license_id or expected_license_id
            report.verdict = _verify(
                run, self._top, candidates, now_ms, max_checkpoint_age_ms, expected, expected_commitment
            )
        except SplitViewDetectedError as exc:
            report.split_view = exc.evidence()
        except UndecidedError as exc:
            report.undecided = str(exc)
        finally:
            run.report = base
        report.trust_root, report.trusted_after = run.root, run.trusted
        return report


def _check_request(
    license_id: str | None,
    bundle: bytes | ProofBundle | None,
    expected: str | None,
    commitment: bytes | None = None,
    expected_commitment: bytes | None = None,
) -> None:
    if sum(x is not None for x in (license_id, bundle, commitment)) != 1:
        raise ValueError("give exactly one of license_id, commitment and bundle")
    for given in (license_id, expected):
        if given is not None:
            _check_license_ref(given)
    for value in (commitment, expected_commitment):
        if value is not None and len(value) != 32:
            raise ValueError(f"a commitment is 32 bytes (an SM3 hash), not {len(value)}")
    if commitment is not None and expected_commitment not in (None, commitment):
        raise ValueError("commitment and expected_commitment differ")


def _candidates(
    run: _Run, license_id: str | None, bundle: bytes | ProofBundle | None, commitment: bytes | None = None
) -> list[Candidate]:
    if bundle is not None:
        return [("the given bundle", lambda: bundle)]
    nodes = [s for s in run.sources if s.kind == "node"]
    if not nodes:
        raise UndecidedError("no node to fetch the proof bundle from (peers do not serve bundles): give --node")
    if commitment is not None:
        return [(str(s), functools.partial(Source.bundle_by_commitment, s, commitment)) for s in nodes]
    assert license_id is not None
    return [(str(s), functools.partial(Source.bundle, s, license_id)) for s in nodes]


def _verify(
    run: _Run,
    top: Observation,
    candidates: list[Candidate],
    now_ms: int,
    max_age: int | None,
    license_id: str | None,
    expected_commitment: bytes | None,
) -> Verdict:
    report = run.report
    first_invalid: Verdict | None = None
    queue = list(candidates)
    asked = {where for where, _ in queue}
    referrals = 0
    while queue:
        where, fetch = queue.pop(0)
        try:
            data = fetch()
        except ReferralError as exc:
            referred = Source(exc.node, "node", run.timeout)
            if str(referred) in asked or referrals >= MAX_REFERRALS or license_id is None:
                report.notes.append(f"{where} referred to {exc.node}, which is not asked again")
                continue
            referrals += 1
            asked.add(str(referred))
            report.notes.append(f"{where} does not hold the license; it referred to {referred} ({exc.detail})")
            queue.insert(0, (str(referred), functools.partial(Source.bundle, referred, license_id)))
            continue
        except SourceError as exc:
            report.notes.append(f"no bundle from {where}: {exc.detail or exc}")
            continue
        verdict = verify_bundle(
            data, run.root, now_ms=now_ms, max_checkpoint_age_ms=max_age, expected_license_id=license_id
        )
        if verdict.result is not Result.INVALID:
            parsed = data if isinstance(data, ProofBundle) else ProofBundle.from_json(data)
            if expected_commitment is not None and parsed.commitment != expected_commitment:
                verdict = reject_verdict(
                    verdict,
                    "WRONG_COMMITMENT",
                    "the bundle's commitment is not the one asked for (the voucher's or --commitment)",
                    {"expected": expected_commitment.hex(), "found": parsed.commitment.hex()},
                )
            else:
                verdict = _bring_up_to_date(run, top, parsed, verdict, now_ms, max_age, license_id, where)
        if verdict.result is not Result.INVALID:
            report.bundle_source = where
            return verdict
        failed = verdict.failed_step
        report.notes.append(f"the bundle from {where} is INVALID: {failed.reason if failed else '?'}")
        first_invalid = first_invalid or verdict
    if first_invalid is not None:
        return first_invalid
    raise UndecidedError(
        "no node served a proof bundle for this license"
        + ("" if expected_commitment is None else f" version (commitment {expected_commitment.hex()})")
    )


def _bring_up_to_date(
    run: _Run,
    top: Observation,
    bundle: ProofBundle,
    verdict: Verdict,
    now_ms: int,
    max_age: int | None,
    license_id: str | None,
    where: str,
) -> Verdict:
    """Step 6's tail: the bundle's checkpoint must be consistent with the top one; re-prove at the top if possible."""
    cp = bundle.checkpoint
    if cp == top.checkpoint:
        return verdict
    known = [o for o in [*run.seen, run.trusted] if o is not None and o.checkpoint == cp and o.seq is not None]
    source = None if where == "the given bundle" else _source_named(run, where)
    mine = Observation(source, bundle.note, cp, known[0].seq if known else None)
    if _newer(cp, top.checkpoint):
        run.consistent(top, mine)
        run.report.notes.append("the bundle's checkpoint is newer than any source's: proven consistent with them")
        return verdict
    run.consistent(mine, top)
    lies: list[dict[str, Any]] = []
    for source, refreshed in run.refreshed(bundle, top):
        newer = verify_bundle(
            refreshed, run.root, now_ms=now_ms, max_checkpoint_age_ms=max_age, expected_license_id=license_id
        )
        if newer.result is Result.INVALID:
            failed = newer.failed_step
            run.report.notes.append(
                f"{source}'s proofs at the newest checkpoint do not verify "
                f"({failed.reason if failed else '?'}: {failed.detail if failed else ''}); not used"
            )
            lies.append({"source": str(source), "step": None if failed is None else failed.to_dict()})
            continue
        run.report.notes.append(
            f"re-proven at the newest checkpoint (tree_size {top.checkpoint.log_size}) via {source}"
        )
        return newer
    run.report.notes.append(
        f"the bundle proves the status at tree_size {cp.log_size}; the newest checkpoint is at "
        f"{top.checkpoint.log_size} and no source re-proved it there"
    )
    if lies and verdict.result in (Result.VALID, Result.SUSPENDED, Result.UNDECIDED):
        return undecided_verdict(
            verdict,
            "STATUS_NOT_REPROVEN",
            f"a newer checkpoint (tree_size {top.checkpoint.log_size}) exists and every source's status proof at "
            "it failed: the status as of now is not known",
            {"bundle_tree_size": cp.log_size, "newest_tree_size": top.checkpoint.log_size, "failed_sources": lies},
        )
    return verdict


def undecided_verdict(verdict: Verdict, reason: str, detail: str, evidence: dict[str, Any]) -> Verdict:
    """``verdict`` (whose proofs held) turned UNDECIDED at step 8: what it proves is not known to be current. A
    revocation or supersession is final and is never passed here."""
    steps = tuple(
        StepResult(8, STEP_NAMES[8], False, detail, reason, evidence) if s.number == 8 else s for s in verdict.steps
    )
    return Verdict(Result.UNDECIDED, steps, verdict.facts)


def _source_named(run: _Run, where: str) -> Source | None:
    """The source a candidate came from: one given, or a node reached through a referral (``"node URL"``)."""
    found = next((s for s in run.sources if str(s) == where), None)
    if found is None and where.startswith("node "):
        return Source(where.removeprefix("node "), "node", run.timeout)
    return found
