"""License documents: one canonical format per license kind, parsed and validated without I/O.

Three kinds are modelled, each with its own GB/T 36904 type code (:mod:`core.codes`) and metadata items:
医疗机构执业许可证 (:class:`InstitutionLicense`), 医师执业证书 (:class:`PhysicianLicense`) and
护士执业证书 (:class:`NurseLicense`). docs/formats.md has a table of every field.

Rules:

1. A document is a JSON object. :func:`parse_document` takes the decoded object or its bytes (strict JSON, see
   :mod:`core.canonical`) and returns a frozen model, or raises :class:`~core.errors.DocumentError` whose
   ``errors`` maps *every* bad field path (``holder.citizen_id``, ``practice.scope[1]``) to a message.
2. Unknown fields are errors; nothing is coerced (``"1"`` is not ``1``); dates are ``YYYY-MM-DD``; the instant
   ``issued_at`` is RFC 3339 UTC with second precision (``2024-05-01T08:00:00Z``). No floats anywhere.
3. Field checks run first. Cross-field checks (sex against the citizen ID, type code against kind, issuer
   against the identifier, date order, scopes against the practice category, ...) run once every field is
   individually valid, and report every inconsistency they find.
4. The bytes hashed, committed and sealed are :func:`canonical_bytes` (RFC 8785 subset via
   :func:`core.canonical.encode`); ``parse_document(canonical_bytes(x)) == x`` for every valid ``x``. Since
   nothing is coerced and every serialiser is the exact inverse of its parser, the model's JSON dump of a valid
   document ``d`` is ``d`` again, so ``canonical_bytes(parse_document(d))`` is ``canonical.encode(d)`` and is
   computed from ``d`` (pydantic's dump costs several times the encoding); the tests check the two agree on
   generated documents of every kind.
5. Personal data: :data:`PERSONAL_FIELDS` names the paths that hold it per kind; :meth:`masked` returns the
   public view with those values masked. The ledger itself only ever sees a salted commitment
   (:mod:`core.commitment`).
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from core import canonical
from core.catalogues import DEPARTMENTS, INSTITUTION_CATEGORIES, PRACTICE_CATEGORIES
from core.codes import (
    TYPE_CODE_OF,
    LicenseId,
    LicenseKind,
    citizen_id_birth_date,
    citizen_id_sex,
    validate_citizen_id,
    validate_uscc,
)
from core.divisions import PROVINCES, XPCC, province_of
from core.errors import DocumentError, EncodingError

FORMAT_VERSION = 1
JSONDict = dict[str, Any]

# --- field types ----------------------------------------------------------------------------------


def _fail(reason: str) -> PydanticCustomError:
    return PydanticCustomError("licledger", "{reason}", {"reason": reason})


def _wrap(check: Callable[[str], object]) -> Callable[[object], str]:
    def validate(value: object) -> str:
        if not isinstance(value, str):
            raise _fail("must be a string")
        try:
            check(value)
        except DocumentError as exc:
            raise _fail(str(exc)) from None
        return value

    return validate


def _text(max_len: int) -> Callable[[object], str]:
    def validate(value: object) -> str:
        if not isinstance(value, str):
            raise _fail("must be a string")
        if not value:
            raise _fail("must not be empty")
        if len(value) > max_len:
            raise _fail(f"must be at most {max_len} characters")
        if value != value.strip():
            raise _fail("must not begin or end with whitespace")
        # str.isprintable() is False for every character of categories Cc, Cf, Cs, Co and Cn (and for separators
        # other than the ASCII space), by the same Unicode database as unicodedata: when it holds, no character
        # needs looking up.
        if not value.isprintable() and any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in value):
            raise _fail("must not contain control, format or unassigned characters")
        return value

    return validate


_REFUSED_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Cn"))
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _parse_date(value: object) -> date:
    if not isinstance(value, str) or _DATE.fullmatch(value) is None:
        raise _fail("must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail("is not a calendar date") from None


def _parse_instant(value: object) -> datetime:
    if not isinstance(value, str) or _INSTANT.fullmatch(value) is None:
        raise _fail("must be an RFC 3339 UTC instant written YYYY-MM-DDTHH:MM:SSZ")
    try:  # the pattern matched: datetime's own ISO 8601 parser (3.11 reads the Z as UTC), an order faster
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail("is not a valid instant") from None
    # and back to the same text, whatever a Python version's parser accepts beyond RFC 3339 (T24:00:00 as the
    # next midnight, say): the instant is then exactly what rule 4's serialiser writes
    if parsed.tzinfo is not UTC or _format_instant(parsed) != value:
        raise _fail("is not a valid instant")
    return parsed


def _format_instant(value: datetime) -> str:
    # RFC 3339 section 5.6: date-fullyear is 4DIGIT, also before the year 1000 (glibc's strftime("%Y") does not
    # pad there, and its unpadded output would not parse again).
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}Z"


# A bundle names its license in several places (top level, document, status record), and identifiers are
# immutable: the last few parsed are remembered so that one bundle parses its identifier once.
_RECENT_IDS: dict[str, LicenseId] = {}
_RECENT_IDS_LIMIT = 4


def parse_license_id(text: str) -> LicenseId:
    """:meth:`LicenseId.parse`, sharing the result with the last few calls for the same text."""
    parsed = _RECENT_IDS.get(text)
    if parsed is None:
        parsed = LicenseId.parse(text)
        if len(_RECENT_IDS) >= _RECENT_IDS_LIMIT:
            _RECENT_IDS.clear()
        _RECENT_IDS[text] = parsed
    return parsed


def _parse_license_id(value: object) -> LicenseId:
    if isinstance(value, LicenseId):
        return value
    if not isinstance(value, str):
        raise _fail("must be a string")
    try:
        return parse_license_id(value)
    except DocumentError as exc:
        raise _fail(str(exc)) from None


def _parse_province(value: object) -> str:
    if not isinstance(value, str) or value not in PROVINCES:
        raise _fail("must be a GB/T 2260 provincial-level code (e.g. 440000) or 660000 (XPCC)")
    return value


def _parse_division(value: object) -> str:
    if not isinstance(value, str):
        raise _fail("must be a string")
    try:
        province_of(value)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    return value


def _one_of(allowed: tuple[str, ...] | Mapping[str, object], what: str) -> Callable[[object], str]:
    def validate(value: object) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise _fail(f"must be a known {what}")
        return value

    return validate


_QUALIFICATION_NO = re.compile(r"[0-9A-Z]{6,32}")


def _qualification_no(value: object) -> str:
    if not isinstance(value, str) or _QUALIFICATION_NO.fullmatch(value) is None:
        raise _fail("must be 6 to 32 characters from 0-9 and A-Z")
    return value


def _strict_int(value: object) -> int:
    if type(value) is not int:
        raise _fail("must be an integer")
    return value


Text64 = Annotated[str, PlainValidator(_text(64))]
Text200 = Annotated[str, PlainValidator(_text(200))]
USCC = Annotated[str, PlainValidator(_wrap(validate_uscc))]
CitizenId = Annotated[str, PlainValidator(_wrap(validate_citizen_id))]
Date = Annotated[date, PlainValidator(_parse_date), PlainSerializer(date.isoformat, return_type=str)]
Instant = Annotated[
    datetime,
    PlainValidator(_parse_instant),
    PlainSerializer(_format_instant, return_type=str),
]
LicenseIdField = Annotated[LicenseId, PlainValidator(_parse_license_id), PlainSerializer(str, return_type=str)]
ProvinceCode = Annotated[str, PlainValidator(_parse_province)]
DivisionCode = Annotated[str, PlainValidator(_parse_division)]
Int = Annotated[int, PlainValidator(_strict_int)]
Sex = Annotated[str, PlainValidator(_one_of(("male", "female"), "sex: male or female"))]
QualificationNo = Annotated[str, PlainValidator(_qualification_no)]
PracticeCategory = Annotated[str, PlainValidator(_one_of(PRACTICE_CATEGORIES, "practice category"))]
InstitutionCategory = Annotated[str, PlainValidator(_one_of(INSTITUTION_CATEGORIES, "institution category"))]
DepartmentCode = Annotated[str, PlainValidator(_one_of(DEPARTMENTS, "诊疗科目 code"))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# --- parts ----------------------------------------------------------------------------------------


class Issuer(_Model):
    """The issuing authority (证照颁发机构): its province, name and unified social credit code."""

    province: ProvinceCode
    authority: Text200
    authority_uscc: USCC


class Person(_Model):
    """A natural-person holder (持证主体): name, sex, citizen ID number. All personal data."""

    name: Text64
    sex: Sex
    citizen_id: CitizenId


class InstitutionRef(_Model):
    """A medical institution named by a license: name and unified social credit code."""

    name: Text200
    uscc: USCC


class FiledInstitution(_Model):
    """An additional practice institution filed under multi-institution practice (多机构备案)."""

    name: Text200
    uscc: USCC
    filed_on: Date


class Department(_Model):
    """A department or specialty (诊疗科目) from the 1994 catalogue: code and its name."""

    code: DepartmentCode
    name: Text64

    @model_validator(mode="after")
    def _name_matches_code(self) -> Department:
        expected = DEPARTMENTS[self.code]
        if self.name != expected:
            raise DocumentError("department", {"name": f"is not the name of department {self.code} ({expected})"})
        return self


class InstitutionHolder(_Model):
    """The institution holding a 医疗机构执业许可证."""

    name: Text200
    uscc: USCC
    address: Text200
    division: DivisionCode
    legal_representative: Text64
    principal: Text64


class PhysicianPractice(_Model):
    """Practice registration of a physician: category, scopes, institutions."""

    qualification_certificate_no: QualificationNo
    category: PracticeCategory
    scope: tuple[Text64, ...]
    primary_institution: InstitutionRef
    filed_institutions: tuple[FiledInstitution, ...]


class NursePractice(_Model):
    """Practice registration of a nurse: the institution."""

    institution: InstitutionRef


class InstitutionPractice(_Model):
    """What an institution is licensed for: its category and departments."""

    category: InstitutionCategory
    departments: tuple[Department, ...]


# --- license kinds --------------------------------------------------------------------------------


_CANONICAL_BYTES = "_canonical_bytes_cache"


class _License(_Model):
    """The envelope common to all kinds."""

    KIND: ClassVar[LicenseKind]
    PERSONAL: ClassVar[frozenset[str]] = frozenset()

    format: Int
    kind: str
    license_id: LicenseIdField
    version: Int
    issuer: Issuer
    issued_at: Instant

    def envelope_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if self.format != FORMAT_VERSION:
            errors["format"] = f"must be {FORMAT_VERSION}"
        if self.license_id.type_code != TYPE_CODE_OF[self.KIND]:
            errors["license_id"] = f"type code {self.license_id.type_code} is not the {self.KIND.value} type code"
        elif self.license_id.issuer_uscc != self.issuer.authority_uscc:
            errors["license_id"] = "issuer code differs from issuer.authority_uscc"
        if self.version != self.license_id.version:
            errors["version"] = f"is {self.version}, but license_id carries version {self.license_id.version}"
        if not in_province(self.issuer.authority_uscc[2:8], self.issuer.province):
            errors["issuer.authority_uscc"] = f"is registered outside province {self.issuer.province}"
        return errors

    def kind_errors(self) -> dict[str, str]:
        return {}

    @model_validator(mode="after")
    def _consistent(self) -> _License:
        errors = self.envelope_errors()
        errors.update(self.kind_errors())
        if errors:
            raise DocumentError("inconsistent license", errors)
        return self

    def to_canonical_dict(self) -> JSONDict:
        """The document as a JSON object of canonical values (strings, integers, lists, objects)."""
        return self.model_dump(mode="json")

    def _canonical_bytes(self) -> bytes:
        # Computed once per (immutable) document, since the commitment and the seal payload both need them. Kept
        # in the instance __dict__ under a private name, which pydantic's dump, iteration, repr, hash and equality
        # leave out (functools.cached_property would do the same, but on 3.11 it holds one lock for all instances).
        cached: bytes | None = self.__dict__.get(_CANONICAL_BYTES)
        if cached is None:
            cached = self.__dict__[_CANONICAL_BYTES] = canonical.encode(self.model_dump(mode="json"))
        return cached

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """pydantic's copy (``update`` is not validated), without the cached canonical bytes of the original."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop(_CANONICAL_BYTES, None)
        return copied

    def masked(self) -> JSONDict:
        """The public view: :data:`PERSONAL_FIELDS` of this kind masked (``张*``, ``1101**********123X``)."""
        doc = self.to_canonical_dict()
        for path in self.PERSONAL:
            *parents, leaf = path.split(".")
            node = doc
            for key in parents:
                node = node[key]
            node[leaf] = _MASKS.get(leaf, _mask_all)(node[leaf])
        return doc


