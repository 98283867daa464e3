"""License documents: valid round trips, every bad field reported with its path, strictness, masking."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import canonical
from core.codes import TYPE_CODE_OF, LicenseId, LicenseKind, citizen_id_check_char, make_uscc
from core.divisions import PROVINCES
from core.errors import DocumentError
from core.licenses import (
    PERSONAL_FIELDS,
    InstitutionLicense,
    License,
    NurseLicense,
    PhysicianLicense,
    canonical_bytes,
    mask_id,
    mask_name,
    parse_document,
    parse_signed_document,
)
from core.synth import generate

KINDS = [k.value for k in LicenseKind]


def sample(kind: str, index: int = 0, province: str = "440000") -> dict[str, Any]:
    return list(generate(kind, index + 1, province, 11))[index]


def physician_with_filing() -> dict[str, Any]:
    for doc in generate("physician", 400, "440000", 11):
        if doc["practice"]["filed_institutions"]:
            return doc
    raise AssertionError("no physician with a filed institution")


def errors_of(doc: Any) -> dict[str, str]:
    with pytest.raises(DocumentError) as info:
        parse_document(doc)
    return info.value.errors


def set_path(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, leaf = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    node[leaf] = value
    return doc


# --- valid documents ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_valid_document_round_trips(kind: str) -> None:
    doc = sample(kind)
    license = parse_document(doc)
    assert license.kind == kind
    assert license.to_canonical_dict() == doc
    data = canonical_bytes(license)
    assert data == canonical.encode(doc)
    assert canonical.decode_canonical(data) == doc
    assert parse_document(data) == license
    assert hash(parse_document(data)) == hash(license)


def test_model_types_per_kind() -> None:
    assert isinstance(parse_document(sample("physician")), PhysicianLicense)
    assert isinstance(parse_document(sample("nurse")), NurseLicense)
    assert isinstance(parse_document(sample("institution")), InstitutionLicense)


def test_physician_with_filed_institution_round_trips() -> None:
    doc = physician_with_filing()
    license = parse_document(doc)
    assert isinstance(license, PhysicianLicense)
    assert license.practice.filed_institutions[0].uscc == doc["practice"]["filed_institutions"][0]["uscc"]
    assert parse_document(canonical_bytes(license)) == license


def test_models_are_frozen() -> None:
    license = parse_document(sample("nurse"))
    with pytest.raises(ValueError):
        license.version = 2


def test_non_canonical_but_strict_json_bytes_parse() -> None:
    doc = sample("nurse")
    pretty = json.dumps(doc, ensure_ascii=True, indent=2).encode()
    assert parse_document(pretty) == parse_document(doc)


# --- every bad field, with its path -------------------------------------------------------------


def test_all_bad_fields_are_collected_with_paths() -> None:
    doc = physician_with_filing()
    doc = set_path(doc, "holder.citizen_id", doc["holder"]["citizen_id"][:17] + "Y")
    doc = set_path(doc, "holder.name", "")
    doc = set_path(doc, "version", "1")
    doc = set_path(doc, "issued_on", "2020-02-30")
    doc["practice"]["filed_institutions"][0]["uscc"] = "91440300MA5DXXXXX0"
    doc["practice"]["scope"] = ["内科专业", 7]
    doc["surprise"] = True
    del doc["issuer"]["authority"]
    errors = errors_of(doc)
    assert set(errors) == {
        "holder.citizen_id",
        "holder.name",
        "version",
        "issued_on",
        "practice.filed_institutions[0].uscc",
        "practice.scope[1]",
        "surprise",
        "issuer.authority",
    }
    assert errors["issuer.authority"] == "is required"
    assert errors["surprise"] == "is not a field of this document"
    assert errors["version"] == "must be an integer"


def test_error_message_names_paths() -> None:
    doc = sample("nurse")
    cid = doc["holder"]["citizen_id"]
    wrong = cid[:-1] + ("0" if cid[-1] != "0" else "1")
    with pytest.raises(DocumentError, match=r"holder\.citizen_id: .*MOD 11-2"):
        parse_document(set_path(doc, "holder.citizen_id", wrong))


def test_cross_field_errors_are_all_reported() -> None:
    doc = physician_with_filing()
    primary = doc["practice"]["primary_institution"]
    doc["holder"]["sex"] = "female" if doc["holder"]["sex"] == "male" else "male"
    doc["version"] = doc["version"] + 1
    doc["practice"]["filed_institutions"][0]["uscc"] = primary["uscc"]
    doc["practice"]["scope"] = ["口腔专业"] if doc["practice"]["category"] != "dental" else ["内科专业"]
    errors = errors_of(doc)
    assert set(errors) == {
        "holder.sex",
        "version",
        "practice.filed_institutions[0].uscc",
        "practice.scope[0]",
    }


@pytest.mark.parametrize(
    ("kind", "path", "value", "bad"),
    [
        ("physician", "issued_at", "2024-05-01T08:00:00+08:00", "issued_at"),
        ("physician", "issued_at", "2024-05-01T08:00:00.000Z", "issued_at"),
        ("physician", "issued_on", "2024-5-1", "issued_on"),
        ("physician", "issued_on", 20240501, "issued_on"),
        ("physician", "format", 2, "format"),
        ("physician", "format", True, "format"),
        ("physician", "version", 1.0, "version"),
        ("physician", "version", True, "version"),
        ("physician", "holder.sex", "M", "holder.sex"),
        ("physician", "holder.name", " 张伟", "holder.name"),
        ("physician", "holder.name", "张\u0000伟", "holder.name"),
        ("physician", "practice.category", "surgery", "practice.category"),
        ("physician", "practice.scope", [], "practice.scope"),
        (
            "physician",
            "practice.qualification_certificate_no",
            "abc",
            "practice.qualification_certificate_no",
        ),
        ("physician", "practice.filed_institutions", {}, "practice.filed_institutions"),
        ("physician", "issuer.province", "440100", "issuer.province"),
        ("physician", "issuer.province", 440000, "issuer.province"),
        ("nurse", "valid_to", "2000-01-01", "valid_to"),
        ("nurse", "practice.institution.uscc", "12440100455432109", "practice.institution.uscc"),
        ("nurse", "holder", "someone", "holder"),
        ("institution", "holder.division", "310101", "holder.division"),
        ("institution", "holder.division", "999999", "holder.division"),
        ("institution", "practice.category", "医院", "practice.category"),
        ("institution", "practice.departments", [], "practice.departments"),
        (
            "institution",
            "practice.departments",
            [{"code": "99", "name": "x"}],
            "practice.departments[0].code",
        ),
        (
            "institution",
            "practice.departments",
            [{"code": "03", "name": "外科"}],
            "practice.departments[0].name",
        ),
        (
            "institution",
            "practice.departments",
            [{"code": "03", "name": "内科"}, {"code": "03", "name": "内科"}],
            "practice.departments[1].code",
        ),
    ],
)
def test_invalid_field_is_reported_at_its_path(kind: str, path: str, value: Any, bad: str) -> None:
    errors = errors_of(set_path(sample(kind), path, value))
    assert bad in errors, errors


def test_license_id_must_match_kind_issuer_and_version() -> None:
    doc = sample("physician")
    license_id = LicenseId.parse(doc["license_id"])
    as_nurse = LicenseId.build(TYPE_CODE_OF[LicenseKind.NURSE], license_id.issuer_uscc, license_id.serial)
    assert "license_id" in errors_of(set_path(doc, "license_id", str(as_nurse)))
    other_issuer = make_uscc("1", "1", "440000", "000000001")
    foreign = LicenseId.build(license_id.type_code, other_issuer, license_id.serial, license_id.version)
    assert errors_of(set_path(doc, "license_id", str(foreign))) == {
        "license_id": "issuer code differs from issuer.authority_uscc"
    }
    assert "version" in errors_of(set_path(doc, "version", license_id.version + 1))


def test_issuer_uscc_must_be_registered_in_the_issuer_province() -> None:
    doc = sample("nurse")
    shanghai = make_uscc("1", "1", "310000", "000000002")
    doc = set_path(doc, "issuer.authority_uscc", shanghai)
    license_id = LicenseId.parse(doc["license_id"])
    doc["license_id"] = str(LicenseId.build(license_id.type_code, shanghai, license_id.serial, license_id.version))
    assert set(errors_of(doc)) == {"issuer.authority_uscc"}


def test_holder_must_be_an_adult() -> None:
    doc = sample("physician")
    cid = doc["holder"]["citizen_id"]
    born_late = cid[:6] + doc["issued_on"][:4] + "0101" + cid[14:17]
    doc = set_path(doc, "holder.citizen_id", born_late + citizen_id_check_char(born_late))
    assert "issued_on" in errors_of(doc)


@pytest.mark.parametrize(
    "data",
    [b"{", b"[]", b'{"kind":"nurse","kind":"nurse"}', b'{"version":1.5,"kind":"nurse"}', b"\xff", b"null"],
)
def test_undecodable_documents_are_document_errors(data: bytes) -> None:
    assert "$" in errors_of(data)


@pytest.mark.parametrize("kind", [None, "doctor", 1, ""])
def test_unknown_kind(kind: Any) -> None:
    doc = sample("nurse")
    doc["kind"] = kind
    assert set(errors_of(doc)) == {"kind"}


# --- personal data ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_personal_fields_exist_and_are_masked(kind: str) -> None:
    doc = sample(kind)
    license = parse_document(doc)
    masked = license.masked()
    fields = PERSONAL_FIELDS[LicenseKind(kind)]
    assert fields
    for path in fields:
        node_in, node_out = doc, masked
        for key in path.split("."):
            node_in, node_out = node_in[key], node_out[key]
        assert node_in != node_out, path
    assert license.to_canonical_dict() == doc  # masking made a copy
    rest = {k: v for k, v in masked.items() if k != "holder"}
    assert rest == {k: v for k, v in doc.items() if k != "holder"} or kind == "physician"


def test_masks() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("李") == "*"
    assert mask_id("11010519491231002X") == "1101**********002X"
    masked = parse_document(sample("physician")).masked()
    assert masked["holder"]["citizen_id"][4:14] == "*" * 10


def test_personal_fields_per_kind() -> None:
    assert PERSONAL_FIELDS[LicenseKind.PHYSICIAN] >= {"holder.name", "holder.citizen_id"}
    assert PERSONAL_FIELDS[LicenseKind.NURSE] == {"holder.name", "holder.sex", "holder.citizen_id"}
    assert PERSONAL_FIELDS[LicenseKind.INSTITUTION] == {"holder.legal_representative", "holder.principal"}


# --- property-based round trips -----------------------------------------------------------------


@settings(max_examples=60)
@given(
    st.sampled_from(KINDS),
    st.sampled_from(sorted(PROVINCES)),
    st.integers(0, 2**40),
    st.integers(0, 5),
)
def test_generated_documents_round_trip(kind: str, province: str, seed: int, index: int) -> None:
    doc = list(generate(kind, index + 1, province, seed))[index]
    license = parse_document(doc)
    assert parse_document(canonical_bytes(license)) == license
    assert license.to_canonical_dict() == doc
    _assert_bytes_are_the_dumps(license, doc)


def _assert_bytes_are_the_dumps(license: License, doc: dict[str, Any]) -> None:
    """Rule 4: the bytes parse_document keeps (encoded from the input) are those of the model's own dump."""
    assert canonical_bytes(license) == canonical.encode(doc)
    assert canonical_bytes(license) == canonical.encode(license.model_dump(mode="json"))
    from_bytes = parse_document(canonical.encode(doc))
    assert canonical_bytes(from_bytes) == canonical_bytes(license)
    assert canonical_bytes(from_bytes.model_copy()) == canonical_bytes(license)  # the copy dumps afresh


