"""Benchmark licledger's SM2/SM3/SM4 wrappers against the raw gmssl_pyx calls, measured in the same run.

Usage: ``python bench/bench_crypto.py``. Each licledger figure is paired with the raw GmSSL call doing the
same work (for SM2: the digest API with ``Z`` precomputed, plus the SM3 of ``Z || M``); the pair is measured
in alternating rounds and the best round of each is kept, so noise on a shared machine affects both alike.
The ratio ``licledger / raw`` is the wrapper's cost (target >= 0.9). The message API (``sm2_sign``, which
rebuilds ``Z`` per call) is shown for reference. Total runtime is about 20 seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gmssl_pyx import (
    sm2_sign,
    sm2_sign_sm3_digest,
    sm2_verify,
    sm2_verify_sm3_digest,
    sm3_hash,
)

from core import sm4
from core.hashing import sm3
from core.keystore import DEFAULT_ITERATIONS, kek_from_passphrase
from core.sm2 import DEFAULT_SIGNER_ID, PrivateKey

ROUNDS = 9
ROUND_SECONDS = 0.15


def _calibrate(fn: Callable[[], object], seconds: float) -> int:
    """A batch size for which ``fn`` runs about ``seconds`` (also warms caches)."""
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            return max(1, int(batch * seconds / elapsed))
        batch *= 4


def _timed(fn: Callable[[], object], batch: int) -> float:
    start = time.perf_counter()
    for _ in range(batch):
        fn()
    return batch / (time.perf_counter() - start)


def _rate(fn: Callable[[], object], seconds: float = ROUND_SECONDS) -> float:
    """Best-of-``ROUNDS`` calls per second of ``fn``."""
    batch = _calibrate(fn, seconds)
    return max(_timed(fn, batch) for _ in range(ROUNDS))


def _paired(ours: Callable[[], object], raw: Callable[[], object]) -> tuple[float, float]:
    """Best-of-``ROUNDS`` rates for ``ours`` and ``raw``, measured in alternating rounds."""
    batch_ours, batch_raw = _calibrate(ours, ROUND_SECONDS), _calibrate(raw, ROUND_SECONDS)
    best_ours = best_raw = 0.0
    for _ in range(ROUNDS):
        best_ours = max(best_ours, _timed(ours, batch_ours))
        best_raw = max(best_raw, _timed(raw, batch_raw))
    return best_ours, best_raw


def run() -> dict[str, float]:
    """All figures, in operations per second unless the name says otherwise."""
    results: dict[str, float] = {}
    message = bytes(range(256))
    key = PrivateKey.generate()
    public = key.public_key
    d, raw_public = key.to_bytes(), public.raw
    z = public.z()
    signature = key.sign(message)

    ours, raw = _paired(lambda: sm3(message), lambda: sm3_hash(message))
    results["sm3_256B_hashes_per_s"] = ours
    results["sm3_256B_raw_hashes_per_s"] = raw

    ours, raw = _paired(
        lambda: key.sign(message),
        lambda: sm2_sign_sm3_digest(d, sm3_hash(z + message)),
    )
    results["sm2_sign_per_s"] = ours
    results["sm2_sign_raw_digest_api_per_s"] = raw
    results["sm2_sign_ratio"] = ours / raw

    ours, raw = _paired(
        lambda: public.verify(message, signature),
        lambda: sm2_verify_sm3_digest(raw_public, sm3_hash(z + message), signature),
    )
    results["sm2_verify_per_s"] = ours
    results["sm2_verify_raw_digest_api_per_s"] = raw
    results["sm2_verify_ratio"] = ours / raw

    results["sm2_sign_raw_message_api_per_s"] = _rate(lambda: sm2_sign(d, raw_public, message, DEFAULT_SIGNER_ID))
    results["sm2_verify_raw_message_api_per_s"] = _rate(
        lambda: sm2_verify(raw_public, message, signature, DEFAULT_SIGNER_ID)
    )

    kek = bytes(16)
    page = bytes(4096)
    sealed = sm4.gcm_encrypt(kek, page)
    results["sm4_gcm_encrypt_4KiB_MB_per_s"] = _rate(lambda: sm4.gcm_encrypt(kek, page)) * 4096 / 1e6
    results["sm4_gcm_decrypt_4KiB_MB_per_s"] = _rate(lambda: sm4.gcm_decrypt(kek, sealed)) * 4096 / 1e6

    start = time.perf_counter()
    kek_from_passphrase("benchmark", b"saltsalt", DEFAULT_ITERATIONS)
    results["pbkdf2_hmac_sm3_200k_iterations_s"] = time.perf_counter() - start
    return results


def main() -> None:
    start = time.perf_counter()
    results = run()
    for name, value in results.items():
        print(f"{name:<40} {value:>14,.3f}")
    print(f"{'total_runtime_s':<40} {time.perf_counter() - start:>14,.3f}")


if __name__ == "__main__":
    main()
