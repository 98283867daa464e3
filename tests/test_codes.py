"""Identifiers and check characters: GB 11643-1999, GB 32100-2015, GB/T 36904-2018, GB/T 2260."""

from __future__ import annotations

import itertools
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.codes import (
    INTERNAL_TYPE_DEFINER,
    LICENSE_TYPES,
    TYPE_CODE_OF,
    LicenseId,
    LicenseKind,
    citizen_id_birth_date,
    citizen_id_check_char,
    citizen_id_sex,
    iso7064_mod11_2,
    iso7064_mod37_36,
    make_uscc,
    uscc_check_char,
    uscc_parts,
    validate_citizen_id,
    validate_uscc,
)
from core.divisions import CITIES, OTHER_DIVISIONS, PROVINCES, XPCC, name_of, province, province_of
from core.errors import DocumentError, FormatError

# The worked example of GB 11643-1999 (appendix A).
GB11643_EXAMPLE = "11010519491231002X"
# Unified social credit codes of public authorities, as printed in public e-license identifiers.
REAL_USCCS = (
    "11100000000013338W",
    "11100000000013661B",
    "11100000MB03271699",
    "11220000013544541J",
    "11330105002500287C",
    "113700000045030270",
    "113700000045046442",
    "11370800MB28559184",
    "11430000006122244L",
)
# E-license identifiers published as examples in public government-service integration code. Their check
# characters were produced by the national platform's tooling, so they pin down the MOD 37,36 choice.
REAL_LICENSE_IDS = (
    "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F",
    "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U",
    "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.002.S",
    "1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.0",
    "1.2.156.3005.2.11100000000013338W087.11370800MB28559184.37080001202411010001.001.3",
)
MUTATION_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase + ".-* 中"


def single_char_mutations(text: str) -> list[str]:
    return [text[:i] + ch + text[i + 1 :] for i in range(len(text)) for ch in MUTATION_ALPHABET if ch != text[i]]


# --- ISO 7064 -----------------------------------------------------------------------------------


def test_mod11_2_gb11643_example() -> None:
    assert iso7064_mod11_2("11010519491231002") == "X"
    assert citizen_id_check_char("11010519491231002") == "X"


def test_mod37_36_matches_published_identifiers() -> None:
    for text in REAL_LICENSE_IDS:
        parts = text.split(".")
        assert iso7064_mod37_36("".join(parts[5:9])) == parts[9]


@given(st.text(alphabet=string.digits + string.ascii_uppercase, min_size=1, max_size=60), st.data())
def test_mod37_36_detects_every_single_substitution(text: str, data: st.DataObject) -> None:
    check = iso7064_mod37_36(text)
    i = data.draw(st.integers(0, len(text) - 1))
    other = data.draw(st.sampled_from([c for c in string.digits + string.ascii_uppercase if c != text[i]]))
    assert iso7064_mod37_36(text[:i] + other + text[i + 1 :]) != check


def test_mod37_36_detects_nearly_all_adjacent_transpositions() -> None:
    # A hybrid ISO/IEC 7064 system (MOD 37,36) detects every single substitution but not every adjacent
    # transposition: a few pairs map to the same check character. Count them exhaustively in three contexts.
    alphabet = string.digits + string.ascii_uppercase
    missed = total = 0
    for prefix in ("", "A1", "12100000000013"):
        for a, b in itertools.permutations(alphabet, 2):
            total += 1
            missed += iso7064_mod37_36(prefix + a + b + "7Q") == iso7064_mod37_36(prefix + b + a + "7Q")
    assert missed / total < 0.005, (missed, total)


def test_mod37_36_refuses_characters_outside_its_alphabet() -> None:
    with pytest.raises(DocumentError):
        iso7064_mod37_36("ABc")


# --- GB 11643-1999 citizen identity number ------------------------------------------------------


def test_citizen_id_known_valid() -> None:
    assert validate_citizen_id(GB11643_EXAMPLE) == GB11643_EXAMPLE
    assert citizen_id_birth_date(GB11643_EXAMPLE).isoformat() == "1949-12-31"
    assert citizen_id_sex(GB11643_EXAMPLE) == "female"  # sequence 002 is even