_NAME = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=64,
)


@settings(max_examples=60)
@given(_NAME, _NAME, st.sampled_from(KINDS))
def test_arbitrary_names_round_trip(holder_name: str, institution_name: str, kind: str) -> None:
    doc = sample(kind)
    doc["holder"]["name"] = holder_name
    if kind == "nurse":
        doc["practice"]["institution"]["name"] = institution_name
    elif kind == "physician":
        doc["practice"]["primary_institution"]["name"] = institution_name
    else:
        doc["holder"]["principal"] = institution_name
    license = parse_document(doc)
    assert parse_document(canonical_bytes(license)) == license
    assert license.to_canonical_dict() == doc
    _assert_bytes_are_the_dumps(license, doc)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2024-02-29T23:59:59Z", True),
        ("0001-01-01T00:00:00Z", True),
        ("2023-02-29T00:00:00Z", False),
        ("2024-13-01T00:00:00Z", False),
        ("2024-00-01T00:00:00Z", False),
        ("2024-01-32T00:00:00Z", False),
        ("2024-01-01T24:00:00Z", False),
        ("2024-01-01T23:60:00Z", False),
        ("2024-01-01T23:59:60Z", False),
        ("0000-01-01T00:00:00Z", False),
    ],
)
def test_issued_at_is_a_real_instant(value: str, ok: bool) -> None:
    doc = sample("nurse")
    doc["issued_at"] = value
    if ok:
        issued_at = parse_document(doc).issued_at
        assert issued_at == datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        # Serialised as it was written: RFC 3339's four-digit year also before 1000 (glibc's strftime drops the
        # zeros, and "1-01-01T00:00:00Z" would not parse again).
        license = parse_document(doc)
        assert license.to_canonical_dict()["issued_at"] == value
        assert canonical.encode(license.model_dump(mode="json")) == canonical_bytes(license)
        assert parse_document(canonical_bytes(license)) == license
    else:
        assert errors_of(doc) == {"issued_at": "is not a valid instant"}


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("张\u3000伟", True),  # ideographic space (Zs): not printable, but allowed
        ("Zoë Ñúñez", True),
        ("张\u200b伟", False),  # zero-width space (Cf)
        ("张\u0085伟", False),  # NEXT LINE (Cc)
        ("张\ue000伟", False),  # private use (Co)
        ("张\U000e0001伟", False),  # language tag (Cf), outside the BMP
        ("张\u0378伟", False),  # unassigned (Cn)
    ],
)
def test_text_fields_refuse_control_format_and_unassigned_characters(name: str, ok: bool) -> None:
    doc = sample("nurse")
    doc["holder"]["name"] = name
    if ok:
        assert parse_document(doc).holder.name == name
    else:
        assert errors_of(doc) == {"holder.name": "must not contain control, format or unassigned characters"}


def test_canonical_bytes_are_computed_once_and_not_carried_into_changed_copies() -> None:
    license = parse_document(sample("physician"))
    first = canonical_bytes(license)
    assert canonical_bytes(license) is first
    assert first == canonical.encode(license.to_canonical_dict())
    other = license.model_copy(update={"version": 2})
    assert canonical_bytes(other) == canonical.encode(other.to_canonical_dict()) != first
    assert parse_document(first) == license


@pytest.mark.parametrize("kind", ["institution", "physician", "nurse"])
def test_a_signed_document_keeps_the_bytes_it_arrived_as(kind: str) -> None:
    raw = sample(kind, 3)
    signed = parse_signed_document(raw)
    assert canonical_bytes(signed) == canonical.encode(raw) == canonical_bytes(parse_document(raw))
    assert signed == parse_document(raw)
    with pytest.raises(DocumentError):
        parse_signed_document({**raw, "version": "one"})
