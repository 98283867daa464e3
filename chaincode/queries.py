"""Read-only queries (Fabric *evaluate* transactions) and the JSON they return.

Every argument is a string (the Fabric wire form). Integers are plain decimal without sign or leading zeros.
``checkpoint_seq`` may be ``""`` for the newest state; otherwise the answer is as of that checkpoint, so the
proof verifies against that checkpoint's roots. Hashes are lower-case hex; sparse proofs are
:meth:`core.smt.SparseProof.to_dict`; Merkle proofs are lists of hex hashes in RFC 9162 order. Failures raise
:class:`~chaincode.errors.QueryError` (``BAD_QUERY`` for malformed arguments, ``NOT_FOUND``).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from chaincode import anchor_log, versioned_smt
from chaincode.anchoring import load_batch, status_tree_key
from chaincode.checkpoints import load_checkpoint, note_of
from chaincode.errors import QueryError, Reason
from chaincode.nodes import load_nodes
from chaincode.state import (
    CHECKPOINT_LATEST_FINAL,
    CHECKPOINT_NEXT,
    GENESIS,
    LEDGER_TIME,
    MEMBER_COUNT,
    NETWORK_ID,
    TxState,
    batch_envelope_key,
    record_key,
)
from core import merkle
from core.canonical import MAX_SAFE_INTEGER, decode_canonical
from core.codes import LicenseId
from core.consortium import member_key
from core.errors import FormatError
from core.hashing import sm3

__all__ = [
    "get_batch",
    "get_checkpoint",
    "get_genesis",
    "get_latest_final_checkpoint",
    "get_ledger_info",
    "get_log_consistency_proof",
    "get_log_entry",
    "get_log_inclusion_proof",
    "get_member",
    "get_nodes",
    "get_status",
]

_UINT = re.compile(r"0|[1-9][0-9]{0,15}")


def parse_uint(text: str, what: str) -> int:
    if not isinstance(text, str) or not _UINT.fullmatch(text) or int(text) > MAX_SAFE_INTEGER:
        raise QueryError(Reason.BAD_QUERY, f"{what} must be a non-negative decimal integer, got {text!r}")
    return int(text)


async def _initialised(state: TxState) -> None:
    if await state.get(GENESIS) is None:
        raise QueryError(Reason.NOT_FOUND, "the ledger has no genesis yet")


async def _tree_version(state: TxState, tree: str, checkpoint_seq: str) -> tuple[int, int | None]:
    """The tree version to read: the newest, or the one recorded in checkpoint ``checkpoint_seq``."""
    if checkpoint_seq == "":
        return (await versioned_smt.read_head(state, tree)).version, None
    seq = parse_uint(checkpoint_seq, "checkpoint_seq")
    record = await load_checkpoint(state, seq)
    if record is None:
        raise QueryError(Reason.NOT_FOUND, f"there is no checkpoint {seq}")
    field = "status_version" if tree == versioned_smt.STATUS else "membership_version"
    return int(record[field]), seq


async def get_ledger_info(state: TxState) -> dict[str, Any]:
    """Network id, transaction count, and the current roots of the log and both trees."""
    await _initialised(state)
    log_range = await anchor_log.load_range(state)
    status = await versioned_smt.read_head(state, versioned_smt.STATUS)
    members = await versioned_smt.read_head(state, versioned_smt.MEMBERS)
    latest = await state.get_int(CHECKPOINT_LATEST_FINAL, -1)
    network_id = await state.get(NETWORK_ID)
    tx_count, head = await state.ledger_head()
    return {
        "network_id": network_id.decode() if network_id else None,
        "tx_count": tx_count,
        "head": head.hex(),
        "member_count": await state.get_int(MEMBER_COUNT),
        "log": {"size": log_range.size, "root": log_range.root_hash().hex()},
        "status": status.to_dict(),
        "members": members.to_dict(),
        "checkpoint_next": await state.get_int(CHECKPOINT_NEXT),
        "latest_final_checkpoint": None if latest < 0 else latest,
        "time_ms": await state.get_int(LEDGER_TIME, 0),
    }


async def get_genesis(state: TxState) -> dict[str, Any]:
    await _initialised(state)
    raw = await state.get(GENESIS)
    assert raw is not None
    return {"genesis": decode_canonical(raw)}


async def _prove_record(state: TxState, tree: str, key: bytes, checkpoint_seq: str) -> dict[str, Any]:
    version, seq = await _tree_version(state, tree, checkpoint_seq)
    value_hash, proof, root = await versioned_smt.prove(state, tree, key, version)
    record = None
    if value_hash is not None:
        raw = await state.get(record_key(value_hash.hex()))
        if raw is None or sm3(raw) != value_hash:
            raise QueryError(Reason.NOT_FOUND, f"record {value_hash.hex()} is missing from state")
        record = decode_canonical(raw)
    return {
        "tree_key": key.hex(),
        "value_hash": None if value_hash is None else value_hash.hex(),
        "record": record,
        "proof": proof.to_dict(),
        "root": root.hex(),
        "tree_version": version,
        "checkpoint_seq": seq,
    }


async def get_member(state: TxState, name: str, checkpoint_seq: str) -> dict[str, Any]:
    """A member record with its membership-tree proof (or the proof that ``name`` is not a member)."""
    await _initialised(state)
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise QueryError(Reason.BAD_QUERY, "member name must be 1 to 64 characters")
    answer = await _prove_record(state, versioned_smt.MEMBERS, member_key(name), checkpoint_seq)
    return {"member": name, **answer}


def _license_base(text: str) -> str:
    if not isinstance(text, str) or len(text) > 160:
        raise QueryError(Reason.BAD_QUERY, "license id must be a string of at most 160 characters")
    try:
        if text.count(".") == 9:
            return LicenseId.parse(text).base
        parts = text.split(".")
        if len(parts) != 8 or ".".join(parts[:5]) != "1.2.156.3005.2":
            raise QueryError(Reason.BAD_QUERY, f"{text!r} is not a license identifier or identifier base")
        base = LicenseId.build(parts[5], parts[6], parts[7], 1).base
    except FormatError as exc:
        raise QueryError(Reason.BAD_QUERY, f"{text!r}: {exc}") from None
    return base


async def get_status(state: TxState, license_id: str, checkpoint_seq: str) -> dict[str, Any]:
    """A license's status with its status-tree proof; no record (a non-membership proof) means active as
    issued. ``license_id`` may be a full identifier or its base."""
    await _initialised(state)
    base = _license_base(license_id)
    answer = await _prove_record(state, versioned_smt.STATUS, status_tree_key(base), checkpoint_seq)
    status = "active" if answer["record"] is None else answer["record"]["status"]
    return {"license_base_id": base, "status": status, **answer}


async def get_batch(state: TxState, issuer: str, batch_seq: str) -> dict[str, Any]:
    """An anchored batch: its log index, record (the log leaf data), leaf hash and signed envelope."""
    await _initialised(state)
    seq = parse_uint(batch_seq, "batch_seq")
    if not isinstance(issuer, str) or not 0 < len(issuer) <= 64:
        raise QueryError(Reason.BAD_QUERY, "issuer must be a member name")
    batch = await load_batch(state, issuer, seq)
    if batch is None:
        raise QueryError(Reason.NOT_FOUND, f"{issuer} has no batch {seq}")
    data = await anchor_log.entry(state, batch["log_index"])
    envelope = await state.get(batch_envelope_key(issuer, seq))
    assert data is not None and envelope is not None
    return {
        **batch,
        "leaf_hash": merkle.leaf_hash(data).hex(),
        "envelope": base64.b64encode(envelope).decode(),
    }


async def _log_size(state: TxState) -> int:
    return (await anchor_log.load_range(state)).size


async def get_log_entry(state: TxState, index: str) -> dict[str, Any]:
    """Log entry ``index``: its record and leaf hash."""
    await _initialised(state)
    i = parse_uint(index, "index")
    data = await anchor_log.entry(state, i)
    if data is None:
        raise QueryError(Reason.NOT_FOUND, f"the anchor log has no entry {i}")
    return {"log_index": i, "record": decode_canonical(data), "leaf_hash": merkle.leaf_hash(data).hex()}


async def get_log_inclusion_proof(state: TxState, index: str, size: str) -> dict[str, Any]:
    """``PATH(index, D[size])`` with the leaf hash and ``MTH(D[size])`` (RFC 9162 §2.1.3)."""
    await _initialised(state)
    i, n = parse_uint(index, "index"), parse_uint(size, "size")
    current = await _log_size(state)
    if not 0 < n <= current or i >= n:
        raise QueryError(Reason.BAD_QUERY, f"need index < size <= {current} (the log's size), got {i}, {n}")
    data = await anchor_log.entry(state, i)
    assert data is not None
    return {
        "leaf_index": i,
        "tree_size": n,
        "leaf_hash": merkle.leaf_hash(data).hex(),
        "inclusion_proof": [p.hex() for p in await anchor_log.inclusion_proof(state, i, n)],
        "root_hash": (await anchor_log.root_hash(state, n)).hex(),
    }


async def get_log_consistency_proof(state: TxState, size1: str, size2: str) -> dict[str, Any]:
    """``PROOF(size1, D[size2])`` with both roots (RFC 9162 §2.1.4)."""
    await _initialised(state)
    m, n = parse_uint(size1, "size1"), parse_uint(size2, "size2")
    current = await _log_size(state)
    if not 0 < m <= n <= current:
        raise QueryError(Reason.BAD_QUERY, f"need 0 < size1 <= size2 <= {current} (the log's size), got {m}, {n}")
    return {
        "size1": m,
        "size2": n,
        "consistency_proof": [p.hex() for p in await anchor_log.consistency_proof(state, m, n)],
        "root1": (await anchor_log.root_hash(state, m)).hex(),
        "root2": (await anchor_log.root_hash(state, n)).hex(),
    }


async def get_checkpoint(state: TxState, seq: str) -> dict[str, Any]:
    """Checkpoint ``seq``: fields, body, quorum, cosignatures, ``final`` and the signed ``note``
    (:mod:`core.checkpoint` format; ``None`` before the first cosignature)."""
    await _initialised(state)
    n = parse_uint(seq, "seq")
    record = await load_checkpoint(state, n)
    if record is None:
        raise QueryError(Reason.NOT_FOUND, f"there is no checkpoint {n}")
    return {**record, "note": note_of(record)}


async def get_latest_final_checkpoint(state: TxState) -> dict[str, Any]:
    await _initialised(state)
    latest = await state.get_int(CHECKPOINT_LATEST_FINAL, -1)
    if latest < 0:
        raise QueryError(Reason.NOT_FOUND, "no checkpoint is final yet")
    return await get_checkpoint(state, str(latest))


async def get_nodes(state: TxState) -> dict[str, Any]:
    """``{"nodes": [record, ...]}``: each member's latest ``AnnounceNode`` record (``member``, ``url`` - ``""``
    once withdrawn -, ``seq``, ``timestamp_ms``, ``tx_id``), sorted by member."""
    await _initialised(state)
    nodes = await load_nodes(state)
    return {"nodes": [nodes[name] for name in sorted(nodes)]}
