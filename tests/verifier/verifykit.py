"""A real ledger for verifier tests: a deterministic consortium, real SM2-signed transactions executed by the
license-registry contract (network.executor over MemoryWorldState), real sealed licenses from core.synth, real
batches, quorum-cosigned checkpoints, and bundles assembled from the ledger's own query answers."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chaincode.checkpoints import cosign
from core import synth
from core.bundle import ProofBundle, assemble_bundle
from core.codes import LicenseId
from core.commitment import commitment, license_leaf_hash
from core.consortium import Consortium, build_consortium, derive_key
from core.hashing import sm3
from core.licenses import License, canonical_bytes, parse_document
from core.merkle import MerkleTree
from core.seal import Seal, seal_document
from core.sm2 import PrivateKey
from core.transactions import (
    anchor_batch,
    change_status,
    cosign_checkpoint,
    init_consortium,
    propose_checkpoint,
    rotate_key,
)
from network.executor import MemoryWorldState, TxResult, evaluate, execute
from verifier.core import TrustRoot

T0 = 1_700_000_000_000
PROVINCES = ("110000", "310000", "440000")


@dataclass
class Issued:
    """One sealed, anchored license version and where it sits."""

    license: License
    salt: bytes
    commitment: bytes
    seal: Seal
    province: str
    batch_seq: int
    leaf_index: int
    tree: MerkleTree

    @property
    def license_id(self) -> LicenseId:
        return self.license.license_id


class World:
    """A consortium (national, the provinces, one auditor: 5 members, quorum 3) and its ledger state."""

    def __init__(
        self,
        seed: str = "verifier-test",
        provinces: Sequence[str] = PROVINCES,
        auditors: Sequence[str] = ("auditor-1",),
        quorum: int | None = None,
    ) -> None:
        self.c: Consortium = build_consortium(list(provinces), seed, auditors=list(auditors), quorum=quorum)
        self.nid = self.c.network_id
        self.state = MemoryWorldState()
        self.now = T0 + 1_000
        self.keys: dict[str, PrivateKey] = dict(self.c.keys)
        self.member_seq: dict[str, int] = {}
        self.batch_next: dict[str, int] = {}
        self.status_seq: dict[str, int] = {}
        self.serial = 0
        self.ok(init_consortium(self.c.genesis, self.keys["national"], timestamp_ms=self.tick()))

    # --- ledger plumbing ---

    def tick(self, ms: int = 1_000) -> int:
        self.now += ms
        return self.now

    def ok(self, envelope: bytes) -> TxResult:
        result = execute(self.state, envelope)
        assert result.valid, (result.reason, result.message)
        self.state.apply(result.writes)
        return result

    def query(self, function: str, *args: str) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(evaluate(self.state, function, list(args)))
        return answer

    @property
    def quorum(self) -> int:
        return len(self.c.genesis.members) // 2 + 1 if self.c.genesis.quorum is None else self.c.genesis.quorum

    def trust_root(self) -> TrustRoot:
        return TrustRoot.from_genesis(self.c.genesis)

    # --- licenses ---

    def documents(self, province: str, count: int, kind: str = "physician", issuer_index: int = 0) -> list[License]:
        """Synthetic documents re-issued under one of the province's consortium issuer codes."""
        member = self.c.genesis.member(province)
        assert member is not None
        uscc = member.issuers[issuer_index]
        out = []
        for doc in synth.generate(kind, count, province, 7, start=self.serial):
            old = LicenseId.parse(doc["license_id"])
            doc["issuer"]["authority_uscc"] = uscc
            doc["license_id"] = str(LicenseId.build(old.type_code, uscc, old.serial, old.version))
            out.append(parse_document(doc))
        self.serial += count
        return out

    def issue(
        self,
        province: str,
        count: int = 4,
        *,
        kind: str = "physician",
        seal_key: PrivateKey | None = None,
        signing_time: int | None = None,
        documents: Sequence[License] | None = None,
    ) -> list[Issued]:
        """Seal ``count`` licenses with the province's key and anchor them as one batch."""
        docs = list(documents) if documents is not None else self.documents(province, count, kind)
        key = seal_key or self.keys[province]
        signed_at = signing_time if signing_time is not None else self.tick()
        salts = [sm3(f"salt/{lic.license_id}".encode()) for lic in docs]
        commitments = [commitment(canonical_bytes(lic), s) for lic, s in zip(docs, salts, strict=True)]
        seals = [seal_document(lic, key, signed_at) for lic in docs]
        tree = MerkleTree(
            [license_leaf_hash(lic.license_id, lic.version, cm) for lic, cm in zip(docs, commitments, strict=True)]
        )
        seq = self.batch_next.get(province, 0)
        self.ok(
            anchor_batch(
                self.nid,
                issuer=province,
                batch_seq=seq,
                root=tree.root_hash(),
                leaf_count=tree.size,
                key=self.keys[province],
                timestamp_ms=self.tick(),
            )
        )
        self.batch_next[province] = seq + 1
        return [
            Issued(lic, salt, cm, seal, province, seq, i, tree)
            for i, (lic, salt, cm, seal) in enumerate(zip(docs, salts, commitments, seals, strict=True))
        ]

    def set_status(self, issued: Issued, status: str, *, reason: str = "R01") -> None:
        base = issued.license_id.base
        seq = self.status_seq.get(base, 0)
        self.ok(
            change_status(
                self.nid,
                issuer=issued.province,
                license_id=str(issued.license_id),
                status=status,
                reason=reason,
                effective_ms=self.now,
                status_seq=seq,
                commitment=issued.commitment,
                batch_seq=issued.batch_seq,
                leaf_index=issued.leaf_index,
                inclusion_proof=issued.tree.inclusion_proof(issued.leaf_index),
                key=self.keys[issued.province],
                timestamp_ms=self.tick(),
            )
        )
        self.status_seq[base] = seq + 1

    # --- membership ---

    def rotate(self, member: str) -> PrivateKey:
        """RotateKey: the member's current key is retired now and a new one (derived key seq) becomes valid."""
        seq = self.member_seq.get(member, 0) + 1
        new = derive_key(self.c.seed, member, seq)
        national = None if member == "national" else self.keys["national"]
        self.ok(
            rotate_key(
                self.nid,
                member=member,
                seq=seq,
                old_key=self.keys[member],
                new_key=new,
                national_key=national,
                timestamp_ms=self.tick(),
            )
        )
        self.member_seq[member] = seq
        self.keys[member] = new
        return new

    # --- checkpoints and bundles ---

    def checkpoint(self, cosigners: Sequence[str] | None = None, *, proposer: str = "national") -> int:
        """Propose a checkpoint and have ``cosigners`` (default: the first quorum members by name) cosign it."""
        seq = self.query("GetLedgerInfo")["checkpoint_next"]
        self.ok(
            propose_checkpoint(self.nid, member=proposer, seq=seq, key=self.keys[proposer], timestamp_ms=self.tick())
        )
        body = self.query("GetCheckpoint", str(seq))["body"].encode()
        names = list(cosigners) if cosigners is not None else [m.name for m in self.c.genesis.members][: self.quorum]
        for name in names:
            key = self.keys[name]
            self.ok(
                cosign_checkpoint(
                    self.nid, member=name, seq=seq, signature=cosign(body, key), key=key, timestamp_ms=self.tick()
                )
            )
        return int(seq)

    def note(self, seq: int) -> bytes:
        note = self.query("GetCheckpoint", str(seq))["note"]
        assert isinstance(note, str)
        return note.encode()

    def checkpoint_ms(self, seq: int) -> int:
        return int(self.query("GetCheckpoint", str(seq))["fields"]["timestamp_ms"])

    def bundle(self, issued: Issued, seq: int, *, disclose: bool = True) -> ProofBundle:
        """A bundle assembled, as the node will, from the ledger's own query answers at checkpoint ``seq``."""
        cp = self.query("GetCheckpoint", str(seq))
        batch = self.query("GetBatch", issued.province, str(issued.batch_seq))
        log_inclusion = self.query("GetLogInclusionProof", str(batch["log_index"]), str(cp["fields"]["log_size"]))
        return assemble_bundle(
            license_id=issued.license_id,
            issuer=issued.province,
            commitment_value=issued.commitment,
            leaf_index=issued.leaf_index,
            leaf_inclusion_proof=issued.tree.inclusion_proof(issued.leaf_index),
            batch=batch,
            log_inclusion=log_inclusion,
            status=self.query("GetStatus", str(issued.license_id), str(seq)),
            member=self.query("GetMember", issued.province, str(seq)),
            checkpoint=cp,
            document=issued.license if disclose else None,
            salt=issued.salt if disclose else None,
            seal=issued.seal if disclose else None,
        )


