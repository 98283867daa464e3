"""Generate the license-document golden vectors: ``tests/vectors/licenses/<case>.json``, one case per file.

Usage:

    python3 tests/vectors/generate_licenses.py [--out DIR]

Cases (``"type"`` in each file):

* ``document``: a document (``document``, or ``document_json`` text for input that is not a JSON
  object) and ``expected``: ``{"result": "ok", "canonical_sm3", "salt", "commitment", "leaf_data",
  "leaf_hash"}`` for a valid one, or ``{"result": "DocumentError", "fields": {path: message}}`` naming
  every bad field. Tests compare the field paths exactly; messages are for people.
* ``sealed``: a valid document, a ``seal`` object, the verifying ``public_key_pem`` and
  ``expected.result``: ``"ok"`` or the error class :func:`core.seal.verify_seal` must raise
  (``SignatureError``, ``SignatureFormatError``, ``SealMismatchError``). Mutations: a bit flip in the
  signature's r and in its s, a truncated signature, an altered document field, an altered signing time,
  another signer ID, another key, another key with the seal re-labelled to it, and an altered issuer.

Everything is fixed: documents come from :func:`core.synth.generate` with fixed seeds, the salt is a
constant, and the keys are ``PrivateKey.from_bytes`` of fixed scalars (key 1 is the recommended-curve
example private key of GB/T 32918.5 / GM/T 0003.5). SM2 signatures carry a random nonce, so a fresh
signature differs on each run; the generator therefore reuses the signature already committed for a case
while it still verifies, which makes re-running it reproduce the committed files byte for byte
(``tests/test_license_vectors.py`` checks).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.codes import TYPE_CODE_OF, LicenseId, LicenseKind, citizen_id_check_char
from core.commitment import commitment, leaf_data, license_leaf_hash
from core.errors import DocumentError
from core.hashing import sm3
from core.licenses import License, canonical_bytes, parse_document
from core.seal import Seal, seal_document, verify_seal
from core.sm2 import PrivateKey
from core.synth import generate

OUT = Path(__file__).resolve().parent / "licenses"
KEY1 = PrivateKey.from_bytes(
    bytes.fromhex("3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8")
)
KEY2 = PrivateKey.from_bytes(sm3(b"licledger vector key 2"))
SALT = sm3(b"licledger vector salt")
SIGNING_TIME = 1_714_550_400_000  # 2024-05-01T08:00:00Z


def _pick(kind: str, want: Any = None, province: str = "440000", seed: int = 20240501) -> dict[str, Any]:
    for doc in generate(kind, 500, province, seed):
        if want is None or want(doc):
            return doc
    raise AssertionError(f"no {kind} document matches")


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[leaf] = value
    return doc


def _drop(doc: dict[str, Any], key: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    del doc[key]
    return doc


def _other_check_digit(number: str) -> str:
    return number[:-1] + ("0" if number[-1] != "0" else "1")


def document_cases() -> dict[str, tuple[str, Any]]:
    physician = _pick("physician", lambda d: bool(d["practice"]["filed_institutions"]))
    tcm = _pick("physician", lambda d: d["practice"]["category"] == "tcm")
    changed = _pick("physician", lambda d: d["version"] > 1)
    nurse = _pick("nurse")
    institution = _pick("institution", lambda d: len(d["practice"]["departments"]) > 3)
    xpcc = _pick("physician", province="660000")
    lid = LicenseId.parse(physician["license_id"])
    as_nurse = str(LicenseId.build(TYPE_CODE_OF[LicenseKind.NURSE], lid.issuer_uscc, lid.serial, lid.version))
    many = _set(physician, "holder.name", "")
    many = _set(many, "holder.citizen_id", _other_check_digit(physician["holder"]["citizen_id"]))
    many = _set(many, "version", "1")
    many = _set(many, "practice.scope", ["内科专业", 7])
    many = _set(many, "practice.filed_institutions.0.filed_on", "2021-02-29")
    many["extension"] = {}
    return {
        "valid-physician": ("a physician with a filed additional institution (多机构备案)", physician),
        "valid-physician-tcm": ("a traditional Chinese medicine physician", tcm),
        "valid-physician-version-2": ("a physician license at a later version", changed),
        "valid-physician-xpcc": ("a physician licensed by the XPCC (660000)", xpcc),
        "valid-nurse": ("a nurse", nurse),
        "valid-institution": ("a medical institution", institution),
        "invalid-citizen-id-check-character": (
            "citizen ID with a wrong ISO 7064 MOD 11-2 check character",
            _set(nurse, "holder.citizen_id", _other_check_digit(nurse["holder"]["citizen_id"])),
        ),
        "invalid-citizen-id-birth-date": (
            "citizen ID whose birth date is 30 February (check character recomputed)",
            _set(
                nurse, "holder.citizen_id", "44010619900230002" + citizen_id_check_char("44010619900230002")
            ),
        ),
        "invalid-sex-mismatch": (
            "sex differs from the parity of the citizen ID's sequence code",
            _set(nurse, "holder.sex", "male" if nurse["holder"]["sex"] == "female" else "female"),
        ),
        "invalid-scope-not-in-category": (
            "a clinical physician with the dental scope",
            _set(
                _set(physician, "practice.category", "clinical"),
                "practice.scope",
                ["口腔专业"],
            ),
        ),
        "invalid-filed-is-primary": (
            "the filed institution is the primary institution",
            _set(
                physician,
                "practice.filed_institutions.0.uscc",
                physician["practice"]["primary_institution"]["uscc"],
            ),
        ),
        "invalid-many-fields": ("several bad fields at once: all are reported", many),
        "invalid-missing-field": ("issued_on is missing", _drop(physician, "issued_on")),
        "invalid-version-string": ('version "1" is not the integer 1', _set(physician, "version", "1")),
        "invalid-version-bool": ("version true is not an integer", _set(physician, "version", True)),
        "invalid-license-id-check-character": (
            "license identifier with a wrong MOD 37,36 check character",
            _set(physician, "license_id", physician["license_id"][:-1] + ("A" if lid.check != "A" else "B")),
        ),
        "invalid-license-id-type-code": (
            "a physician document with the nurse type code",
            _set(physician, "license_id", as_nurse),
        ),
        "invalid-version-mismatch": (
            "version differs from the identifier's version",
            _set(physician, "version", 2),
        ),
        "invalid-issued-at-offset": (
            "issued_at with a +08:00 offset instead of UTC Z",
            _set(physician, "issued_at", physician["issued_at"][:-1] + "+08:00"),
        ),
        "invalid-nurse-validity": ("valid_to before valid_from", _set(nurse, "valid_to", "2000-01-01")),
        "invalid-institution-uscc": (
            "institution USCC with a wrong GB 32100 check character",
            _set(institution, "holder.uscc", institution["holder"]["uscc"][:-1] + "0"),
        ),
        "invalid-institution-division": (
            "institution located outside the issuing province",
            _set(institution, "holder.division", "310101"),
        ),
        "invalid-institution-department-name": (
            "department name does not match its code",
            _set(institution, "practice.departments.0.name", "不存在科"),
        ),
        "invalid-institution-date": (
            "valid_from not written YYYY-MM-DD",
            _set(institution, "valid_from", "2021-1-1"),
        ),
        "invalid-unknown-kind": ("unknown kind", _set(nurse, "kind", "pharmacist")),
        "invalid-json-float": ("a float in the document bytes", '{"kind":"nurse","version":1.0}'),
        "invalid-json-duplicate-key": (
            "a duplicate key in the document bytes",
            '{"kind":"nurse","kind":"nurse"}',
        ),
        "invalid-json-array": ("a JSON array, not an object", "[]"),
    }


def document_case(name: str, description: str, doc: Any) -> dict[str, Any]:
    case: dict[str, Any] = {"description": description, "type": "document"}
    if isinstance(doc, str):
        case["document_json"] = doc
    else:
        case["document"] = doc
    try:
        license = parse_document(doc.encode() if isinstance(doc, str) else doc)
    except DocumentError as exc:
        if name.startswith("valid"):
            raise
        case["expected"] = {"result": "DocumentError", "fields": dict(sorted(exc.errors.items()))}
        return case
    if not name.startswith("valid"):
        raise AssertionError(f"{name} parsed")
    data = canonical_bytes(license)
    value = commitment(data, SALT)
    case["expected"] = {
        "result": "ok",
        "canonical_sm3": sm3(data).hex(),
        "salt": SALT.hex(),
        "commitment": value.hex(),
        "leaf_data": leaf_data(license.license_id, license.version, value).decode(),
        "leaf_hash": license_leaf_hash(license.license_id, license.version, value).hex(),
    }
    return case


def _reuse_or_seal(out: Path, name: str, license: License, key: PrivateKey, signer_id: bytes) -> Seal:
    fresh = seal_document(license, key, SIGNING_TIME, signer_id=signer_id)
    path = out / f"{name}.json"
    if path.exists():
        try:
            old = Seal.from_dict(json.loads(path.read_text(encoding="utf-8"))["seal"])
            candidate = dataclasses.replace(fresh, signature=old.signature)
            verify_seal(license, candidate, key.public_key)
            return candidate
        except Exception:  # any problem with the old file: use the fresh signature
            return fresh
    return fresh


def _flip(signature: bytes, index: int) -> bytes:
    flipped = bytearray(signature)
    flipped[index] ^= 0x01
    return bytes(flipped)


def sealed_cases(out: Path) -> dict[str, dict[str, Any]]:
    cases: dict[str, dict[str, Any]] = {}
    pem1 = KEY1.public_key.to_pem().decode()
    pem2 = KEY2.public_key.to_pem().decode()

    def add(name: str, description: str, doc: dict[str, Any], seal: Seal, pem: str, result: str) -> None:
        cases[name] = {
            "description": description,
            "type": "sealed",
            "document": doc,
            "seal": seal.to_dict(),
            "public_key_pem": pem,
            "expected": {"result": result},
        }

    seals: dict[str, Seal] = {}
    for kind in ("physician", "nurse", "institution"):
        doc = _pick(kind)
        seal = _reuse_or_seal(out, f"sealed-valid-{kind}", parse_document(doc), KEY1, b"1234567812345678")
        seals[kind] = seal
        add(f"sealed-valid-{kind}", f"a {kind} license sealed by its issuer", doc, seal, pem1, "ok")

    # The mutations start from the valid physician case.
    doc = _pick("physician")
    base = seals["physician"]
    sig = base.signature
    r_len = sig[3]
    add(
        "sealed-signature-bitflip-r",
        "one bit flipped in the signature's r",
        doc,
        dataclasses.replace(base, signature=_flip(sig, 4 + r_len // 2)),
        pem1,
        "SignatureError",
    )
    add(
        "sealed-signature-bitflip-s",
        "one bit flipped in the last byte of the signature's s",
        doc,
        dataclasses.replace(base, signature=_flip(sig, len(sig) - 1)),
        pem1,
        "SignatureError",
    )
    add(
        "sealed-signature-truncated",
        "signature truncated by one byte: not DER",
        doc,
        dataclasses.replace(base, signature=sig[:-1]),
        pem1,
        "SignatureFormatError",
    )
    add(
        "sealed-altered-field",
        "the holder's name changed after sealing",
        _set(doc, "holder.name", doc["holder"]["name"] + "某"),
        base,
        pem1,
        "SignatureError",
    )
    add(
        "sealed-altered-signing-time",
        "the seal's signing time changed after sealing",
        doc,
        dataclasses.replace(base, signing_time=base.signing_time + 1),
        pem1,
        "SignatureError",
    )
    add(
        "sealed-other-signer-id",
        "the seal names another SM2 signer ID than the one signed with",
        doc,
        dataclasses.replace(base, signer_id="licledger"),
        pem1,
        "SignatureError",
    )
    add(
        "sealed-wrong-key",
        "verified under another key than the seal names",
        doc,
        base,
        pem2,
        "SealMismatchError",
    )
    add(
        "sealed-wrong-key-relabelled",
        "seal re-labelled with the other key's key_id: the signature does not verify under it",
        doc,
        dataclasses.replace(base, key_id=KEY2.key_id),
        pem2,
        "SignatureError",
    )
    add(
        "sealed-issuer-mismatch",
        "the seal names another issuing authority than the document",
        doc,
        dataclasses.replace(base, issuer_authority="上海市卫生健康委员会"),
        pem1,
        "SealMismatchError",
    )
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    for name, (description, doc) in document_cases().items():
        files[name] = document_case(name, description, doc)
    files.update(sealed_cases(out))
    for old in out.glob("*.json"):
        if old.stem not in files:
            old.unlink()
    for name, case in files.items():
        text = json.dumps(case, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        (out / f"{name}.json").write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} cases to {out}")


if __name__ == "__main__":
    main()
