"""Controlled vocabularies of the license documents: practice categories and scopes, institution categories,
departments (诊疗科目).

Sources:

* Physician practice categories and scopes: 《关于医师执业注册中执业范围的暂行规定》 (卫医发〔2001〕169号),
  which lists the scopes (执业范围) registrable in each of the four categories (执业类别). Each category also
  allows "省级以上卫生健康行政部门规定的其他专业", written here as ``其他专业``.
* Institution categories: 《医疗机构管理条例实施细则》 art. 3 (as amended 2017), a subset of the categories.
* Departments: 《医疗机构诊疗科目名录》 (卫医发〔1994〕27号), codes ``NN`` for a department and
  ``NN.NN`` for a specialty within it; the common departments and some of their specialties.

Values are stored in documents as the Chinese names (categories by their English key, see
:data:`PRACTICE_CATEGORIES`), because those are what the printed license shows.
"""

from __future__ import annotations

from types import MappingProxyType

_OTHER = "其他专业"

# key -> (Chinese name, scopes)
PRACTICE_CATEGORIES: MappingProxyType[str, tuple[str, tuple[str, ...]]] = MappingProxyType(
    {
        "clinical": (
            "临床",
            (
                "内科专业",
                "外科专业",
                "妇产科专业",
                "儿科专业",
                "眼耳鼻咽喉科专业",
                "皮肤病与性病专业",
                "精神卫生专业",
                "职业病专业",
                "医学影像和放射治疗专业",
                "医学检验、病理专业",
                "全科医学专业",
                "急救医学专业",
                "康复医学专业",
                "预防保健专业",
                "特种医学与军事医学专业",
                "计划生育技术服务专业",
                _OTHER,
            ),
        ),
        "tcm": (
            "中医",
            ("中医专业", "中西医结合专业", "蒙医专业", "藏医专业", "维医专业", "傣医专业", _OTHER),
        ),
        "dental": ("口腔", ("口腔专业", _OTHER)),
        "public_health": ("公共卫生", ("公共卫生类别专业", _OTHER)),
    }
)


def scopes_of(category: str) -> tuple[str, ...]:
    """The practice scopes registrable in a practice category (``KeyError`` for an unknown category)."""
    return PRACTICE_CATEGORIES[category][1]


INSTITUTION_CATEGORIES: tuple[str, ...] = (
    "综合医院",
    "中医医院",
    "中西医结合医院",
    "民族医医院",
    "专科医院",
    "康复医院",
    "妇幼保健院",
    "社区卫生服务中心",
    "社区卫生服务站",
    "中心卫生院",
    "乡（镇）卫生院",
    "疗养院",
    "综合门诊部",
    "专科门诊部",
    "中医门诊部",
    "诊所",
    "中医诊所",
    "卫生所",
    "医务室",
    "村卫生室",
    "急救中心",
    "临床检验中心",
    "护理院",
    "其他诊疗机构",
)

DEPARTMENTS: MappingProxyType[str, str] = MappingProxyType(
    {
        "01": "预防保健科",
        "02": "全科医疗科",
        "03": "内科",
        "03.01": "呼吸内科专业",
        "03.02": "消化内科专业",
        "03.03": "神经内科专业",
        "03.04": "心血管内科专业",
        "03.05": "血液内科专业",
        "03.06": "肾病学专业",
        "03.07": "内分泌专业",
        "03.08": "免疫学专业",
        "03.09": "变态反应专业",
        "03.10": "老年病专业",
        "04": "外科",
        "04.01": "普通外科专业",
        "04.02": "神经外科专业",
        "04.03": "骨科专业",
        "04.04": "泌尿外科专业",
        "04.05": "胸外科专业",
        "04.06": "心脏大血管外科专业",
        "04.07": "烧伤科专业",
        "04.08": "整形外科专业",
        "05": "妇产科",
        "05.01": "妇科专业",
        "05.02": "产科专业",
        "06": "妇女保健科",
        "07": "儿科",
        "08": "小儿外科",
        "09": "儿童保健科",
        "10": "眼科",
        "11": "耳鼻咽喉科",
        "12": "口腔科",
        "13": "皮肤科",
        "14": "医疗美容科",
        "15": "精神科",
        "16": "传染科",
        "17": "结核病科",
        "19": "肿瘤科",
        "20": "急诊医学科",
        "21": "康复医学科",
        "23": "职业病科",
        "26": "麻醉科",
        "27": "疼痛科",
        "28": "重症医学科",
        "30": "医学检验科",
        "31": "病理科",
        "32": "医学影像科",
        "50": "中医科",
        "51": "民族医学科",
        "52": "中西医结合科",
        "69": "其他业务科",
    }
)
