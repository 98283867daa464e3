"""Rotating the province's SM2 signing key (GB/T 32918) through the ledger's ``RotateKey`` transaction.

Rules, before any code (docs/node.md, "Key rotation"; docs/chaincode.md, ``RotateKey``):

1. **Request.** :func:`request_rotation` generates the new key, stores it SM4-encrypted under the node's KEK as
   the *pending* key (:data:`PENDING_KEY_FILE`; one at a time) and returns the ``RotateKey`` envelope signed by
   the current key (author) and the new key (proof of possession), with ``seq`` the member record's next. The
   national endorsement is added by the national authority (:mod:`network.endorse`): the province never holds
   the national key.
2. **Submit.** :func:`submit_rotation` accepts only the endorsed form of this node's own request (same author,
   current key as author key, the pending key as the new key), refuses it when the node has sealed documents
   with the old key at or after the transaction time (the contract retires the old key at that instant, so
   those seals would no longer verify), submits it and waits for its block. A rejection is reported with the
   contract's reason and leaves the node's key unchanged. Submitting again is safe: when the ledger already
   holds a valid copy of the transaction (an answer lost, a crash before the switch), the node switches.
3. **Switch.** Only after the ledger committed the transaction as valid (:func:`switch_key`): the old key file
   is copied to ``retired-keys/<key_id>.enc`` with a ``<key_id>.json`` note (retired at the transaction time,
   transaction id, block), then the pending file atomically replaces the key file (``os.replace``). Documents
   sealed earlier keep verifying: their seal time is within the old key's validity in the member record.
   A running ``node serve`` (and its anchoring worker) reads the key through :class:`network.keyfile.KeyFile`
   and adopts the new key within a second, without a restart.
4. **The peer.** The member's peer cosigns checkpoints with the member key. ``submit --network-dir DIR`` also
   replaces the member's key file in the network directory (the old one kept beside it); the running peer
   adopts it once its membership state lists the new key as valid, so its cosignatures keep counting.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from core.errors import LicledgerError, VerificationError
from core.keystore import decrypt_private_key, encrypt_private_key
from core.sm2 import PrivateKey
from core.transactions import ROTATE_KEY, Envelope, rotate_key
from node.context import PENDING_KEY_FILE, NodeContext
from node.db.models import LicenseVersion
from node.ledger import Committed
from node.tokens import write_new_file

if TYPE_CHECKING:
    from network.localnet import NetworkConfig

__all__ = [
    "PENDING_KEY_FILE",
    "RETIRED_DIR",
    "RotationError",
    "RotationRejectedError",
    "request_rotation",
    "submit_rotation",
    "switch_key",
]

RETIRED_DIR = "retired-keys"
PUBLIC_KEY_FILE = "province-key.pub.pem"


class RotationError(LicledgerError):
    """The rotation cannot proceed as asked (no ledger, no pending key, an envelope that is not this node's)."""


class RotationRejectedError(VerificationError):
    """The ledger committed the rotation as invalid; ``reason`` is the contract's reason code."""

    def __init__(self, committed: Committed) -> None:
        self.committed = committed
        self.reason = committed.reason
        super().__init__(f"the ledger rejected the rotation {committed.tx_id}: {committed.reason}: {committed.message}")


@dataclass(frozen=True, slots=True)
class Rotated:
    """A committed rotation: the keys before and after, the transaction and where it landed."""

    old_key_id: str
    new_key_id: str
    tx_id: str
    block: int
    retired_ms: int


def _pending_file(ctx: NodeContext) -> Path:
    return ctx.settings.dir / PENDING_KEY_FILE


def _member(ctx: NodeContext) -> str:
    if ctx.ledger is None:
        raise RotationError("this node has not joined a ledger (LICLEDGER_LEDGER_URLS, LICLEDGER_NETWORK_ID)")
    return ctx.settings.province


def request_rotation(ctx: NodeContext) -> bytes:
    """Rule 1: the pending key and the request envelope (``RotateKey`` without the national endorsement)."""
    member = _member(ctx)
    assert ctx.ledger is not None
    pending = _pending_file(ctx)
    if pending.exists():
        raise RotationError(f"{pending} exists: a rotation is already pending (submit it, or delete the file)")
    record = ctx.ledger.member(member)
    now = ctx.clock()
    if record is None or record.key(ctx.signing_key.key_id) is None:
        raise RotationError(f"the ledger lists no member {member} with the node's key {ctx.signing_key.key_id}")
    new_key = PrivateKey.generate()
    request = rotate_key(
        ctx.ledger.network_id,
        member=member,
        seq=record.seq + 1,
        old_key=ctx.signing_key,
        new_key=new_key,
        national_key=None,
        timestamp_ms=now,
    )
    write_new_file(pending, encrypt_private_key(new_key, ctx.settings.kek_bytes), 0o600)
    return request


def _check_own(ctx: NodeContext, envelope: Envelope, new_key: PrivateKey) -> None:
    tx = envelope.tx
    if tx.type != ROTATE_KEY or tx.author != ctx.settings.province or tx.key_id != ctx.signing_key.key_id:
        raise RotationError(
            f"not a rotation of this node's key: {tx.type} by {tx.author} key {tx.key_id} "
            f"(node: {ctx.settings.province} key {ctx.signing_key.key_id})"
        )
    if tx.args["new_spki"] != new_key.public_key.to_der().hex():
        raise RotationError(f"the envelope's new key is not the pending key {new_key.key_id}")


def _sealed_since(ctx: NodeContext, key_id: str, since_ms: int) -> int:
    with ctx.read_sessions() as session:
        count = session.scalar(
            select(func.count())
            .select_from(LicenseVersion)
            .where(LicenseVersion.seal_key_id == key_id, LicenseVersion.created_ms >= since_ms)
        )
    return int(count or 0)


def submit_rotation(
    ctx: NodeContext, signed: bytes, *, timeout: float | None = None, network_dir: Path | None = None
) -> Rotated:
    """Rules 2 and 3: submit the endorsed envelope, wait for its block, switch keys on a valid commit."""
    _member(ctx)
    assert ctx.ledger is not None
    pending = _pending_file(ctx)
    if not pending.exists():
        raise RotationError(f"{pending} is missing: run `licledger node rotate-key request` first")
    new_key = decrypt_private_key(pending.read_bytes(), ctx.settings.kek_bytes)
    envelope = Envelope.from_bytes(signed)
    _check_own(ctx, envelope, new_key)
    if network_dir is not None:
        _peer_network(ctx, network_dir)
    late = _sealed_since(ctx, ctx.signing_key.key_id, envelope.tx.timestamp_ms)
    if late:
        raise RotationError(
            f"{late} document versions were sealed with the old key at or after the request time "
            f"{envelope.tx.timestamp_ms}; they would not verify after this rotation: make a new request"
        )
    earlier = ctx.ledger.committed(envelope.tx_id)  # a submit whose answer was lost, or a crash before the switch
    if earlier is not None and earlier.valid:
        return switch_key(ctx, envelope, earlier, network_dir=network_dir)
    [committed] = ctx.ledger.submit([signed], timeout=timeout)
    if committed.tx_id != envelope.tx_id:
        raise RotationError(f"the ledger answered for {committed.tx_id}, not {envelope.tx_id}")
    if not committed.valid:
        first = ctx.ledger.committed(envelope.tx_id)  # rule 2 of node.ledger: a replay points to the valid copy
        if first is None or not first.valid:
            raise RotationRejectedError(committed)
        committed = first
    return switch_key(ctx, envelope, committed, network_dir=network_dir)


def _peer_network(ctx: NodeContext, network_dir: Path) -> NetworkConfig:
    """The network directory that holds this member's peer and its key file (checked before anything changes)."""
    from network.localnet import NetworkConfig, load_kek, load_member_key

    try:
        config = NetworkConfig.load(network_dir)
        config.member(ctx.settings.province)
        load_member_key(config, ctx.settings.province, load_kek(config))
    except (LicledgerError, ValueError, OSError) as exc:
        raise RotationError(f"cannot hand the new key to the peer in {network_dir}: {exc}") from None
    return config


def switch_key(
    ctx: NodeContext, envelope: Envelope, committed: Committed, *, network_dir: Path | None = None
) -> Rotated:
    """Rule 3: keep the old key file as retired, then atomically make the pending key the signing key.

    With ``network_dir`` (a ``licledger network`` directory holding this member's peer), the member's key file
    there is replaced too, so that its peer signs checkpoint duties with the new key (rule 4).
    """
    settings = ctx.settings
    member_config = None if network_dir is None else _peer_network(ctx, network_dir)
    old_id = ctx.signing_key.key_id
    new_key = decrypt_private_key(_pending_file(ctx).read_bytes(), settings.kek_bytes)
    retired_ms = envelope.tx.timestamp_ms
    retired = settings.dir / RETIRED_DIR
    retired.mkdir(mode=0o700, exist_ok=True)
    note = {
        "key_id": old_id,
        "retired_ms": retired_ms,
        "tx_id": committed.tx_id,
        "block": committed.block,
        "successor": new_key.key_id,
    }
    for name, data in (
        (f"{old_id}.enc", settings.key_file.read_bytes()),
        (f"{old_id}.json", json.dumps(note, sort_keys=True).encode("utf-8") + b"\n"),
    ):
        if not (retired / name).exists():
            write_new_file(retired / name, data, 0o600)
    public = settings.dir / PUBLIC_KEY_FILE
    tmp_public = public.with_name(public.name + ".tmp")
    tmp_public.write_bytes(new_key.public_key.to_pem())
    os.replace(_pending_file(ctx), settings.key_file)  # the switch: one atomic rename
    os.replace(tmp_public, public)
    ctx.signing_key = new_key
    if member_config is not None:
        from network.localnet import install_member_key

        install_member_key(member_config, settings.province, new_key)
    return Rotated(old_id, new_key.key_id, committed.tx_id, committed.block, retired_ms)
