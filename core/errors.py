"""The exception tree of licledger, split by source (after python-tuf's ``tuf/api/exceptions.py``).

* Caller misuse (wrong types, impossible arguments) raises the built-in ``ValueError`` / ``TypeError``.
* Untrusted input that is malformed raises a :class:`FormatError` subclass: it could not even be parsed.
* Untrusted input that parses but fails a check raises a :class:`VerificationError` subclass, carrying the
  evidence (expected and calculated values) needed to diagnose or report it.

HTTP status mapping happens in one place in ``node``; nothing here knows about transport.
"""

from __future__ import annotations


class LicledgerError(Exception):
    """Base of every error licledger raises on purpose."""


# --- malformed input -------------------------------------------------------------------------------------


class FormatError(LicledgerError, ValueError):
    """Input bytes or values are malformed: they do not parse as the format they claim to be."""


class EncodingError(FormatError):
    """Not valid canonical JSON (RFC 8785 subset used by licledger), or not canonical bytes."""


class KeyFormatError(FormatError):
    """A key (PEM, DER, raw point) is malformed, on the wrong curve, or not a valid point."""


class SignatureFormatError(FormatError):
    """A signature is not a well-formed DER ``SEQUENCE { r INTEGER, s INTEGER }`` with r, s in [1, n-1]."""


class ProofFormatError(FormatError):
    """A Merkle proof has the wrong shape (hash length, count of nodes for the sizes given)."""


class DocumentError(FormatError):
    """A license document or identifier is invalid. ``errors`` maps each bad field to what is wrong with it."""

    def __init__(self, message: str, errors: dict[str, str] | None = None) -> None:
        self.errors: dict[str, str] = dict(errors or {})
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items()))
        super().__init__(f"{message}: {detail}" if detail else message)


# --- well-formed input that fails a check ------------------------------------------------------------------


class VerificationError(LicledgerError):
    """Untrusted data parsed but did not verify."""


class SignatureError(VerificationError):
    """An SM2 signature does not verify under the given key and signer ID."""

    def __init__(self, message: str, *, key_id: str | None = None) -> None:
        self.key_id = key_id
        super().__init__(f"{message} (key {key_id})" if key_id else message)


class ProofError(VerificationError):
    """A Merkle proof does not verify."""


class RootMismatchError(ProofError):
    """The root calculated from a proof differs from the expected one (transparency-dev/merkle naming)."""

    def __init__(self, expected_root: bytes, calculated_root: bytes, what: str = "root") -> None:
        self.expected_root = expected_root
        self.calculated_root = calculated_root
        super().__init__(f"{what} mismatch: expected {expected_root.hex()}, calculated {calculated_root.hex()}")


class DecryptionError(VerificationError):
    """SM4-GCM authentication failed: wrong key, wrong associated data, or altered ciphertext."""
