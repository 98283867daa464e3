"""Throughput of the synthetic generator and of the document pipeline (parse, canonicalise, commit).

Usage: ``python3 bench/bench_gen.py [N]``. ``run()`` returns the figures (licenses per second, measured in
this process) so ``bench/bench_core.py`` can print them with the other suites. The baseline is the bare minimum a
pipeline without validation would do (``json.loads`` + ``json.dumps(sort_keys=True)`` + SM3) measured on
the same documents moments apart, so the ratio says what strict validation and RFC 8785 encoding cost.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import canonical
from core.commitment import commitment
from core.hashing import sm3
from core.licenses import canonical_bytes, parse_document
from core.synth import generate

KINDS = ("physician", "nurse", "institution")
PROVINCE = "440000"
SALT = bytes(32)


def _rate(count: int, work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return count / (time.perf_counter() - start)


def run(n: int = 5000) -> dict[str, float]:
    results: dict[str, float] = {}
    for kind in KINDS:

        def generate_all(kind: str = kind) -> None:
            for _ in generate(kind, n, PROVINCE, 1):
                pass

        results[f"generate {kind} licenses/s"] = _rate(n, generate_all)
    docs = list(generate("physician", n, PROVINCE, 2))
    results["generate+encode (licledger gen) physician/s"] = _rate(
        n, lambda: [canonical.encode(d) for d in generate("physician", n, PROVINCE, 3)]
    )
    for kind in KINDS:
        kind_docs = docs if kind == "physician" else list(generate(kind, n, PROVINCE, 2))
        lines = [canonical.encode(d) for d in kind_docs]

        def pipeline(lines: list[bytes] = lines) -> None:
            for line in lines:
                commitment(canonical_bytes(parse_document(line)), SALT)

        results[f"parse+canonicalise+commit {kind}/s"] = _rate(n, pipeline)
    lines = [canonical.encode(d) for d in docs]

    def baseline() -> None:
        for line in lines:
            sm3(SALT + json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False).encode())

    results["baseline json+sm3 physician/s"] = _rate(n, baseline)
    results["ratio pipeline/baseline physician"] = (
        results["parse+canonicalise+commit physician/s"] / results["baseline json+sm3 physician/s"]
    )
    return results


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    for key, value in run(n).items():
        print(f"{key:<48} {value:>14,.3f}")


if __name__ == "__main__":
    main()