def in_province(division: str, province: str) -> bool:
    """Whether a six-digit division code lies in ``province``; never raises.

    The XPCC (660000) has no GB/T 2260 divisions of its own: its cities are Xinjiang's ``6590xx``, so every
    ``65xxxx`` and ``66xxxx`` code counts as inside it.
    """
    if province == XPCC:
        return division[:2] in ("65", "66")
    try:
        return province_of(division) == province
    except ValueError:
        return False


def _person_errors(holder: Person, on: date, on_field: str, min_age: int) -> dict[str, str]:
    errors: dict[str, str] = {}
    if citizen_id_sex(holder.citizen_id) != holder.sex:
        errors["holder.sex"] = "does not match the sex encoded in holder.citizen_id"
    born = citizen_id_birth_date(holder.citizen_id)
    try:
        adult = born.replace(year=born.year + min_age)
    except ValueError:  # born on 29 February
        adult = date(born.year + min_age, 3, 1)
    if on < adult:
        errors[on_field] = f"is before the holder's {min_age}th birthday"
    return errors


class PhysicianLicense(_License):
    """医师执业证书: physician practice certificate."""

    KIND: ClassVar[LicenseKind] = LicenseKind.PHYSICIAN
    PERSONAL: ClassVar[frozenset[str]] = frozenset(
        {"holder.name", "holder.sex", "holder.citizen_id", "practice.qualification_certificate_no"}
    )

    kind: Literal["physician"]
    holder: Person
    practice: PhysicianPractice
    issued_on: Date

    def kind_errors(self) -> dict[str, str]:
        errors = _person_errors(self.holder, self.issued_on, "issued_on", 18)
        if self.issued_on > self.issued_at.date():
            errors["issued_on"] = "is after issued_at"
        practice = self.practice
        allowed = PRACTICE_CATEGORIES[practice.category][1]
        if not practice.scope:
            errors["practice.scope"] = "must name at least one practice scope"
        seen: set[str] = set()
        for i, scope in enumerate(practice.scope):
            if scope not in allowed:
                errors[f"practice.scope[{i}]"] = f"is not a scope of practice category {practice.category}"
            elif scope in seen:
                errors[f"practice.scope[{i}]"] = "is listed twice"
            seen.add(scope)
        usccs = {practice.primary_institution.uscc}
        for i, filed in enumerate(practice.filed_institutions):
            if filed.uscc in usccs:
                errors[f"practice.filed_institutions[{i}].uscc"] = "is the primary or an earlier filed institution"
            usccs.add(filed.uscc)
            if filed.filed_on < self.issued_on:
                errors[f"practice.filed_institutions[{i}].filed_on"] = "is before issued_on"
            elif filed.filed_on > self.issued_at.date():
                errors[f"practice.filed_institutions[{i}].filed_on"] = "is after issued_at"
        return errors


