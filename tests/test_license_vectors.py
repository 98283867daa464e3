"""Golden vectors for the license formats: tests/vectors/licenses/, made by generate_licenses.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core import errors, seal
from core.commitment import commitment, leaf_data, license_leaf_hash
from core.errors import DocumentError
from core.hashing import sm3
from core.licenses import canonical_bytes, parse_document
from core.seal import Seal, verify_seal
from core.sm2 import PublicKey

VECTORS = Path(__file__).parent / "vectors"
CASES = sorted((VECTORS / "licenses").glob("*.json"))
ERRORS = {
    "SignatureError": errors.SignatureError,
    "SignatureFormatError": errors.SignatureFormatError,
    "SealMismatchError": seal.SealMismatchError,
}


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def test_there_are_vectors_of_every_type() -> None:
    types = [load(p)["type"] for p in CASES]
    assert types.count("document") >= 20
    assert types.count("sealed") >= 10


@pytest.mark.parametrize("path", [p for p in CASES if load(p)["type"] == "document"], ids=lambda p: p.stem)
def test_document_vector(path: Path) -> None:
    case = load(path)
    expected = case["expected"]
    source = case["document_json"].encode() if "document_json" in case else case["document"]
    if expected["result"] == "ok":
        license = parse_document(source)
        data = canonical_bytes(license)
        assert sm3(data).hex() == expected["canonical_sm3"]
        salt = bytes.fromhex(expected["salt"])
        value = commitment(data, salt)
        assert value.hex() == expected["commitment"]
        assert leaf_data(license.license_id, license.version, value).decode() == expected["leaf_data"]
        assert license_leaf_hash(license.license_id, license.version, value).hex() == expected["leaf_hash"]
    else:
        assert expected["result"] == "DocumentError"
        with pytest.raises(DocumentError) as info:
            parse_document(source)
        assert set(info.value.errors) == set(expected["fields"])


@pytest.mark.parametrize("path", [p for p in CASES if load(p)["type"] == "sealed"], ids=lambda p: p.stem)
def test_sealed_vector(path: Path) -> None:
    case = load(path)
    license = parse_document(case["document"])
    the_seal = Seal.from_dict(case["seal"])
    key = PublicKey.from_pem(case["public_key_pem"])
    result = case["expected"]["result"]
    if result == "ok":
        verify_seal(license, the_seal, key)
        verify_seal(canonical_bytes(license), the_seal, key)
    else:
        with pytest.raises(ERRORS[result]):
            verify_seal(license, the_seal, key)


def test_generator_reproduces_the_committed_vectors(tmp_path: Path) -> None:
    out = tmp_path / "licenses"
    shutil.copytree(VECTORS / "licenses", out)
    subprocess.run(
        [sys.executable, str(VECTORS / "generate_licenses.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    produced = {p.name: p.read_bytes() for p in out.glob("*.json")}
    committed = {p.name: p.read_bytes() for p in CASES}
    assert produced == committed
