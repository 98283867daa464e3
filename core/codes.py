"""Identifiers and their check characters: citizen IDs, unified social credit codes, e-license identifiers.

Every function here is pure and I/O-free. Malformed input raises :class:`core.errors.DocumentError` (a
:class:`~core.errors.FormatError`) whose message says what is wrong; the license model layer wraps these
into a ``DocumentError`` that maps field paths to messages. Caller misuse (wrong Python types) raises
``TypeError``.

Standards implemented:

* GB 11643-1999 《公民身份号码》: 18 characters = 6-digit address code (GB/T 2260) + 8-digit birth date
  ``YYYYMMDD`` + 3-digit sequence code (odd for men, even for women) + check character computed with
  ISO 7064:1983 MOD 11-2 (weights ``2^(17-i) mod 11``; ``X`` stands for 10).
* GB 32100-2015 《法人和其他组织统一社会信用代码编码规则》: 18 characters from the 31-character set
  ``0123456789ABCDEFGHJKLMNPQRTUWXY`` (no I, O, Z, S, V) = registration-authority code (1) +
  organisation-type code (1) + registration-authority division code (6, GB/T 2260) + organisation code
  (9, GB 11714 form) + check character; check = ``31 - (sum(value_i * weight_i) mod 31)``, 31 written
  as ``0``, with weights ``3^i mod 31`` = 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28.
* GB/T 36904-2018 《电子证照 标识规范》:
  ``1.2.156.3005.2.<证照类型代码>.<证照颁发机构代码>.<证照编号>.<版本号>.<校验位>``.
  The check character is ISO/IEC 7064:2003 MOD 37,36 (a hybrid system over ``0-9A-Z``) computed over the
  concatenation of type code, issuer code, serial and version without the dots and without the fixed
  ``1.2.156.3005.2`` prefix. See :class:`LicenseId` and docs/formats.md for why this scheme.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from core.divisions import is_division_code
from core.divisions import province_of as province_of  # re-exported: GB/T 2260 lives in core.divisions
from core.errors import DocumentError
from core.native import NATIVE

# --- ISO 7064 --------------------------------------------------------------------------------

ALNUM36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM36_VALUE = {ch: i for i, ch in enumerate(ALNUM36)}


def iso7064_mod11_2(digits: str) -> str:
    """ISO 7064 MOD 11-2 check character (``0``-``9`` or ``X``) of a string of decimal digits.

    Pure system, modulus 11, radix 2: the check character makes ``sum(a_i * 2^(n-i)) ≡ 1 (mod 11)``.
    """
    if NATIVE is not None and (check := NATIVE.mod11_2(digits)) is not None:
        return check
    total = 0
    for ch in digits:
        if not "0" <= ch <= "9":
            raise DocumentError(f"MOD 11-2 input must be decimal digits, found {ch!r}")
        total = (total + int(ch)) * 2 % 11
    value = (12 - total) % 11
    return "X" if value == 10 else str(value)


def _mod37_36_transitions() -> tuple[dict[str, int], ...]:
    table: list[dict[str, int]] = []
    for p in range(37):
        table.append({ch: ((p + a) % 36 or 36) * 2 % 37 for ch, a in _ALNUM36_VALUE.items()})
    return tuple(table)


_MOD37_36_NEXT = _mod37_36_transitions()
MOD37_36_START = 36


def mod37_36_state(text: str, state: int = MOD37_36_START) -> int:
    """Run the MOD 37,36 recurrence over ``text`` from ``state``; lets callers precompute a fixed prefix."""
    if NATIVE is not None and (native := NATIVE.mod37_36_state(text, state)) is not None:
        return native
    table = _MOD37_36_NEXT
    p = state
    try:
        for ch in text:
            p = table[p][ch]
    except KeyError:
        bad = next(ch for ch in text if ch not in _ALNUM36_VALUE)
        raise DocumentError(f"MOD 37,36 input must be 0-9 or A-Z, found {bad!r}") from None
    return p


def mod37_36_check(state: int) -> str:
    """The check character that closes a MOD 37,36 run ending in ``state``."""
    return ALNUM36[(37 - state) % 36]


def iso7064_mod37_36(text: str) -> str:
    """ISO/IEC 7064 MOD 37,36 check character (``0``-``9``, ``A``-``Z``) of a string over ``0-9A-Z``.

    Hybrid system with M = 36: ``P = M``; for each character ``S = (P + a) mod M`` (0 read as M),
    ``P = 2S mod (M+1)``; the check character ``c`` satisfies ``(P + c) mod M = 1``. It detects every
    single-character substitution and every adjacent transposition.
    """
    return mod37_36_check(mod37_36_state(text))


# --- GB 11643-1999 citizen identity number ------------------------------------------------------------------

_CITIZEN_ID = re.compile(r"[0-9]{17}[0-9X]")


def citizen_id_check_char(first17: str) -> str:
    """The GB 11643-1999 check character of the first 17 digits of a citizen identity number."""
    if not isinstance(first17, str):
        raise TypeError(f"first17 must be str, not {type(first17).__name__}")
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise DocumentError("the first 17 characters of a citizen ID number must be 17 digits")
    return iso7064_mod11_2(first17)


def citizen_id_birth_date(citizen_id: str) -> date:
    """The birth date encoded in positions 7-14 of a (syntactically valid) citizen ID number."""
    text = citizen_id[6:14]
    try:
        born = date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise DocumentError("citizen ID birth date (positions 7-14) is not a calendar date") from None
    if born.year < 1900:
        raise DocumentError("citizen ID birth date (positions 7-14) is before 1900")
    return born


def citizen_id_sex(citizen_id: str) -> str:
    """``"male"`` or ``"female"`` from the parity of the sequence code (position 17), per GB 11643-1999."""
    return "male" if int(citizen_id[16]) % 2 == 1 else "female"


def validate_citizen_id(s: str) -> str:
    """Check an 18-character citizen identity number (GB 11643-1999) and return it unchanged.

    Checks: 17 digits and a check character ``0-9``/``X`` (upper case only: the canonical form); an
    address code with a known GB/T 2260 provincial prefix; a real birth date from 1900 on; the MOD 11-2
    check character. Residence permits for Hong Kong, Macao and Taiwan residents (address codes 810000,
    820000, 830000) share the format; 83 is not a GB/T 2260 prefix but is accepted for that reason.
    """
    if not isinstance(s, str):
        raise TypeError(f"citizen ID must be str, not {type(s).__name__}")
    if _CITIZEN_ID.fullmatch(s) is None:
        raise DocumentError("citizen ID number must be 17 digits followed by a digit or X (18 characters)")
    if not (is_division_code(s[:6]) or s[:6] == "830000"):
        raise DocumentError("citizen ID address code (positions 1-6) has no GB/T 2260 provincial prefix")
    citizen_id_birth_date(s)
    expected = iso7064_mod11_2(s[:17])
    if s[17] != expected:
        raise DocumentError(f"citizen ID check character is {s[17]}, expected {expected} (ISO 7064 MOD 11-2)")
    return s


# --- GB 32100-2015 unified social credit code ---------------------------------------------------------------

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_CHARSET)}
_USCC = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")

# The registration-authority / organisation-type pairs of GB 32100-2015 table 1 that health-sector
# organisations use (机关 and 事业单位 health commissions and public hospitals, 民办非企业单位 and
# company hospitals). The table has further authorities (外交, 司法行政, 文化, 旅游, 宗教, 工会, ...)
# and has been extended since; codes outside this mapping are reported as unknown by
# :func:`uscc_parts`, never rejected.
USCC_AUTHORITIES: dict[str, tuple[str, dict[str, str]]] = {
    "1": ("机构编制", {"1": "机关", "2": "事业单位", "3": "中央编办直接管理机构编制的群众团体", "9": "其他"}),
    "5": ("民政", {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"}),
    "9": ("工商", {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"}),
    "Y": ("其他", {}),
}


def uscc_check_char(first17: str) -> str:
    """The GB 32100-2015 check character of the first 17 characters of a unified social credit code."""
    if not isinstance(first17, str):
        raise TypeError(f"first17 must be str, not {type(first17).__name__}")
    if NATIVE is not None and (check := NATIVE.uscc_check_char(first17)) is not None:
        return check
    if len(first17) != 17:
        raise DocumentError(f"expected 17 characters, got {len(first17)}")
    total = 0
    for ch, weight in zip(first17, USCC_WEIGHTS, strict=True):
        try:
            total += _USCC_VALUE[ch] * weight
        except KeyError:
            raise DocumentError(f"{ch!r} is not in the GB 32100-2015 character set") from None
    return USCC_CHARSET[(31 - total % 31) % 31]


def validate_uscc(s: str) -> str:
    """Check an 18-character unified social credit code (GB 32100-2015) and return it unchanged.

    Checks the character set (upper case, no I/O/S/V/Z), six digits at positions 3-8 (the registration
    authority's GB/T 2260 division code), and the check character. It does not require the authority/type pair
    to be in :data:`USCC_AUTHORITIES`.
    """
    if NATIVE is not None and NATIVE.uscc_valid(s):
        return s
    if not isinstance(s, str):
        raise TypeError(f"USCC must be str, not {type(s).__name__}")
    if _USCC.fullmatch(s) is None:
        raise DocumentError(
            "unified social credit code must be 18 characters from 0-9 and A-Y without I, O, S, V, Z, "
            "with six digits at positions 3-8"
        )
    expected = uscc_check_char(s[:17])
    if s[17] != expected:
        raise DocumentError(f"USCC check character is {s[17]}, expected {expected} (GB 32100-2015)")
    return s


@dataclass(frozen=True, slots=True)
class UsccParts:
    """The fields of a unified social credit code (GB 32100-2015 §4)."""

    registration_authority: str
    organisation_type: str
    division: str
    organisation_code: str
    check: str

    @property
    def authority_name(self) -> str | None:
        entry = USCC_AUTHORITIES.get(self.registration_authority)
        return entry[0] if entry else None

    @property
    def type_name(self) -> str | None:
        entry = USCC_AUTHORITIES.get(self.registration_authority)
        return entry[1].get(self.organisation_type) if entry else None


def uscc_parts(s: str) -> UsccParts:
    """Validate ``s`` and split it into its GB 32100-2015 fields."""
    validate_uscc(s)
    return UsccParts(s[0], s[1], s[2:8], s[8:17], s[17])


def make_uscc(authority: str, org_type: str, division: str, organisation_code: str) -> str:
    """Assemble a unified social credit code from its fields, computing the check character."""
    body = f"{authority}{org_type}{division}{organisation_code}"
    return validate_uscc(body + uscc_check_char(body))


# --- license kinds and type codes ---------------------------------------------------------------------------

INTERNAL_TYPE_DEFINER = make_uscc("1", "1", "100000", "000000000")
"""Stand-in for the 18-character code of the authority that defines the health license types.

Real GB/T 36904 type codes seen in public e-license identifiers are 21 characters: the unified social
credit code of the defining authority followed by a 3-digit sequence (e.g. ``11100000000013338W011``).
The codes the national platform assigned to the health-industry licenses below are not published in any
source we could check, so licledger uses this obviously synthetic definer (all-zero organisation code)
until they are known."""


class LicenseKind(StrEnum):
    """The license kinds the ledger models, with their document ``kind`` value."""

    INSTITUTION = "institution"
    PHYSICIAN = "physician"
    NURSE = "nurse"


@dataclass(frozen=True, slots=True)
class LicenseType:
    """A license type: its GB/T 36904 type code, names, and whether licledger models its document."""

    type_code: str
    name_zh: str
    name_en: str
    kind: LicenseKind | None


LICENSE_TYPES: tuple[LicenseType, ...] = (
    LicenseType(
        INTERNAL_TYPE_DEFINER + "001",
        "医疗机构执业许可证",
        "Medical institution practice license",
        LicenseKind.INSTITUTION,
    ),
    LicenseType(INTERNAL_TYPE_DEFINER + "002", "医师执业证书", "Physician practice certificate", LicenseKind.PHYSICIAN),
    LicenseType(INTERNAL_TYPE_DEFINER + "003", "护士执业证书", "Nurse practice certificate", LicenseKind.NURSE),
    LicenseType(INTERNAL_TYPE_DEFINER + "004", "医师资格证书", "Physician qualification certificate", None),
    LicenseType(INTERNAL_TYPE_DEFINER + "005", "出生医学证明", "Birth medical certificate", None),
)
TYPE_CODE_OF: dict[LicenseKind, str] = {t.kind: t.type_code for t in LICENSE_TYPES if t.kind is not None}
KIND_OF_TYPE_CODE: dict[str, LicenseKind] = {t.type_code: t.kind for t in LICENSE_TYPES if t.kind is not None}


# --- GB/T 36904-2018 e-license identifier -------------------------------------------------------------------

LICENSE_OID = "1.2.156.3005.2"
MAX_VERSION = 999
_TYPE_CODE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}[0-9]{3}")
_SERIAL = re.compile(r"[0-9A-Z]{1,64}")
_VERSION = re.compile(r"[0-9]{3}")


def _check_type_code(type_code: str) -> None:
    if _TYPE_CODE.fullmatch(type_code) is None:
        raise DocumentError(
            "license type code must be a definer's 18-character unified social credit code and 3 digits"
        )
    validate_uscc(type_code[:18])


def _check_serial(serial: str) -> None:
    if _SERIAL.fullmatch(serial) is None:
        raise DocumentError("license serial (证照编号) must be 1 to 64 characters from 0-9 and A-Z")


@dataclass(frozen=True, slots=True, order=True)
class LicenseId:
    """A GB/T 36904-2018 e-license identifier (电子证照标识).

    ``1.2.156.3005.2.<type_code>.<issuer_uscc>.<serial>.<version:03d>.<check>`` where ``type_code`` is the
    21-character 证照类型代码, ``issuer_uscc`` the issuing authority's unified social credit code, ``serial``
    the license number (证照编号, ``[0-9A-Z]{1,64}`` here), ``version`` 1..999 and ``check`` the ISO/IEC 7064
    MOD 37,36 character over ``type_code + issuer_uscc + serial + version`` (see :func:`iso7064_mod37_36`).

    A change to a license yields a new *version* of the same license (:meth:`next_version`); :attr:`base`,
    the identifier without version and check, names the license across versions.

    Construct with :meth:`build` (computes the check) or :meth:`parse`; the constructor validates all fields
    and requires ``check`` to be right.
    """

    type_code: str
    issuer_uscc: str
    serial: str
    version: int
    check: str
    _base: str = field(init=False, repr=False, compare=False)
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if NATIVE is None or not NATIVE.license_id_valid(
            self.type_code, self.issuer_uscc, self.serial, self.version, self.check
        ):
            self._validate()  # the checks below, which say what is wrong
        # both read many times per proof bundle; kept once the fields are known to be valid
        base = f"{LICENSE_OID}.{self.type_code}.{self.issuer_uscc}.{self.serial}"
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_text", f"{base}.{self.version:03d}.{self.check}")

    def _validate(self) -> None:
        for name in ("type_code", "issuer_uscc", "serial", "check"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"LicenseId.{name} must be str")
        if not isinstance(self.version, int) or isinstance(self.version, bool):
            raise TypeError("LicenseId.version must be int")
        _check_type_code(self.type_code)
        validate_uscc(self.issuer_uscc)
        _check_serial(self.serial)
        if not 1 <= self.version <= MAX_VERSION:
            raise DocumentError(f"license version must be 001 to {MAX_VERSION}, got {self.version}")
        expected = iso7064_mod37_36(self._check_input())
        if self.check != expected:
            raise DocumentError(
                f"license identifier check character is {self.check!r}, expected {expected} (ISO/IEC 7064 MOD 37,36)"
            )

    def _check_input(self) -> str:
        return f"{self.type_code}{self.issuer_uscc}{self.serial}{self.version:03d}"

    @classmethod
    def build(cls, type_code: str, issuer_uscc: str, serial: str, version: int = 1) -> LicenseId:
        """A new identifier from its parts, computing the check character."""
        _check_type_code(type_code)
        validate_uscc(issuer_uscc)
        _check_serial(serial)
        if not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
            raise DocumentError(f"license version must be 001 to {MAX_VERSION}, got {version!r}")
        check = iso7064_mod37_36(f"{type_code}{issuer_uscc}{serial}{version:03d}")
        return cls(type_code, issuer_uscc, serial, version, check)

    @classmethod
    def parse(cls, text: str) -> LicenseId:
        """Parse the dotted form; raises :class:`DocumentError` for anything but a valid identifier."""
        if not isinstance(text, str):
            raise TypeError(f"license identifier must be str, not {type(text).__name__}")
        prefix = LICENSE_OID + "."
        if not text.startswith(prefix):
            raise DocumentError(f"license identifier must start with {prefix}")
        parts = text[len(prefix) :].split(".")
        if len(parts) != 5:
            raise DocumentError(
                "license identifier must have five parts after the prefix: type code, issuer code, serial, "
                "version, check character"
            )
        type_code, issuer, serial, version, check = parts
        if _VERSION.fullmatch(version) is None:
            raise DocumentError("license version must be three digits")
        if len(check) != 1 or check not in _ALNUM36_VALUE:
            raise DocumentError("license check character must be one of 0-9, A-Z")
        return cls(type_code, issuer, serial, int(version), check)

    def __str__(self) -> str:
        return self._text

    @property
    def base(self) -> str:
        """The identifier without version and check character: names the license across its versions."""
        return self._base

    @property
    def kind(self) -> LicenseKind | None:
        """The modelled kind of this type code, or ``None`` for a type licledger does not model."""
        return KIND_OF_TYPE_CODE.get(self.type_code)

    def with_version(self, version: int) -> LicenseId:
        """The same license at another version."""
        return LicenseId.build(self.type_code, self.issuer_uscc, self.serial, version)

    def next_version(self) -> LicenseId:
        """The identifier of the license's next version (``ValueError`` after version 999)."""
        if self.version >= MAX_VERSION:
            raise ValueError(f"license {self.base} is at the last version {MAX_VERSION}")
        return self.with_version(self.version + 1)
