"""The peer's binding to the license-registry executor (:mod:`network.executor`) and the envelope format.

The peer needs five things from the chaincode side, all deterministic: execute one envelope against a state
view, answer a read-only query, the signed timestamp of an envelope (for the block timestamp), its transaction
id (for the duplicate check), and a cheap shape check at submission. Everything that decides validity is the
executor's.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from core.canonical import decode, decode_canonical
from core.errors import EncodingError, FormatError
from core.transactions import MAX_ENVELOPE_BYTES, MAX_SIGNATURES, Envelope, tx_id_of
from network import executor
from network.peer.state import StateReader


class EnvelopeShapeError(FormatError):
    """A submitted envelope does not even have the shape of a signed envelope; it is not ordered."""


class ExecutorChaincode:
    """:class:`network.peer.peer.Chaincode` implemented by :mod:`network.executor`."""

    def execute(self, state: StateReader, envelope: bytes) -> executor.TxResult:
        return executor.execute(state, envelope)

    def evaluate(self, state: StateReader, function: str, args: list[str]) -> bytes:
        return executor.evaluate(state, function, args)

    def tx_time(self, envelope: bytes) -> int | None:
        """The envelope's signed ``timestamp_ms`` (GB/T 32918-signed by its author), ``None`` if malformed."""
        try:
            return Envelope.from_bytes(envelope).tx.timestamp_ms
        except FormatError:
            return None

    def tx_id(self, envelope: bytes) -> str:
        return tx_id_of(envelope)

    def precheck(self, envelope: bytes) -> None:
        """The signature shape of an envelope: canonical JSON ``{"tx": {...}, "signatures": [...]}`` with 1 to
        :data:`~core.transactions.MAX_SIGNATURES` entries of ``{signer, key_id, signature}`` whose signature
        is base64. The transaction itself is not judged here: every peer judges it identically once
        ordered."""
        if len(envelope) > MAX_ENVELOPE_BYTES:
            raise EnvelopeShapeError(f"envelope is {len(envelope)} bytes, more than {MAX_ENVELOPE_BYTES}")
        try:
            value = decode_canonical(envelope)
        except EncodingError as exc:
            raise EnvelopeShapeError(f"envelope is not canonical JSON: {exc}") from None
        if not isinstance(value, dict) or set(value) != {"tx", "signatures"} or not isinstance(value["tx"], dict):
            raise EnvelopeShapeError('envelope must be {"tx": {...}, "signatures": [...]}')
        sigs = value["signatures"]
        if not isinstance(sigs, list) or not 1 <= len(sigs) <= MAX_SIGNATURES:
            raise EnvelopeShapeError(f"envelope.signatures must hold 1 to {MAX_SIGNATURES} signatures")
        for i, sig in enumerate(sigs):
            if not isinstance(sig, dict) or set(sig) != {"signer", "key_id", "signature"}:
                raise EnvelopeShapeError(f"signatures[{i}] must be {{signer, key_id, signature}}")
            if not all(isinstance(sig[k], str) for k in sig):
                raise EnvelopeShapeError(f"signatures[{i}] fields must be strings")
            try:
                raw = base64.b64decode(sig["signature"], validate=True)
            except (binascii.Error, ValueError):
                raise EnvelopeShapeError(f"signatures[{i}].signature is not base64") from None
            if not 8 <= len(raw) <= 128:
                raise EnvelopeShapeError(f"signatures[{i}].signature is not an SM2 DER signature")

    def describe(self, raw: bytes) -> dict[str, Any]:
        """A query answer (JSON) as a dict."""
        value = decode(raw)
        if not isinstance(value, dict):
            raise FormatError("query answer is not a JSON object")
        return value
