"""Run every core benchmark in one process and print their figures together.

Usage: ``python3 bench/bench_core.py``. Figures are measured in this run on this machine; ratios compare licledger's
code against the raw library calls measured moments apart in the same process, so machine noise largely cancels.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SUITES = ["bench_crypto", "bench_merkle", "bench_gen"]


def main() -> None:
    for name in SUITES:
        module = importlib.import_module(name)
        print(f"== {name}")
        results = module.run()
        for key, value in results.items():
            print(f"  {key:<48} {value:>14,.3f}")


if __name__ == "__main__":
    main()
