"""Deterministic synthetic license documents that look real and pass :func:`core.licenses.parse_document`.

``generate(kind, count, province, seed)`` yields canonical-ready document dicts. Same arguments, same
documents, on every machine: all randomness comes from :class:`random.Random` instances seeded with strings
derived from the arguments (string seeds are hashed with SHA-512 by CPython, independent of
``PYTHONHASHSEED``); there is no global state and no clock.

What is realistic and what is not:

* Citizen ID numbers (GB 11643-1999) carry real county-level GB/T 2260 codes (:data:`core.divisions.CITIES`),
  mostly of the issuing province, real birth dates for the holder's age, a sequence code of the right parity
  for the sex, and a correct check character. They are unique within one ``generate`` call. They are
  *random*: any may coincide with a real person's number, which is why generated data must never be
  published as real.
* Unified social credit codes (GB 32100-2015) have the registration-authority/type pair an organisation of
  that kind would have (``11`` health commission, ``12`` public hospital, ``52`` private non-enterprise
  hospital, ``92`` individual clinic), the division code of their district, and a correct check character.
* Names are drawn from common surnames and given-name characters; institution names follow the usual patterns
  (``广州市第一人民医院``, ``天河区石牌街道社区卫生服务中心``, ``越秀区张伟诊所``).
* Practice categories, scopes and institutions are consistent with each other (a dental physician practises
  口腔专业 at a hospital or dental clinic). Qualification certificate numbers follow the commonly described
  27-character form (year, province, level, category, citizen ID) but nothing validates that structure.
* Institutions are numbered: institution ``i`` of a province and seed is the same in every run and for every
  kind, so physicians and nurses reference institutions that ``generate("institution", ...)`` also yields.
* Output is prefix-stable: ``count=10`` yields the first ten documents of ``count=1000``. ``start`` numbers
  the documents from another index and draws them from another stream, for disjoint batches.
* License serials are ``<year><province prefix><index>``: unique within a kind and province for one seed,
  but different seeds reuse them (use ``start`` to generate disjoint ranges).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from typing import Any

from core.catalogues import DEPARTMENTS
from core.codes import (
    LICENSE_OID,
    TYPE_CODE_OF,
    LicenseKind,
    citizen_id_check_char,
    make_uscc,
    mod37_36_check,
    mod37_36_state,
)
from core.divisions import CITIES, PROVINCES, XPCC, City, Division, province

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
# Cumulative frequency weights, falling with rank like the real surname distribution (integers, so the
# draws are exact on every platform).
_SURNAME_CUM = tuple(accumulate(100_000 // (10 + i) for i in range(len(_SURNAMES))))
_COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方")
_GIVEN_MALE = "伟强磊军洋勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林阳国建志海文东晨博峰嘉子"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞燕玲桂红梅琳秀英华慧巧美倩婷雪晶颖欣怡佳蕾璐洁月莉萍瑶琪菲晓文子"

_ROADS = (
    "中山路", "解放路", "人民路", "建设路", "和平路", "长江路", "黄河路", "新华路", "文化路", "胜利路",
    "友谊路", "光明路", "青年路", "北京路", "健康路", "朝阳路", "滨江路", "环城路", "迎宾大道", "学府路",
)  # fmt: skip
_STREETS = (
    "东湖", "西湖", "南门", "北关", "城关", "新城", "花园", "龙华", "石牌", "滨河",
    "光华", "金桥", "桃源", "凤凰", "青山", "湖滨", "长安", "太平", "华林", "龙泉",
)  # fmt: skip
_BRANDS = (
    "仁爱", "博爱", "康华", "华侨", "仁和", "康宁", "同济", "和美", "德仁", "安康",
    "济民", "百汇", "瑞康", "恒康", "慈济", "天佑", "永康", "民生", "益寿", "惠民",
)  # fmt: skip
_ORDINALS = "一二三四五六七八九"
_SPECIALTY_HOSPITALS = (
    ("口腔医院", ("12", "32")),
    ("眼科医院", ("10", "32", "26")),
    ("儿童医院", ("07", "08", "09", "20", "32", "30")),
    ("肿瘤医院", ("19", "04", "32", "31", "30")),
    ("妇产医院", ("05", "05.01", "05.02", "06", "32")),
)

_GENERAL_DEPTS = (
    "01", "02", "03", "03.01", "03.02", "03.04", "04", "04.01", "04.03", "05", "07", "10", "11", "12", "13",
    "15", "19", "20", "21", "26", "28", "30", "31", "32", "50",
)  # fmt: skip
_CATEGORY_DEPTS: dict[str, tuple[str, ...]] = {
    "中医医院": ("50", "03", "04", "05", "07", "20", "21", "26", "30", "32", "52"),
    "妇幼保健院": ("05", "05.01", "05.02", "06", "07", "09", "30", "32"),
    "社区卫生服务中心": ("01", "02", "03", "12", "21", "30", "32", "50"),
    "综合门诊部": ("02", "03", "04", "05", "07", "12", "30", "32"),
    "诊所": ("02", "03", "12", "50"),
}

# Physician scopes with rough frequency weights.
_CLINICAL_SCOPES = (
    ("内科专业", 30), ("外科专业", 20), ("妇产科专业", 9), ("儿科专业", 7), ("全科医学专业", 9),
    ("医学影像和放射治疗专业", 8), ("医学检验、病理专业", 4), ("眼耳鼻咽喉科专业", 5), ("急救医学专业", 3),
    ("康复医学专业", 2), ("精神卫生专业", 2), ("皮肤病与性病专业", 2), ("预防保健专业", 1),
)  # fmt: skip
_CLINICAL_NAMES = tuple(name for name, _ in _CLINICAL_SCOPES)
_CLINICAL_CUM = tuple(accumulate(weight for _, weight in _CLINICAL_SCOPES))
_CATEGORIES = ("clinical", "tcm", "dental", "public_health")
_CATEGORY_CUM = (72, 89, 96, 100)
_MINORITY_TCM = {"150000": "蒙医专业", "540000": "藏医专业", "630000": "藏医专业", "650000": "维医专业",
                 "530000": "傣医专业"}  # fmt: skip
_QUALIFICATION_CATEGORY = {"clinical": "10", "tcm": "20", "dental": "30", "public_health": "40"}

_LAST_DAY = date(2024, 12, 31)
INSTITUTION_POOL = 1000
"""Physicians and nurses of a province and seed practise at institutions ``0 .. INSTITUTION_POOL - 1``."""


@dataclass(frozen=True, slots=True)
class _Institution:
    name: str
    uscc: str
    address: str
    division: str
    category: str
    departments: tuple[str, ...]
    legal_representative: str
    principal: str
    valid_from: date
    public: bool


def _rng(*parts: object) -> random.Random:
    # Not for secrets: reproducible synthetic data is the point.
    return random.Random("licledger-synth:" + ":".join(str(p) for p in parts))  # noqa: S311


def _date_between(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _plus_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def _org_code(rng: random.Random) -> str:
    """A 9-character organisation code in the GB 11714 shape (8 digits and a check-like character)."""
    return f"{rng.randrange(10**8):08d}{rng.choice('0123456789X')}"


class _Context:
    """Everything generated for one (province, seed): issuer, institution pool, used citizen IDs."""

    def __init__(self, province_code: str, seed: int) -> None:
        self.province = province(province_code)
        self.seed = seed
        self.cities: tuple[City, ...] = CITIES[province_code]
        self.districts: tuple[tuple[City, Division], ...] = tuple((c, d) for c in self.cities for d in c.districts)
        self.all_districts: tuple[Division, ...] = tuple(
            d for p, cs in CITIES.items() if p != XPCC for c in cs for d in c.districts
        )
        issuer_rng = _rng("issuer", province_code)  # the same authority for every seed
        self.authority = f"{self.province.name_zh}卫生健康委员会"
        self.authority_uscc = make_uscc("1", "1", province_code, _org_code(issuer_rng))
        # MOD 37,36 state after "<type code><issuer code>", the fixed prefix of this issuer's identifiers.
        self.id_state = {k: mod37_36_state(TYPE_CODE_OF[k] + self.authority_uscc) for k in LicenseKind}
        self.id_prefix = {k: f"{LICENSE_OID}.{TYPE_CODE_OF[k]}.{self.authority_uscc}" for k in LicenseKind}
        self.institutions: list[_Institution] = []
        self.institution_names: set[str] = set()
        self.citizen_ids: set[str] = set()

    # --- people ---

    def name(self, rng: random.Random, male: bool) -> str:
        if rng.random() < 0.01:
            surname = rng.choice(_COMPOUND_SURNAMES)
        else:
            surname = rng.choices(_SURNAMES, cum_weights=_SURNAME_CUM)[0]
        pool = _GIVEN_MALE if male else _GIVEN_FEMALE
        given = rng.choice(pool) if rng.random() < 0.35 else rng.choice(pool) + rng.choice(pool)
        return surname + given

    def citizen_id(self, rng: random.Random, male: bool, born: date) -> str:
        while True:
            if rng.random() < 0.85:
                division = rng.choice(self.districts)[1].code
            else:
                division = rng.choice(self.all_districts).code
            seq = rng.randrange(500) * 2 + (1 if male else 0)
            first17 = f"{division}{born:%Y%m%d}{seq:03d}"
            number = first17 + citizen_id_check_char(first17)
            if number not in self.citizen_ids:
                self.citizen_ids.add(number)
                return number

    def person(self, rng: random.Random, on: date, min_age: int, max_age: int, p_male: float) -> dict[str, str]:
        male = rng.random() < p_male
        age_days = rng.randrange(min_age * 365 + 5, max_age * 365)
        born = on - timedelta(days=age_days)
        return {
            "name": self.name(rng, male),
            "sex": "male" if male else "female",
            "citizen_id": self.citizen_id(rng, male, born),
        }

    # --- institutions ---

    def institution(self, index: int) -> _Institution:
        while len(self.institutions) <= index:
            self.institutions.append(self._new_institution(len(self.institutions)))
        return self.institutions[index]

    def _new_institution(self, index: int) -> _Institution:
        rng = _rng(self.seed, self.province.code, "institution", index)
        for attempt in range(20):
            city, district = rng.choice(self.districts)
            # Hospitals and centres are finite; once their names run out, new institutions are clinics, as
            # in reality (most of China's 1.07 million institutions are clinics and small outpatient units).
            category, name, departments, public = self._kind_and_name(rng, city, district, attempt >= 2)
            if name not in self.institution_names:
                break
        else:
            name = f"{name[:-2]}第{index}分院" if name.endswith("医院") else f"{district.name_zh}{index}号{name}"
        self.institution_names.add(name)
        if public:
            uscc = make_uscc("1", "2", district.code, _org_code(rng))
        elif category == "诊所":
            uscc = make_uscc("9", "2", district.code, _org_code(rng))
        else:
            uscc = make_uscc("5", "2", district.code, _org_code(rng))
        legal = self.name(rng, rng.random() < 0.6)
        principal = legal if rng.random() < 0.5 else self.name(rng, rng.random() < 0.6)
        return _Institution(
            name=name,
            uscc=uscc,
            address=self._address(rng, city, district),
            division=district.code,
            category=category,
            departments=departments,
            legal_representative=legal,
            principal=principal,
            valid_from=_date_between(rng, date(2019, 1, 1), _LAST_DAY),
            public=public,
        )

    def _kind_and_name(
        self, rng: random.Random, city: City, district: Division, clinic: bool
    ) -> tuple[str, str, tuple[str, ...], bool]:
        city_name = city.name_zh if not city.code.endswith("9000") else ""
        place = city_name or district.name_zh
        roll = 1.0 if clinic else rng.random()
        if roll < 0.25:
            style = rng.random()
            if style < 0.5:
                name = f"{place}第{rng.choice(_ORDINALS)}人民医院"
            elif style < 0.8:
                name = f"{city_name}{district.name_zh}人民医院"
            else:
                name = f"{place}中心医院"
            return "综合医院", name, self._pick(rng, _GENERAL_DEPTS, 8, 16), True
        if roll < 0.33:
            return "中医医院", f"{place}中医医院", self._pick(rng, _CATEGORY_DEPTS["中医医院"], 4, 8), True
        if roll < 0.38:
            return (
                "妇幼保健院",
                f"{place}妇幼保健院",
                self._pick(rng, _CATEGORY_DEPTS["妇幼保健院"], 4, 7),
                True,
            )
        if roll < 0.45:
            suffix, depts = rng.choice(_SPECIALTY_HOSPITALS)
            return "专科医院", f"{place}{suffix}", tuple(dict.fromkeys(depts)), True
        if roll < 0.52:
            name = f"{place}{rng.choice(_BRANDS)}医院"
            return "综合医院", name, self._pick(rng, _GENERAL_DEPTS, 5, 10), False
        if roll < 0.75:
            name = f"{city_name}{district.name_zh}{rng.choice(_STREETS)}街道社区卫生服务中心"
            return "社区卫生服务中心", name, self._pick(rng, _CATEGORY_DEPTS["社区卫生服务中心"], 3, 6), True
        if roll < 0.83:
            name = f"{district.name_zh}{rng.choice(_BRANDS)}口腔门诊部"
            return "专科门诊部", name, ("12", "32"), False
        if roll < 0.88:
            name = f"{city_name}{district.name_zh}{rng.choice(_BRANDS)}门诊部"
            return "综合门诊部", name, self._pick(rng, _CATEGORY_DEPTS["综合门诊部"], 3, 6), False
        name = f"{district.name_zh}{self.name(rng, rng.random() < 0.6)}诊所"
        return "诊所", name, self._pick(rng, _CATEGORY_DEPTS["诊所"], 1, 2), False

    @staticmethod
    def _pick(rng: random.Random, codes: tuple[str, ...], low: int, high: int) -> tuple[str, ...]:
        chosen = set(rng.sample(codes, min(len(codes), rng.randint(low, high))))
        return tuple(c for c in codes if c in chosen)

    def _address(self, rng: random.Random, city: City, district: Division) -> str:
        code = self.province.code
        province_name = PROVINCES["650000"].name_zh if code == XPCC else self.province.name_zh
        city_name = "" if city.name_zh == province_name or city.code.endswith("9000") else city.name_zh
        return f"{province_name}{city_name}{district.name_zh}{rng.choice(_ROADS)}{rng.randint(1, 999)}号"


def _instant(rng: random.Random, day: date) -> str:
    # Office hours in Beijing time (UTC+8) are 01:00-09:00 UTC.
    return f"{day:%Y-%m-%d}T{rng.randint(1, 8):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"


def _envelope(ctx: _Context, kind: LicenseKind, serial: str, version: int, issued_at: str) -> dict[str, Any]:
    # LicenseId.build would validate every part twice; the parts here are valid by construction, and
    # tests/test_gen.py parses every generated identifier.
    check = mod37_36_check(mod37_36_state(f"{serial}{version:03d}", ctx.id_state[kind]))
    return {
        "format": 1,
        "kind": kind.value,
        "license_id": f"{ctx.id_prefix[kind]}.{serial}.{version:03d}.{check}",
        "version": version,
        "issuer": {
            "province": ctx.province.code,
            "authority": ctx.authority,
            "authority_uscc": ctx.authority_uscc,
        },
        "issued_at": issued_at,
    }


def _version_and_time(rng: random.Random, first_day: date) -> tuple[int, str]:
    """Most licenses are at version 1, issued on their first day; one in ten was changed since."""
    if rng.random() < 0.9 or first_day >= _LAST_DAY:
        return 1, _instant(rng, first_day)
    return rng.randint(2, 3), _instant(rng, _date_between(rng, first_day + timedelta(days=1), _LAST_DAY))


def _institution_ref(inst: _Institution) -> dict[str, str]:
    return {"name": inst.name, "uscc": inst.uscc}


def _physician(ctx: _Context, rng: random.Random, index: int, pool: int) -> dict[str, Any]:
    issued_on = _date_between(rng, date(2000, 1, 1), _LAST_DAY)
    holder = ctx.person(rng, issued_on, 23, 60, 0.52)
    category = rng.choices(_CATEGORIES, cum_weights=_CATEGORY_CUM)[0]
    if category == "clinical":
        k = 1 if rng.random() < 0.85 else 2
        scope = list(dict.fromkeys(rng.choices(_CLINICAL_NAMES, cum_weights=_CLINICAL_CUM, k=k)))
    elif category == "tcm":
        minority = _MINORITY_TCM.get(ctx.province.code)
        roll = rng.random()
        scope = ["中医专业" if roll < 0.7 else "中西医结合专业" if roll < 0.95 or not minority else minority]
    elif category == "dental":
        scope = ["口腔专业"]
    else:
        scope = ["公共卫生类别专业"]
    primary = _pick_institution(ctx, rng, pool, category)
    version, issued_at = _version_and_time(rng, issued_on)
    filed: list[dict[str, str]] = []
    last_day = date.fromisoformat(issued_at[:10])
    n_filed = 0 if rng.random() < 0.82 else 1 if rng.random() < 0.85 else 2
    for _ in range(n_filed if last_day > issued_on else 0):
        other = ctx.institution(rng.randrange(pool))
        if other.uscc != primary.uscc and all(f["uscc"] != other.uscc for f in filed):
            filed_on = _date_between(rng, issued_on, last_day)
            filed.append({"name": other.name, "uscc": other.uscc, "filed_on": filed_on.isoformat()})
    qualified = issued_on.year - rng.randint(0, 1)
    qualification = f"{qualified}{ctx.province.code[:2]}1{_QUALIFICATION_CATEGORY[category]}{holder['citizen_id']}"
    serial = f"{issued_on.year}{ctx.province.code[:2]}{index:09d}"
    doc = _envelope(ctx, LicenseKind.PHYSICIAN, serial, version, issued_at)
    doc["holder"] = holder
    doc["practice"] = {
        "qualification_certificate_no": qualification,
        "category": category,
        "scope": scope,
        "primary_institution": _institution_ref(primary),
        "filed_institutions": filed,
    }
    doc["issued_on"] = issued_on.isoformat()
    return doc


_FITS = {
    "clinical": ("综合医院", "专科医院", "妇幼保健院", "社区卫生服务中心", "综合门诊部", "诊所"),
    "tcm": ("中医医院", "综合医院", "社区卫生服务中心", "诊所"),
    "dental": ("专科门诊部", "专科医院", "综合医院"),
    "public_health": ("综合医院", "妇幼保健院", "社区卫生服务中心"),
}


def _pick_institution(ctx: _Context, rng: random.Random, pool: int, category: str) -> _Institution:
    fits = _FITS[category]
    for _ in range(8):
        inst = ctx.institution(rng.randrange(pool))
        if inst.category in fits and (category != "dental" or "12" in inst.departments):
            return inst
    return inst


def _nurse(ctx: _Context, rng: random.Random, index: int, pool: int) -> dict[str, Any]:
    valid_from = _date_between(rng, date(2015, 1, 1), _LAST_DAY)
    holder = ctx.person(rng, valid_from, 20, 55, 0.05)
    for _ in range(8):
        inst = ctx.institution(rng.randrange(pool))
        if inst.category not in ("诊所", "专科门诊部"):
            break
    version, issued_at = _version_and_time(rng, valid_from)
    serial = f"{valid_from.year}{ctx.province.code[:2]}{index:09d}"
    doc = _envelope(ctx, LicenseKind.NURSE, serial, version, issued_at)
    doc["holder"] = holder
    doc["practice"] = {"institution": _institution_ref(inst)}
    doc["valid_from"] = valid_from.isoformat()
    doc["valid_to"] = (_plus_years(valid_from, 5) - timedelta(days=1)).isoformat()
    return doc


def _institution(ctx: _Context, rng: random.Random, index: int) -> dict[str, Any]:
    inst = ctx.institution(index)
    version, issued_at = _version_and_time(rng, inst.valid_from)
    doc = _envelope(ctx, LicenseKind.INSTITUTION, f"{inst.uscc[8:17]}{inst.division}{index:06d}", version, issued_at)
    doc["holder"] = {
        "name": inst.name,
        "uscc": inst.uscc,
        "address": inst.address,
        "division": inst.division,
        "legal_representative": inst.legal_representative,
        "principal": inst.principal,
    }
    doc["practice"] = {
        "category": inst.category,
        "departments": [{"code": code, "name": DEPARTMENTS[code]} for code in inst.departments],
    }
    doc["valid_from"] = inst.valid_from.isoformat()
    doc["valid_to"] = (_plus_years(inst.valid_from, 5) - timedelta(days=1)).isoformat()
    return doc


def generate(
    kind: LicenseKind | str, count: int, province: str, seed: int, *, start: int = 0
) -> Iterator[dict[str, Any]]:
    """Yield ``count`` synthetic documents of ``kind`` issued by ``province``, numbered from ``start``.

    Raises ``ValueError`` for an unknown kind or province, a negative count or start.
    """
    try:
        kind = LicenseKind(kind)
    except ValueError:
        raise ValueError(
            f"unknown license kind {kind!r}: expected one of {', '.join(k.value for k in LicenseKind)}"
        ) from None
    if type(count) is not int or count < 0 or type(start) is not int or start < 0:
        raise ValueError("count and start must be non-negative integers")
    if type(seed) is not int:
        raise TypeError("seed must be an int")
    ctx = _Context(province, seed)
    pool = INSTITUTION_POOL
    rng = _rng(seed, province, kind.value, start)
    for index in range(start, start + count):
        if kind is LicenseKind.PHYSICIAN:
            yield _physician(ctx, rng, index, pool)
        elif kind is LicenseKind.NURSE:
            yield _nurse(ctx, rng, index, pool)
        else:
            yield _institution(ctx, rng, index)
