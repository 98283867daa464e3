"""Golden vectors for cosigned checkpoints (tests/vectors/checkpoint/<case>.json).

Every file must verify with exactly the members it lists, or fail with exactly the error class it names; the
committed files must be exactly what tests/vectors/generate_checkpoint.py writes; and the example in
docs/checkpoint.md must be the ``valid-all-members`` note.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from core.checkpoint import QuorumError, parse_checkpoint, verify_cosignatures
from core.errors import FormatError
from core.sm2 import PublicKey

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "vectors" / "checkpoint"
FILES = sorted(VECTORS.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def _run(case: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    members = {name: [PublicKey.from_der(base64.b64decode(k)) for k in keys] for name, keys in case["members"].items()}
    try:
        checkpoint, cosigs = parse_checkpoint(case["note"].encode("utf-8"))
        verified = verify_cosignatures(checkpoint, cosigs, members, case["quorum"])
    except FormatError:
        return "FormatError", [], []
    except QuorumError as exc:
        return "QuorumError", exc.verified_names, [[f.name, f.key_hint.hex()] for f in exc.failures]
    return "ok", verified, []


def test_vector_set_covers_every_outcome() -> None:
    assert len(FILES) >= 40
    assert {_load(f)["expected"] for f in FILES} == {"ok", "QuorumError", "FormatError"}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vector(path: Path) -> None:
    case = _load(path)
    outcome, verified, failures = _run(case)
    assert outcome == case["expected"], case["description"]
    if outcome == "QuorumError":
        assert verified == case["verified"] and failures == case["failures"], case["description"]
    if outcome == "ok":
        assert verified == case["verified"], case["description"]


def test_generator_reproduces_committed_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate_checkpoint", VECTORS.parent / "generate_checkpoint.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(tmp_path)
    fresh = sorted(p.name for p in tmp_path.glob("*.json"))
    assert fresh == [p.name for p in FILES]
    differing = [name for name in fresh if (tmp_path / name).read_bytes() != (VECTORS / name).read_bytes()]
    assert not differing, differing


def test_docs_example_is_the_valid_vector() -> None:
    docs = (ROOT / "docs" / "checkpoint.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- example-note -->\n```text\n(.*?)```", docs, re.DOTALL)
    assert match, "docs/checkpoint.md lost its example block"
    assert match.group(1) == _load(VECTORS / "valid-all-members.json")["note"]
