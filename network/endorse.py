"""The national authority's endorsement of a member's key rotation (docs/chaincode.md, ``RotateKey``).

A province rotates its SM2 key (GB/T 32918) in two parties, so that it never holds the national key:

1. the province signs a ``RotateKey`` envelope with its current key (author) and its new key (proof of
   possession): the **rotation request** (``licledger node rotate-key request``);
2. the national authority checks the request and adds its signature over the same ``SIGNING_CONTEXT ||
   canonical(tx)``: :func:`endorse_rotation` (``licledger network endorse``). The transaction, and so its id,
   does not change; only the envelope's signature list grows.

The checks here repeat the contract's on the national side, against the member's current record, so the
authority endorses only what it has looked at; the contract still decides (a request tampered with after the
endorsement fails its signatures there). The checks are I/O-free; :func:`lookup_member` fetches the record
from the network's peers.
"""

from __future__ import annotations

import json

from core.consortium import NATIONAL, MemberRecord, public_key_from_spki
from core.errors import FormatError, SignatureError, VerificationError
from core.sm2 import PrivateKey
from core.transactions import ROTATE_KEY, Envelope, Signature
from network.localnet import NetworkConfig
from network.peer.client import PeerClient, PeerRequestError

__all__ = ["RotationRequestError", "check_rotation_request", "endorse_rotation", "lookup_member"]


class RotationRequestError(VerificationError):
    """A well-formed envelope that is not a rotation request the national authority may endorse."""

    def __init__(self, message: str, *, tx_id: str, author: str) -> None:
        self.tx_id = tx_id
        self.author = author
        super().__init__(f"{message} (tx {tx_id}, author {author})")


def check_rotation_request(envelope: Envelope, network_id: str, record: MemberRecord | None) -> None:
    """Raise :class:`RotationRequestError` unless ``envelope`` is a ``RotateKey`` of this network by the member
    whose current ledger record is ``record``: next seq, author key valid at the transaction time, author and
    new-key signatures present and verifying, no endorsement yet, nothing else signed."""
    tx = envelope.tx

    def fail(message: str) -> RotationRequestError:
        return RotationRequestError(message, tx_id=tx.tx_id, author=tx.author)

    if tx.type != ROTATE_KEY:
        raise fail(f"not a {ROTATE_KEY} transaction but {tx.type}")
    if tx.network_id != network_id:
        raise fail(f"for network {tx.network_id}, not this network {network_id}")
    if record is None:
        raise fail("the ledger has no such member")
    if tx.author == NATIONAL:
        raise fail("the national authority rotates its own key without an endorsement")
    if tx.seq != record.seq + 1:
        raise fail(f"seq {tx.seq} is not the member record's next ({record.seq + 1})")
    old = record.key(tx.key_id)
    if old is None or not old.valid_at(tx.timestamp_ms):
        raise fail(f"signing key {tx.key_id} is not a key of the member valid at {tx.timestamp_ms}")
    try:
        new_public = public_key_from_spki(bytes.fromhex(tx.args["new_spki"]))
    except FormatError as exc:
        raise fail(f"new key: {exc}") from None
    new_key_id = new_public.key_id
    if record.key(new_key_id) is not None:
        raise fail(f"the new key {new_key_id} is already one of the member's keys")
    expected = {(tx.author, tx.key_id): old.public_key, (tx.author, new_key_id): new_public}
    present = {(s.signer, s.key_id) for s in envelope.signatures}
    if present != set(expected):
        raise fail(f"signatures by {sorted(present)}; a request carries exactly {sorted(expected)}")
    for signature in envelope.signatures:
        try:
            signature.verify(tx, expected[(signature.signer, signature.key_id)])
        except (SignatureError, FormatError) as exc:
            raise fail(f"signature by {signature.signer} key {signature.key_id} does not verify: {exc}") from None


def endorse_rotation(request: bytes, national_key: PrivateKey, network_id: str, record: MemberRecord | None) -> bytes:
    """Check the request (:func:`check_rotation_request`) and return the envelope with the national
    authority's signature added. ``TransactionFormatError`` for bytes that are not an envelope."""
    envelope = Envelope.from_bytes(request)
    check_rotation_request(envelope, network_id, record)
    tx = envelope.tx
    endorsement = Signature(NATIONAL, national_key.key_id, national_key.sign(tx.signing_message()))
    data = Envelope(tx, (*envelope.signatures, endorsement)).to_bytes()
    Envelope.from_bytes(data)
    return data


def lookup_member(config: NetworkConfig, name: str) -> MemberRecord | None:
    """The member's current record (``GetMember``) from the first of the network's peers that answers.

    Raises ``ConnectionError`` when no peer answers: the authority endorses
    only against the ledger's current state, never against the genesis alone (the seq would be stale).
    """
    failures = []
    for member in config.members:
        try:
            _, raw = PeerClient(member.http_url, timeout=10).query("GetMember", [name, ""])
        except PeerRequestError as exc:
            if exc.status == 404:
                return None
            failures.append(f"{member.http_url}: {exc}")
            continue
        answer = json.loads(raw)
        return None if answer.get("record") is None else MemberRecord.from_dict(answer["record"])
    raise ConnectionError("no peer of the network answered GetMember: " + "; ".join(failures))
