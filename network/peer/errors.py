"""Errors of the embedded peer, split by source like :mod:`core.errors`.

* :class:`BlockFormatError`: a block served by another peer (or read back from disk) does not even parse.
* :class:`BlockIntegrityError`: a stored or served block parses, but one of its SM3 hashes does not match what
  it should be: the evidence is the block number, which hash, and the expected and calculated values.
* :class:`BlockMismatchError`: a block served by another peer differs from the block this peer computed by
  re-executing the same ordered payload (the serving peer is faulty or lying).
* :class:`PeerUnhealthyError`: the peer has found its own store altered and refuses to serve what it cannot
  vouch for. It names the first block that failed.
"""

from __future__ import annotations

from core.errors import FormatError, LicledgerError, VerificationError


class BlockFormatError(FormatError):
    """A block or ordered payload is malformed (wrong types, bad base64, missing fields)."""


class BlockIntegrityError(VerificationError):
    """A block's recomputed hash differs from the recorded one: the block was altered after it was
    committed."""

    def __init__(self, number: int, what: str, expected: bytes, calculated: bytes) -> None:
        self.number = number
        self.what = what
        self.expected = expected
        self.calculated = calculated
        super().__init__(f"block {number} altered: {what} expected {expected.hex()}, calculated {calculated.hex()}")


class BlockMismatchError(VerificationError):
    """A served block differs from the block re-executed locally from the same ordered payload."""

    def __init__(self, number: int, what: str, served: str, computed: str) -> None:
        self.number = number
        self.what = what
        self.served = served
        self.computed = computed
        super().__init__(f"block {number} rejected: served {what} {served}, re-executed {what} {computed}")


class PeerUnhealthyError(LicledgerError):
    """The peer detected an altered block or state and refuses to serve data it cannot vouch for."""

    def __init__(self, message: str, *, block: int | None = None) -> None:
        self.block = block
        super().__init__(message)