# --- a shared, read-only scenario ---------------------------------------------------------------------------------


@dataclass
class Scenario:
    """A ledger with two provinces' batches, a revoked, a suspended and a reinstated license, and one final
    checkpoint cosigned by exactly the quorum (so that every single cosignature matters)."""

    world: World
    active: Issued
    revoked: Issued
    suspended: Issued
    reinstated: Issued
    other: Issued
    seq: int

    @property
    def checkpoint_ms(self) -> int:
        return self.world.checkpoint_ms(self.seq)


_SCENARIO: Scenario | None = None


def scenario() -> Scenario:
    """Built once per process; tests must not change its ledger (build a World of their own for that)."""
    global _SCENARIO
    if _SCENARIO is None:
        w = World()
        a = w.issue("110000", 6)
        b = w.issue("310000", 3)
        w.issue("110000", 5)
        w.set_status(a[1], "revoked")
        w.set_status(a[2], "suspended")
        w.set_status(a[3], "suspended")
        w.set_status(a[3], "reinstated")
        seq = w.checkpoint()
        _SCENARIO = Scenario(w, a[0], a[1], a[2], a[3], b[0], seq)
    return _SCENARIO


# --- mutating bundles -------------------------------------------------------------------------------------------

Path = tuple[str | int, ...]


