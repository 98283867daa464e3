"""Administrative division codes (GB/T 2260 《中华人民共和国行政区划代码》), the subset licledger needs.

A GB/T 2260 code has six digits: two for the provincial-level division, two for the prefecture level,
two for the county level (``440000`` Guangdong, ``440100`` Guangzhou, ``440106`` Tianhe district).
licledger names every province by its provincial code, and the synthetic generator draws realistic
addresses and citizen-ID address codes from the prefecture- and county-level table below.

What is here:

* :data:`PROVINCES`: all 31 provincial-level divisions of the mainland, plus ``660000`` for the Xinjiang
  Production and Construction Corps (新疆生产建设兵团, XPCC). **660000 is not a GB/T 2260 code**: the XPCC is
  not an administrative division, but the national health and government-service systems give it a
  provincial-level code of its own in this form, and the policy texts address it alongside the
  provinces. GB/T 2260 puts the cities the XPCC administers under Xinjiang (``6590xx``), which is what
  their residents' citizen ID numbers carry, so ``province_of("659001")`` is ``650000``; only the issuer
  code ``660000`` names the XPCC.
* :data:`OTHER_DIVISIONS`: Taiwan (710000), Hong Kong (810000) and Macao (820000), which GB/T 2260 lists
  but which run no node; their codes appear only as citizen-ID address codes (residence permits).
* :data:`CITIES`: a modest table of real prefecture-level cities (for the four municipalities, the ``xx0100``
  市辖区 entry) with a few real county-level districts each. It is enough for realistic synthetic data; it is
  not a complete copy of GB/T 2260, and codes outside it are not "invalid" anywhere in licledger.

The codes follow the table as published by the Ministry of Civil Affairs in recent years (checked against
the 2022 edition); districts that were renamed or merged are deliberately left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

XPCC = "660000"
"""Provincial-level code used for the Xinjiang Production and Construction Corps (not part of GB/T 2260)."""


@dataclass(frozen=True, slots=True)
class Division:
    """One GB/T 2260 division: its six-digit code and its names."""

    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class City:
    """A prefecture-level division with some of its county-level districts."""

    code: str
    name_zh: str
    name_en: str
    districts: tuple[Division, ...]


def _d(code: str, zh: str, en: str) -> Division:
    return Division(code, zh, en)


PROVINCES: dict[str, Division] = {
    d.code: d
    for d in (
        _d("110000", "北京市", "Beijing"),
        _d("120000", "天津市", "Tianjin"),
        _d("130000", "河北省", "Hebei"),
        _d("140000", "山西省", "Shanxi"),
        _d("150000", "内蒙古自治区", "Inner Mongolia"),
        _d("210000", "辽宁省", "Liaoning"),
        _d("220000", "吉林省", "Jilin"),
        _d("230000", "黑龙江省", "Heilongjiang"),
        _d("310000", "上海市", "Shanghai"),
        _d("320000", "江苏省", "Jiangsu"),
        _d("330000", "浙江省", "Zhejiang"),
        _d("340000", "安徽省", "Anhui"),
        _d("350000", "福建省", "Fujian"),
        _d("360000", "江西省", "Jiangxi"),
        _d("370000", "山东省", "Shandong"),
        _d("410000", "河南省", "Henan"),
        _d("420000", "湖北省", "Hubei"),
        _d("430000", "湖南省", "Hunan"),
        _d("440000", "广东省", "Guangdong"),
        _d("450000", "广西壮族自治区", "Guangxi"),
        _d("460000", "海南省", "Hainan"),
        _d("500000", "重庆市", "Chongqing"),
        _d("510000", "四川省", "Sichuan"),
        _d("520000", "贵州省", "Guizhou"),
        _d("530000", "云南省", "Yunnan"),
        _d("540000", "西藏自治区", "Xizang (Tibet)"),
        _d("610000", "陕西省", "Shaanxi"),
        _d("620000", "甘肃省", "Gansu"),
        _d("630000", "青海省", "Qinghai"),
        _d("640000", "宁夏回族自治区", "Ningxia"),
        _d("650000", "新疆维吾尔自治区", "Xinjiang"),
        _d(XPCC, "新疆生产建设兵团", "Xinjiang Production and Construction Corps"),
    )
}

OTHER_DIVISIONS: dict[str, Division] = {
    d.code: d
    for d in (
        _d("710000", "台湾省", "Taiwan"),
        _d("810000", "香港特别行政区", "Hong Kong SAR"),
        _d("820000", "澳门特别行政区", "Macao SAR"),
    )
}


def _c(code: str, zh: str, en: str, *districts: tuple[str, str, str]) -> City:
    return City(code, zh, en, tuple(Division(*d) for d in districts))


# Province code -> cities. Municipalities (北京, 天津, 上海, 重庆) list their 市辖区 (xx0100) entry.
CITIES: dict[str, tuple[City, ...]] = {
    "110000": (
        _c(
            "110100",
            "北京市",
            "Beijing",
            ("110101", "东城区", "Dongcheng"),
            ("110102", "西城区", "Xicheng"),
            ("110105", "朝阳区", "Chaoyang"),
            ("110106", "丰台区", "Fengtai"),
            ("110108", "海淀区", "Haidian"),
            ("110112", "通州区", "Tongzhou"),
        ),
    ),
    "120000": (
        _c(
            "120100",
            "天津市",
            "Tianjin",
            ("120101", "和平区", "Heping"),
            ("120102", "河东区", "Hedong"),
            ("120103", "河西区", "Hexi"),
            ("120104", "南开区", "Nankai"),
            ("120116", "滨海新区", "Binhai"),
        ),
    ),
    "130000": (
        _c(
            "130100",
            "石家庄市",
            "Shijiazhuang",
            ("130102", "长安区", "Chang'an"),
            ("130104", "桥西区", "Qiaoxi"),
        ),
        _c("130200", "唐山市", "Tangshan", ("130202", "路南区", "Lunan"), ("130203", "路北区", "Lubei")),
        _c("130600", "保定市", "Baoding", ("130602", "竞秀区", "Jingxiu"), ("130606", "莲池区", "Lianchi")),
    ),
    "140000": (
        _c("140100", "太原市", "Taiyuan", ("140105", "小店区", "Xiaodian"), ("140106", "迎泽区", "Yingze")),
        _c("140400", "长治市", "Changzhi", ("140403", "潞州区", "Luzhou"), ("140406", "潞城区", "Lucheng")),
    ),
    "150000": (
        _c("150100", "呼和浩特市", "Hohhot", ("150102", "新城区", "Xincheng"), ("150103", "回民区", "Huimin")),
        _c("150200", "包头市", "Baotou", ("150202", "东河区", "Donghe"), ("150203", "昆都仑区", "Kundulun")),
    ),
    "210000": (
        _c("210100", "沈阳市", "Shenyang", ("210102", "和平区", "Heping"), ("210103", "沈河区", "Shenhe")),
        _c("210200", "大连市", "Dalian", ("210202", "中山区", "Zhongshan"), ("210203", "西岗区", "Xigang")),
    ),
    "220000": (
        _c("220100", "长春市", "Changchun", ("220102", "南关区", "Nanguan"), ("220104", "朝阳区", "Chaoyang")),
        _c("220200", "吉林市", "Jilin", ("220202", "昌邑区", "Changyi"), ("220203", "龙潭区", "Longtan")),
    ),
    "230000": (
        _c("230100", "哈尔滨市", "Harbin", ("230102", "道里区", "Daoli"), ("230103", "南岗区", "Nangang")),
        _c("230600", "大庆市", "Daqing", ("230602", "萨尔图区", "Sartu"), ("230603", "龙凤区", "Longfeng")),
    ),
    "310000": (
        _c(
            "310100",
            "上海市",
            "Shanghai",
            ("310101", "黄浦区", "Huangpu"),
            ("310104", "徐汇区", "Xuhui"),
            ("310105", "长宁区", "Changning"),
            ("310106", "静安区", "Jing'an"),
            ("310110", "杨浦区", "Yangpu"),
            ("310115", "浦东新区", "Pudong"),
        ),
    ),
    "320000": (
        _c(
            "320100",
            "南京市",
            "Nanjing",
            ("320102", "玄武区", "Xuanwu"),
            ("320104", "秦淮区", "Qinhuai"),
            ("320106", "鼓楼区", "Gulou"),
        ),
        _c("320200", "无锡市", "Wuxi", ("320213", "梁溪区", "Liangxi"), ("320214", "新吴区", "Xinwu")),
        _c("320500", "苏州市", "Suzhou", ("320505", "虎丘区", "Huqiu"), ("320508", "姑苏区", "Gusu")),
    ),
    "330000": (
        _c("330100", "杭州市", "Hangzhou", ("330102", "上城区", "Shangcheng"), ("330106", "西湖区", "Xihu")),
        _c("330200", "宁波市", "Ningbo", ("330203", "海曙区", "Haishu"), ("330212", "鄞州区", "Yinzhou")),
        _c("330300", "温州市", "Wenzhou", ("330302", "鹿城区", "Lucheng"), ("330304", "瓯海区", "Ouhai")),
    ),
    "340000": (
        _c(
            "340100",
            "合肥市",
            "Hefei",
            ("340102", "瑶海区", "Yaohai"),
            ("340103", "庐阳区", "Luyang"),
            ("340104", "蜀山区", "Shushan"),
        ),
        _c(
            "340200",
            "芜湖市",
            "Wuhu",
            ("340202", "镜湖区", "Jinghu"),
        ),
    ),
    "350000": (
        _c("350100", "福州市", "Fuzhou", ("350102", "鼓楼区", "Gulou"), ("350103", "台江区", "Taijiang")),
        _c("350200", "厦门市", "Xiamen", ("350203", "思明区", "Siming"), ("350206", "湖里区", "Huli")),
        _c("350500", "泉州市", "Quanzhou", ("350502", "鲤城区", "Licheng"), ("350503", "丰泽区", "Fengze")),
    ),
    "360000": (
        _c("360100", "南昌市", "Nanchang", ("360102", "东湖区", "Donghu"), ("360103", "西湖区", "Xihu")),
        _c(
            "360700",
            "赣州市",
            "Ganzhou",
            ("360702", "章贡区", "Zhanggong"),
        ),
    ),
    "370000": (
        _c("370100", "济南市", "Jinan", ("370102", "历下区", "Lixia"), ("370103", "市中区", "Shizhong")),
        _c("370200", "青岛市", "Qingdao", ("370202", "市南区", "Shinan"), ("370203", "市北区", "Shibei")),
        _c(
            "370600",
            "烟台市",
            "Yantai",
            ("370602", "芝罘区", "Zhifu"),
        ),
    ),
    "410000": (
        _c(
            "410100",
            "郑州市",
            "Zhengzhou",
            ("410102", "中原区", "Zhongyuan"),
            ("410103", "二七区", "Erqi"),
            ("410105", "金水区", "Jinshui"),
        ),
        _c("410300", "洛阳市", "Luoyang", ("410302", "老城区", "Laocheng"), ("410305", "涧西区", "Jianxi")),
    ),
    "420000": (
        _c(
            "420100",
            "武汉市",
            "Wuhan",
            ("420102", "江岸区", "Jiang'an"),
            ("420103", "江汉区", "Jianghan"),
            ("420106", "武昌区", "Wuchang"),
        ),
        _c(
            "420500",
            "宜昌市",
            "Yichang",
            ("420502", "西陵区", "Xiling"),
        ),
        _c(
            "420600",
            "襄阳市",
            "Xiangyang",
            ("420602", "襄城区", "Xiangcheng"),
        ),
    ),
    "430000": (
        _c(
            "430100",
            "长沙市",
            "Changsha",
            ("430102", "芙蓉区", "Furong"),
            ("430103", "天心区", "Tianxin"),
            ("430104", "岳麓区", "Yuelu"),
        ),
        _c(
            "430200",
            "株洲市",
            "Zhuzhou",
            ("430202", "荷塘区", "Hetang"),
        ),
    ),
    "440000": (
        _c(
            "440100",
            "广州市",
            "Guangzhou",
            ("440103", "荔湾区", "Liwan"),
            ("440104", "越秀区", "Yuexiu"),
            ("440105", "海珠区", "Haizhu"),
            ("440106", "天河区", "Tianhe"),
        ),
        _c(
            "440300",
            "深圳市",
            "Shenzhen",
            ("440303", "罗湖区", "Luohu"),
            ("440304", "福田区", "Futian"),
            ("440305", "南山区", "Nanshan"),
        ),
        _c(
            "440400",
            "珠海市",
            "Zhuhai",
            ("440402", "香洲区", "Xiangzhou"),
        ),
        _c("440600", "佛山市", "Foshan", ("440604", "禅城区", "Chancheng"), ("440606", "顺德区", "Shunde")),
    ),
    "450000": (
        _c("450100", "南宁市", "Nanning", ("450102", "兴宁区", "Xingning"), ("450103", "青秀区", "Qingxiu")),
        _c(
            "450300",
            "桂林市",
            "Guilin",
            ("450302", "秀峰区", "Xiufeng"),
        ),
    ),
    "460000": (
        _c("460100", "海口市", "Haikou", ("460105", "秀英区", "Xiuying"), ("460106", "龙华区", "Longhua")),
        _c("460200", "三亚市", "Sanya", ("460202", "海棠区", "Haitang"), ("460203", "吉阳区", "Jiyang")),
    ),
    "500000": (
        _c(
            "500100",
            "重庆市",
            "Chongqing",
            ("500103", "渝中区", "Yuzhong"),
            ("500106", "沙坪坝区", "Shapingba"),
            ("500112", "渝北区", "Yubei"),
        ),
    ),
    "510000": (
        _c(
            "510100",
            "成都市",
            "Chengdu",
            ("510104", "锦江区", "Jinjiang"),
            ("510105", "青羊区", "Qingyang"),
            ("510107", "武侯区", "Wuhou"),
        ),
        _c(
            "510700",
            "绵阳市",
            "Mianyang",
            ("510703", "涪城区", "Fucheng"),
        ),
    ),
    "520000": (
        _c("520100", "贵阳市", "Guiyang", ("520102", "南明区", "Nanming"), ("520103", "云岩区", "Yunyan")),
        _c(
            "520300",
            "遵义市",
            "Zunyi",
            ("520302", "红花岗区", "Honghuagang"),
        ),
    ),
    "530000": (
        _c("530100", "昆明市", "Kunming", ("530102", "五华区", "Wuhua"), ("530103", "盘龙区", "Panlong")),
        _c(
            "530300",
            "曲靖市",
            "Qujing",
            ("530302", "麒麟区", "Qilin"),
        ),
    ),
    "540000": (
        _c(
            "540100",
            "拉萨市",
            "Lhasa",
            ("540102", "城关区", "Chengguan"),
        ),
        _c(
            "540200",
            "日喀则市",
            "Xigaze",
            ("540202", "桑珠孜区", "Samzhubze"),
        ),
    ),
    "610000": (
        _c(
            "610100",
            "西安市",
            "Xi'an",
            ("610102", "新城区", "Xincheng"),
            ("610103", "碑林区", "Beilin"),
            ("610104", "莲湖区", "Lianhu"),
        ),
        _c(
            "610300",
            "宝鸡市",
            "Baoji",
            ("610302", "渭滨区", "Weibin"),
        ),
    ),
    "620000": (
        _c("620100", "兰州市", "Lanzhou", ("620102", "城关区", "Chengguan"), ("620103", "七里河区", "Qilihe")),
        _c(
            "620500",
            "天水市",
            "Tianshui",
            ("620502", "秦州区", "Qinzhou"),
        ),
    ),
    "630000": (
        _c(
            "630100",
            "西宁市",
            "Xining",
            ("630102", "城东区", "Chengdong"),
            ("630103", "城中区", "Chengzhong"),
        ),
        _c(
            "630200",
            "海东市",
            "Haidong",
            ("630202", "乐都区", "Ledu"),
        ),
    ),
    "640000": (
        _c("640100", "银川市", "Yinchuan", ("640104", "兴庆区", "Xingqing"), ("640105", "西夏区", "Xixia")),
        _c(
            "640200",
            "石嘴山市",
            "Shizuishan",
            ("640202", "大武口区", "Dawukou"),
        ),
    ),
    "650000": (
        _c(
            "650100",
            "乌鲁木齐市",
            "Urumqi",
            ("650102", "天山区", "Tianshan"),
            ("650103", "沙依巴克区", "Saybag"),
        ),
        _c(
            "650200",
            "克拉玛依市",
            "Karamay",
            ("650203", "克拉玛依区", "Karamay"),
        ),
    ),
    # The XPCC's cities are county-level divisions directly under Xinjiang (自治区直辖县级行政区划, 6590xx).
    XPCC: (
        _c(
            "659000",
            "自治区直辖县级行政区划",
            "County-level cities administered by the XPCC",
            ("659001", "石河子市", "Shihezi"),
            ("659002", "阿拉尔市", "Aral"),
            ("659003", "图木舒克市", "Tumxuk"),
            ("659004", "五家渠市", "Wujiaqu"),
        ),
    ),
}

_CODE6 = re.compile(r"[0-9]{6}")
_PREFIXES: dict[str, str] = {code[:2]: code for code in (*PROVINCES, *OTHER_DIVISIONS) if code != XPCC}


def is_division_code(code: str) -> bool:
    """Whether ``code`` has the GB/T 2260 shape (six digits) and a known provincial-level prefix."""
    return isinstance(code, str) and _CODE6.fullmatch(code) is not None and code[:2] in _PREFIXES


def province_of(code6: str) -> str:
    """The provincial-level code (``xx0000``) of a six-digit division code.

    ``"440106"`` -> ``"440000"``. ``"660000"`` (XPCC) maps to itself; every other ``66xxxx`` is refused,
    since the XPCC has no GB/T 2260 subdivisions. Raises ``ValueError`` for anything else that is not six
    digits with a known provincial prefix.
    """
    if not isinstance(code6, str) or _CODE6.fullmatch(code6) is None:
        raise ValueError(f"division code must be six digits, got {code6!r}")
    if code6 == XPCC:
        return XPCC
    try:
        return _PREFIXES[code6[:2]]
    except KeyError:
        raise ValueError(f"{code6} has no known provincial-level prefix {code6[:2]} (GB/T 2260)") from None


def province(code: str) -> Division:
    """The :class:`Division` of a provincial-level code that can run a node (31 provinces and the XPCC)."""
    try:
        return PROVINCES[code]
    except KeyError:
        raise ValueError(
            f"unknown province code {code!r}: expected one of the 31 GB/T 2260 provincial codes or 660000 (XPCC)"
        ) from None


def cities_of(province_code: str) -> tuple[City, ...]:
    """The cities of :data:`CITIES` in a province (``ValueError`` for an unknown province)."""
    province(province_code)
    return CITIES[province_code]


def name_of(code: str) -> str | None:
    """The Chinese name of a division code known to this module, or ``None``."""
    if code in PROVINCES:
        return PROVINCES[code].name_zh
    if code in OTHER_DIVISIONS:
        return OTHER_DIVISIONS[code].name_zh
    for cities in CITIES.values():
        for city in cities:
            if city.code == code:
                return city.name_zh
            for district in city.districts:
                if district.code == code:
                    return district.name_zh
    return None
