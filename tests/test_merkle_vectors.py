"""Golden vectors for RFC 9162 inclusion and consistency proofs (tests/vectors/merkle/<hash>/<case>.json).

Every file must verify, or fail with exactly the error class it names. The committed files must be exactly
what tests/vectors/generate_merkle.py writes, so a change to the generator or the library that alters any
vector shows up here as a diff.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from core import errors
from core.hashing import by_name
from core.merkle import verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parent / "vectors" / "merkle"
FILES = sorted(VECTORS.glob("*/*.json"))


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def _run(case: dict[str, Any]) -> str:
    h = by_name(case["hash"])
    proof = [bytes.fromhex(p) for p in case["proof"]]
    try:
        if case["kind"] == "inclusion":
            verify_inclusion(
                case["leaf_index"],
                case["tree_size"],
                bytes.fromhex(case["leaf_hash"]),
                proof,
                bytes.fromhex(case["root_hash"]),
                h,
            )
        else:
            verify_consistency(
                case["size1"],
                case["size2"],
                proof,
                bytes.fromhex(case["root1"]),
                bytes.fromhex(case["root2"]),
                h,
            )
    except errors.LicledgerError as exc:
        return type(exc).__name__
    return "ok"


def test_vector_set_is_substantial() -> None:
    by_hash = {h: [f for f in FILES if f.parent.name == h] for h in ("sm3", "sha256")}
    assert all(len(files) > 400 for files in by_hash.values()), {h: len(f) for h, f in by_hash.items()}
    expected = {_load(f)["expected"] for f in FILES}
    assert expected == {"ok", "RootMismatchError", "ProofFormatError"}


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_vector(path: Path) -> None:
    case = _load(path)
    assert case["hash"] == path.parent.name
    assert _run(case) == case["expected"], case["description"]


def test_generator_reproduces_committed_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate_merkle", VECTORS.parent / "generate_merkle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.glob("*/*.json"))
    committed = sorted(p.relative_to(VECTORS) for p in FILES)
    assert fresh == committed
    differing = [str(p) for p in fresh if (tmp_path / p).read_bytes() != (VECTORS / p).read_bytes()]
    assert not differing, differing[:10]
