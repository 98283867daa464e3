"""SM4-GCM authenticated encryption (SM4: GB/T 32907-2016 / GM/T 0002-2012; GCM: NIST SP 800-38D, as used with
SM4 by RFC 8998 §3).

Wire format of :func:`gcm_encrypt`: ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. The nonce is 96
random bits drawn fresh for every call (SP 800-38D §8.2.2), so one key must not seal more than 2^32 messages.

The cipher runs in GmSSL 3.2 (``gmssl_pyx``). Two gaps in its API are closed here, both checked against an
independent SM4-GCM in ``tests/test_sm4.py``:

* GmSSL refuses an empty plaintext. GCM defines it (the tag then authenticates the associated data alone), so
  :func:`_seal` computes that tag from SP 800-38D §7.1 itself: ``H = E_K(0^128)``,
  ``J_0 = IV || 0^31 || 1``, ``T = E_K(J_0) XOR GHASH_H(A || 0^v || [len(A)]_64 || [0]_64)``.
* GmSSL's own GCM decryption prints a C-level trace on every authentication failure. :func:`gcm_decrypt`
  instead recovers the plaintext with SM4-CTR from ``inc32(J_0)`` (SP 800-38D §7.2 step 3), recomputes the
  ciphertext and tag with :func:`_seal`, compares the tags in constant time, and releases the plaintext only
  if they match. GmSSL's CTR increments all 128 counter bits where GCM's ``inc32`` increments the low 32; the
  two agree because a plaintext is capped at ``2^32 - 2`` blocks, so the low word (starting at 2) never wraps.
"""

from __future__ import annotations

import hmac
import secrets

from gmssl_pyx import sm4_ctr_encrypt, sm4_gcm_encrypt

from core.errors import DecryptionError, FormatError

KEY_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
BLOCK_SIZE = 16
MAX_PLAINTEXT = (2**32 - 2) * BLOCK_SIZE
"""SP 800-38D §5.2.1.1: at most 2^39 - 256 bits of plaintext per invocation."""


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes):
        raise TypeError(f"SM4 key must be bytes, not {type(key).__name__}")
    if len(key) != KEY_SIZE:
        raise ValueError(f"SM4 key must be {KEY_SIZE} bytes, got {len(key)}")


def _check_bytes(value: bytes, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{name} must be bytes, not {type(value).__name__}")


def encrypt_block(key: bytes, block: bytes) -> bytes:
    """The SM4 block cipher ``E_K`` on one 16-byte block (GB/T 32907-2016 §7.1).

    GmSSL exposes no ECB call; one block of CTR keystream with the counter set to ``block`` is ``E_K(block)``.
    """
    _check_key(key)
    if len(block) != BLOCK_SIZE:
        raise ValueError(f"SM4 block must be {BLOCK_SIZE} bytes, got {len(block)}")
    result: bytes = sm4_ctr_encrypt(key, bytes(block), bytes(BLOCK_SIZE))
    return result


# --- GHASH for the empty-plaintext tag (SP 800-38D §6.3, §6.4) -------------------------------------------

_R = 0xE1 << 120


def _gf128_multiply(x: int, y: int) -> int:
    """Multiplication in GF(2^128) with GCM's bit order (SP 800-38D §6.3, Algorithm 1)."""
    z, v = 0, y
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        v = (v >> 1) ^ _R if v & 1 else v >> 1
    return z


def _ghash(h: bytes, data: bytes) -> int:
    hk = int.from_bytes(h, "big")
    y = 0
    for i in range(0, len(data), BLOCK_SIZE):
        y = _gf128_multiply(y ^ int.from_bytes(data[i : i + BLOCK_SIZE], "big"), hk)
    return y


def _empty_plaintext_tag(key: bytes, nonce: bytes, aad: bytes) -> bytes:
    h = encrypt_block(key, bytes(BLOCK_SIZE))
    j0 = nonce + b"\x00\x00\x00\x01"
    padded = aad + bytes(-len(aad) % BLOCK_SIZE)
    lengths = (len(aad) * 8).to_bytes(8, "big") + bytes(8)
    s = _ghash(h, padded + lengths)
    return (int.from_bytes(encrypt_block(key, j0), "big") ^ s).to_bytes(BLOCK_SIZE, "big")


def _seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """GCM-AE_K(IV, P, A) (SP 800-38D §7.1) with a 96-bit IV and a 128-bit tag."""
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError("plaintext exceeds the SM4-GCM limit of 2^39 - 256 bits")
    if not plaintext:
        return b"", _empty_plaintext_tag(key, nonce, aad)
    ciphertext, tag = sm4_gcm_encrypt(key, nonce, aad, plaintext)
    return ciphertext, tag


def gcm_encrypt(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """``nonce || ciphertext || tag`` of ``plaintext`` under SM4-GCM with a fresh random 96-bit nonce."""
    _check_key(key)
    plaintext = _check_bytes(plaintext, "plaintext")
    aad = _check_bytes(aad, "aad")
    nonce = secrets.token_bytes(NONCE_SIZE)
    ciphertext, tag = _seal(key, nonce, plaintext, aad)
    return nonce + ciphertext + tag


def gcm_decrypt(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    """The plaintext of ``nonce || ciphertext || tag`` (SP 800-38D §7.2).

    Raises :class:`~core.errors.FormatError` if ``blob`` is shorter than nonce and tag, and
    :class:`~core.errors.DecryptionError` if the tag does not authenticate ``ciphertext`` and ``aad`` under
    ``key`` (wrong key, wrong associated data, or altered bytes).
    """
    _check_key(key)
    blob = _check_bytes(blob, "blob")
    aad = _check_bytes(aad, "aad")
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise FormatError(
            f"SM4-GCM blob is {len(blob)} bytes, shorter than nonce and tag ({NONCE_SIZE + TAG_SIZE} bytes)"
        )
    nonce, ciphertext, tag = blob[:NONCE_SIZE], blob[NONCE_SIZE:-TAG_SIZE], blob[-TAG_SIZE:]
    if len(ciphertext) > MAX_PLAINTEXT:
        raise FormatError("SM4-GCM ciphertext exceeds the 2^39 - 256 bit limit")
    plaintext = b""
    if ciphertext:
        first_counter = nonce + b"\x00\x00\x00\x02"  # inc32(J_0)
        plaintext = sm4_ctr_encrypt(key, first_counter, ciphertext)
    _, expected = _seal(key, nonce, plaintext, aad)
    if not hmac.compare_digest(expected, tag):
        raise DecryptionError("SM4-GCM authentication failed: wrong key, wrong associated data or altered data")
    return plaintext