def test_every_single_character_mutation_of_a_citizen_id_is_rejected() -> None:
    for mutated in single_char_mutations(GB11643_EXAMPLE):
        with pytest.raises(DocumentError):
            validate_citizen_id(mutated)


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("11010519491231002x", "17 digits"),  # lower-case x is not the canonical form
        ("1101051949123100", "17 digits"),
        ("11010519491231002X0", "17 digits"),
        ("990105194912310020", "provincial prefix"),
        ("110105194902300020", "calendar date"),
        ("110105189912310020", "before 1900"),
    ],
)
def test_citizen_id_rejections_say_why(number: str, reason: str) -> None:
    first17 = number[:17]
    if reason != "17 digits":  # make the check character right so that the named check is what fails
        number = first17 + iso7064_mod11_2(first17)
    with pytest.raises(DocumentError, match=reason):
        validate_citizen_id(number)


def test_citizen_id_rejection_messages_do_not_echo_the_number() -> None:
    with pytest.raises(DocumentError) as info:
        validate_citizen_id("110105194902300021")
    assert "1949" not in str(info.value)


def test_citizen_id_type_misuse() -> None:
    with pytest.raises(TypeError):
        validate_citizen_id(110105194912310020)  # type: ignore[arg-type]


# --- GB 32100-2015 unified social credit code ---------------------------------------------------


@pytest.mark.parametrize("code", REAL_USCCS)
def test_real_usccs_validate(code: str) -> None:
    assert validate_uscc(code) == code
    assert uscc_check_char(code[:17]) == code[17]


@pytest.mark.parametrize("code", REAL_USCCS[:3])
def test_every_single_character_mutation_of_a_uscc_is_rejected(code: str) -> None:
    for mutated in single_char_mutations(code):
        with pytest.raises(DocumentError):
            validate_uscc(mutated)


def test_uscc_check_31_is_written_0() -> None:
    # A body whose weighted sum is divisible by 31 has check value 31, written "0".
    assert uscc_check_char("0" * 17) == "0"


def test_uscc_refuses_letters_outside_the_gb32100_set() -> None:
    for letter in "IOSVZ":
        body = "91440300" + letter + "12345678"
        with pytest.raises(DocumentError):
            validate_uscc(body + "0")


def test_uscc_parts() -> None:
    parts = uscc_parts("11330105002500287C")
    assert (parts.registration_authority, parts.organisation_type) == ("1", "1")
    assert (parts.authority_name, parts.type_name) == ("机构编制", "机关")
    assert parts.division == "330105"
    assert parts.organisation_code == "002500287"
    unknown = uscc_parts(make_uscc("2", "1", "110000", "123456789"))
    assert unknown.authority_name is None and unknown.type_name is None


def test_make_uscc_round_trip() -> None:
    code = make_uscc("5", "2", "440106", "MA59XK3L7")
    assert validate_uscc(code) == code
    assert uscc_parts(code).type_name == "民办非企业单位"


# --- GB/T 36904-2018 license identifier ---------------------------------------------------------


@pytest.mark.parametrize("text", REAL_LICENSE_IDS)
def test_published_license_ids_parse_and_print_unchanged(text: str) -> None:
    license_id = LicenseId.parse(text)
    assert str(license_id) == text
    assert license_id.kind is None  # national housing/construction types, not modelled here


def test_every_single_character_mutation_of_a_license_id_is_rejected() -> None:
    text = REAL_LICENSE_IDS[0]
    ours = str(LicenseId.build(TYPE_CODE_OF[LicenseKind.PHYSICIAN], REAL_USCCS[4], "20244400000001", 2))
    for original in (text, ours):
        for mutated in single_char_mutations(original):
            with pytest.raises(DocumentError):
                LicenseId.parse(mutated)


def test_license_id_parts_base_and_versions() -> None:
    license_id = LicenseId.build(TYPE_CODE_OF[LicenseKind.NURSE], REAL_USCCS[3], "2024220000001")
    assert license_id.version == 1
    assert license_id.kind is LicenseKind.NURSE
    assert license_id.base == f"1.2.156.3005.2.{TYPE_CODE_OF[LicenseKind.NURSE]}.{REAL_USCCS[3]}.2024220000001"
    second = license_id.next_version()
    assert second.version == 2 and second.base == license_id.base and second != license_id
    assert str(second).endswith(".002." + second.check)
    assert LicenseId.parse(str(second)) == second
    assert second.with_version(1) == license_id
    with pytest.raises(ValueError, match="last version"):
        license_id.with_version(999).next_version()