def leaves(value: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """Every scalar leaf (string, integer, boolean, null) of a JSON value with its path."""
    if isinstance(value, dict):
        return [leaf for key in sorted(value) for leaf in leaves(value[key], (*path, key))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in leaves(item, (*path, i))]
    return [(path, value)]


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def replaced(value: Any, path: Path, new: Any) -> Any:
    """A deep copy of ``value`` with the leaf at ``path`` set to ``new``."""
    copy = json.loads(json.dumps(value))
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = new
    return copy


def flip_bit(leaf: Any, position: int = 0, bit: int = 0) -> Any:
    """The leaf with one bit flipped: bit ``bit`` of character ``position`` of a string (UTF-16 code unit kept
    out of the surrogate range), of an integer, or a boolean negated; ``null`` becomes ``0``."""
    if isinstance(leaf, bool):
        return not leaf
    if isinstance(leaf, int):
        return leaf ^ (1 << bit)
    if isinstance(leaf, str):
        if not leaf:
            return "\x01"
        i = position % len(leaf)
        code = ord(leaf[i]) ^ (1 << bit)
        if 0xD800 <= code <= 0xDFFF:
            code ^= 0x1000
        return leaf[:i] + chr(code) + leaf[i + 1 :]
    if leaf is None:
        return 0
    raise TypeError(type(leaf))


# --- fuzzing ------------------------------------------------------------------------------------------------------

_ODD_VALUES: tuple[Any, ...] = (None, 0, -1, 1, 2**53 - 1, 2**60, "", "0", "x" * 70, [], {}, True, False, 1.5)


def _containers(value: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    out: list[tuple[Path, Any]] = []
    if isinstance(value, dict | list):
        out.append((path, value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            out += _containers(item, (*path, key))
    return out


def _copy_along(value: Any, path: Path) -> tuple[Any, Any]:
    """Shallow copies of every container from the root to ``path`` (inclusive): (new root, copied node)."""
    root = copy.copy(value)
    node = root
    for part in path:
        child = copy.copy(node[part])
        node[part] = child
        node = child
    return root, node


class Mutator:
    """Cheap random mutations of one JSON value: the leaf and container lists are computed once, and each mutation
    copies only the containers on the path it changes (the original is never modified)."""

    def __init__(self, value: Any, seed: int) -> None:
        self.value = value
        self.rng = random.Random(seed)
        self.leaves = leaves(value)
        self.hashes = [(p, v) for p, v in self.leaves if isinstance(v, str) and len(v) == 64]
        self.ints = [(p, v) for p, v in self.leaves if type(v) is int]
        self.containers = _containers(value)

    def _set(self, path: Path, new: Any) -> Any:
        root, parent = _copy_along(self.value, path[:-1])
        parent[path[-1]] = new
        return root

    def __call__(self) -> Any:
        rng = self.rng
        op = rng.randrange(9)
        if op <= 2:  # flip one bit somewhere in a leaf
            path, leaf = rng.choice(self.leaves)
            length = len(leaf) if isinstance(leaf, str) and leaf else 1
            return self._set(path, flip_bit(leaf, rng.randrange(length), rng.randrange(7 if op < 2 else 16)))
        if op == 3:  # a well-formed lie: another hash where a hash was
            return self._set(rng.choice(self.hashes)[0], f"{rng.getrandbits(256):064x}")
        if op == 4:  # an integer nudged
            path, leaf = rng.choice(self.ints)
            return self._set(path, leaf + rng.choice((-1, 1, 1000, -(2**40))))
        if op == 5:  # a leaf of the wrong type or an odd value
            return self._set(rng.choice(self.leaves)[0], rng.choice(_ODD_VALUES))
        if op == 6:  # another leaf's value transplanted
            return self._set(rng.choice(self.leaves)[0], rng.choice(self.leaves)[1])
        path, _ = rng.choice(self.containers)
        root, node = _copy_along(self.value, path)
        if isinstance(node, dict):
            if op == 7 and node:
                del node[rng.choice(sorted(node))]
            else:
                node[rng.choice(("extra", "format", "seal", "proof", "x"))] = rng.choice(_ODD_VALUES)
        elif node:
            i, j = rng.randrange(len(node)), rng.randrange(len(node))
            choice = rng.randrange(3)
            if choice == 0:
                del node[i]
            elif choice == 1:
                node.insert(i, node[j])
            else:
                node[i], node[j] = node[j], node[i]
        else:
            node.append(rng.choice(_ODD_VALUES))
        return root

    def mutated(self, rounds: int = 1) -> Any:
        value = self.value
        for _ in range(rounds):
            value = Mutator(value, self.rng.getrandbits(64))() if rounds > 1 else self()
        return value


def check_no_false_accept(data: bytes, original: bytes, root: TrustRoot, now_ms: int) -> str:
    """Verify ``data``; return ``"rejected"`` or ``"same"`` (a mutation that changed nothing the bundle means),
    and fail the test on any exception or on acceptance of a bundle that differs from ``original``."""
    from core.bundle import ProofBundle
    from verifier.core import Result, verify_bundle

    verdict = verify_bundle(data, root, now_ms=now_ms, max_checkpoint_age_ms=86_400_000)
    if verdict.result is Result.INVALID:
        assert verdict.failed_step is not None and verdict.failed_step.reason
        return "rejected"
    same = ProofBundle.from_json(data).to_json() == original
    assert same, f"false accept ({verdict.result}): {data[:300]!r}"
    return "same"