class NurseLicense(_License):
    """护士执业证书: nurse practice certificate."""

    KIND: ClassVar[LicenseKind] = LicenseKind.NURSE
    PERSONAL: ClassVar[frozenset[str]] = frozenset({"holder.name", "holder.sex", "holder.citizen_id"})

    kind: Literal["nurse"]
    holder: Person
    practice: NursePractice
    valid_from: Date
    valid_to: Date

    def kind_errors(self) -> dict[str, str]:
        errors = _person_errors(self.holder, self.valid_from, "valid_from", 16)
        if self.valid_to <= self.valid_from:
            errors["valid_to"] = "must be after valid_from"
        return errors


class InstitutionLicense(_License):
    """医疗机构执业许可证: medical institution practice license."""

    KIND: ClassVar[LicenseKind] = LicenseKind.INSTITUTION
    PERSONAL: ClassVar[frozenset[str]] = frozenset({"holder.legal_representative", "holder.principal"})

    kind: Literal["institution"]
    holder: InstitutionHolder
    practice: InstitutionPractice
    valid_from: Date
    valid_to: Date

    def kind_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not in_province(self.holder.division, self.issuer.province):
            errors["holder.division"] = f"is not in the issuer's province {self.issuer.province}"
        if self.valid_to <= self.valid_from:
            errors["valid_to"] = "must be after valid_from"
        departments = self.practice.departments
        if not departments:
            errors["practice.departments"] = "must name at least one department"
        seen: set[str] = set()
        for i, department in enumerate(departments):
            if department.code in seen:
                errors[f"practice.departments[{i}].code"] = "is listed twice"
            seen.add(department.code)
        return errors