@pytest.mark.parametrize(
    "text",
    [
        "1.2.156.3005.1.11100000000013338W032.11220000013544541J.2430599.001.F",  # wrong OID
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.000.F",  # version 000
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.01.F",  # two-digit version
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001",  # no check
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.24305-99.001.F",  # bad serial
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J..001.F",  # empty serial
        "1.2.156.3005.2.11100000000013338W032.11220000013544541K.2430599.001.F",  # issuer check wrong
        "1.2.156.3005.2.11100000000013338W32.11220000013544541J.2430599.001.F",  # short type code
        "",
    ],
)
def test_malformed_license_ids_are_refused(text: str) -> None:
    with pytest.raises(FormatError):
        LicenseId.parse(text)


def test_license_id_constructor_requires_a_correct_check() -> None:
    good = LicenseId.parse(REAL_LICENSE_IDS[0])
    with pytest.raises(DocumentError, match="check character"):
        LicenseId(good.type_code, good.issuer_uscc, good.serial, good.version, "G")
    with pytest.raises(TypeError):
        LicenseId(good.type_code, good.issuer_uscc, good.serial, True, good.check)


@given(
    st.sampled_from([t.type_code for t in LICENSE_TYPES]),
    st.sampled_from(REAL_USCCS),
    st.text(alphabet=string.digits + string.ascii_uppercase, min_size=1, max_size=64),
    st.integers(1, 999),
)
def test_license_id_build_parse_round_trip(type_code: str, issuer: str, serial: str, version: int) -> None:
    license_id = LicenseId.build(type_code, issuer, serial, version)
    assert LicenseId.parse(str(license_id)) == license_id


def test_type_codes() -> None:
    assert validate_uscc(INTERNAL_TYPE_DEFINER) == INTERNAL_TYPE_DEFINER
    codes = [t.type_code for t in LICENSE_TYPES]
    assert len(set(codes)) == len(codes) == 5
    assert all(len(code) == 21 for code in codes)
    assert {t.kind for t in LICENSE_TYPES if t.kind} == set(LicenseKind)
    assert {t.name_zh for t in LICENSE_TYPES if t.kind is None} == {"医师资格证书", "出生医学证明"}


# --- GB/T 2260 divisions ------------------------------------------------------------------------


def test_provinces_are_the_31_provincial_divisions_and_the_xpcc() -> None:
    assert len(PROVINCES) == 32
    assert XPCC in PROVINCES
    assert PROVINCES["440000"].name_zh == "广东省" and PROVINCES["440000"].name_en == "Guangdong"
    assert all(code.endswith("0000") for code in PROVINCES)
    assert set(CITIES) == set(PROVINCES)


def test_province_of() -> None:
    assert province_of("440106") == "440000"
    assert province_of("110000") == "110000"
    assert province_of("659001") == "650000"  # XPCC cities are Xinjiang divisions in GB/T 2260
    assert province_of(XPCC) == XPCC
    assert province_of("810000") == "810000"
    for bad in ("660100", "990000", "44010", "44010a", "4401060"):
        with pytest.raises(ValueError):
            province_of(bad)
    with pytest.raises(ValueError, match="unknown province"):
        province("810000")  # listed in GB/T 2260 but runs no node
    assert "810000" in OTHER_DIVISIONS


def test_city_table_is_consistent() -> None:
    seen: set[str] = set()
    for province_code, cities in CITIES.items():
        assert cities, province_code
        for city in cities:
            expected_prefix = "65" if province_code == XPCC else province_code[:2]
            assert city.code[:2] == expected_prefix and city.code.endswith("00")
            assert city.districts
            for district in city.districts:
                assert district.code[:4] == city.code[:4]
                assert district.code not in seen
                seen.add(district.code)
                assert name_of(district.code) == district.name_zh
    assert name_of("440100") == "广州市"
    assert name_of("440300") == "深圳市"
    assert name_of("000000") is None