License = InstitutionLicense | PhysicianLicense | NurseLicense
MODELS: dict[str, type[InstitutionLicense] | type[PhysicianLicense] | type[NurseLicense]] = {
    LicenseKind.INSTITUTION.value: InstitutionLicense,
    LicenseKind.PHYSICIAN.value: PhysicianLicense,
    LicenseKind.NURSE.value: NurseLicense,
}
PERSONAL_FIELDS: dict[LicenseKind, frozenset[str]] = {model.KIND: model.PERSONAL for model in MODELS.values()}
"""Paths of the fields holding personal data, per kind. None of them ever reaches the ledger."""


# --- masking --------------------------------------------------------------------------------------


def mask_name(name: str) -> str:
    """``张三`` -> ``张*``, ``欧阳娜娜`` -> ``欧***``: keep the first character."""
    return name[:1] + "*" * (len(name) - 1) if len(name) > 1 else "*"


def mask_id(value: str) -> str:
    """``11010519491231002X`` -> ``1101**********002X``: keep four characters at each end."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def _mask_all(value: Any) -> str:
    return "*"


_MASKS: dict[str, Callable[[Any], str]] = {
    "name": mask_name,
    "legal_representative": mask_name,
    "principal": mask_name,
    "citizen_id": mask_id,
    "qualification_certificate_no": mask_id,
}


# --- parsing --------------------------------------------------------------------------------------


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _join(prefix: str, sub: str) -> str:
    if not prefix:
        return sub
    return f"{prefix}{sub}" if sub.startswith("[") else f"{prefix}.{sub}"


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this document",
    "model_type": "must be an object",
    "tuple_type": "must be an array",
    "literal_error": "has the wrong value for this kind",
}


def _collect(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        path = _path(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, DocumentError) and cause.errors:
            for sub, message in cause.errors.items():
                errors.setdefault(_join(path, sub), message)
        else:
            errors.setdefault(path or "$", _MESSAGES.get(err["type"], err["msg"]))
    return errors


def parse_document(data: Mapping[str, Any] | bytes) -> License:
    """Parse and validate a license document (decoded object or JSON bytes).

    Raises :class:`DocumentError` whose ``errors`` maps each bad field path to a readable message.
    """
    if isinstance(data, bytes | bytearray):
        try:
            data = canonical.decode(bytes(data))
        except EncodingError as exc:
            raise DocumentError("license document is not valid JSON", {"$": str(exc)}) from None
    if not isinstance(data, Mapping):
        raise DocumentError("license document must be a JSON object", {"$": "must be an object"})
    kind = data.get("kind")
    model = MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise DocumentError("unknown license kind", {"kind": f"must be one of {', '.join(sorted(MODELS))}"})
    try:
        license = model.model_validate(data)
    except ValidationError as exc:
        raise DocumentError(f"invalid {kind} license", _collect(exc)) from None
    # Rule 4: the same bytes as the model's dump would give. A Mapping that is no dict, say, has no encoding:
    # the dump is then encoded when the bytes are asked for.
    with contextlib.suppress(EncodingError):
        license.__dict__[_CANONICAL_BYTES] = canonical.encode(data)
    return license


def parse_signed_document(data: Mapping[str, Any]) -> License:
    """:func:`parse_document` for a document that arrives under a commitment and a seal (a proof bundle's
    disclosure). The license's :func:`canonical_bytes` are then those of ``data`` as given, so that the commitment
    and the seal are checked over the bytes received, never over a re-serialisation of what was parsed from them
    (python-tuf's rule for signed metadata). A document the issuer signed is its license's canonical dump, so both
    are the same bytes; a document rewritten into another value that parses to the same license (a default left
    out, say) is not what was signed, and its seal and commitment fail.
    """
    license = parse_document(data)
    if _CANONICAL_BYTES not in license.__dict__:
        try:
            license.__dict__[_CANONICAL_BYTES] = canonical.encode(data)
        except EncodingError as exc:
            raise DocumentError("license document has no canonical encoding", {"$": str(exc)}) from None
    return license


def canonical_bytes(license: License) -> bytes:
    """The canonical bytes (RFC 8785 subset) of a license: what is committed to and sealed (computed once per
    license object)."""
    return license._canonical_bytes()
