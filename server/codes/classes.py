"""Code lists: the Third National Land Survey (三调) working classification and the first level of the
land and sea use classification for territorial spatial planning (用地用海分类).

Plain data: ``code -> Chinese name``. First-level survey class ``09`` (特殊用地) has no second level
in the working classification; it is used as its own land code.
"""

from __future__ import annotations

LAND_SURVEY_FIRST: dict[str, str] = {
    "00": "湿地",
    "01": "耕地",
    "02": "种植园用地",
    "03": "林地",
    "04": "草地",
    "05": "商业服务业用地",
    "06": "工矿用地",
    "07": "住宅用地",
    "08": "公共管理与公共服务用地",
    "09": "特殊用地",
    "10": "交通运输用地",
    "11": "水域及水利设施用地",
    "12": "其他土地",
}

# first-level code -> ((second-level code, name), ...)
LAND_SURVEY_TREE: dict[str, tuple[tuple[str, str], ...]] = {
    "00": (
        ("0303", "红树林地"), ("0304", "森林沼泽"), ("0306", "灌丛沼泽"), ("0402", "沼泽草地"),
        ("0603", "盐田"), ("1105", "沿海滩涂"), ("1106", "内陆滩涂"), ("1108", "沼泽地"),
    ),
    "01": (("0101", "水田"), ("0102", "水浇地"), ("0103", "旱地")),
    "02": (("0201", "果园"), ("0202", "茶园"), ("0203", "橡胶园"), ("0204", "其他园地")),
    "03": (("0301", "乔木林地"), ("0302", "竹林地"), ("0305", "灌木林地"), ("0307", "其他林地")),
    "04": (("0401", "天然牧草地"), ("0403", "人工牧草地"), ("0404", "其他草地")),
    "05": (("05H1", "商业服务业设施用地"), ("0508", "物流仓储用地")),
    "06": (("0601", "工业用地"), ("0602", "采矿用地")),
    "07": (("0701", "城镇住宅用地"), ("0702", "农村宅基地")),
    "08": (
        ("08H1", "机关团体新闻出版用地"), ("08H2", "科教文卫用地"),
        ("0809", "公用设施用地"), ("0810", "公园与绿地"),
    ),
    "09": (),
    "10": (
        ("1001", "铁路用地"), ("1002", "轨道交通用地"), ("1003", "公路用地"),
        ("1004", "城镇村道路用地"), ("1005", "交通服务场站用地"), ("1006", "农村道路"),
        ("1007", "机场用地"), ("1008", "港口码头用地"), ("1009", "管道运输用地"),
    ),
    "11": (
        ("1101", "河流水面"), ("1102", "湖泊水面"), ("1103", "水库水面"), ("1104", "坑塘水面"),
        ("1107", "沟渠"), ("1109", "水工建筑用地"), ("1110", "冰川及永久积雪"),
    ),
    "12": (
        ("1201", "空闲地"), ("1202", "设施农用地"), ("1203", "田坎"), ("1204", "盐碱地"),
        ("1205", "沙地"), ("1206", "裸土地"), ("1207", "裸岩石砾地"),
    ),
}

# second-level code (and "09") -> name
LAND_SURVEY_CLASSES: dict[str, str] = {
    code: name for children in LAND_SURVEY_TREE.values() for code, name in children
} | {"09": LAND_SURVEY_FIRST["09"]}

# land code -> first-level code; the wetland group (00) borrows codes from other groups
LAND_SURVEY_PARENT: dict[str, str] = {
    code: first for first, children in LAND_SURVEY_TREE.items() for code, _ in children
} | {"09": "09"}

PLANNING_USE_CLASSES: dict[str, str] = {
    "01": "耕地",
    "02": "园地",
    "03": "林地",
    "04": "草地",
    "05": "湿地",
    "06": "农业设施建设用地",
    "07": "居住用地",
    "08": "公共管理与公共服务用地",
    "09": "商业服务业用地",
    "10": "工矿用地",
    "11": "仓储用地",
    "12": "交通运输用地",
    "13": "公用设施用地",
    "14": "绿地与开敞空间用地",
    "15": "特殊用地",
    "16": "留白用地",
    "17": "陆地水域",
    "18": "渔业用海",
    "19": "工矿通信用海",
    "20": "交通运输用海",
    "21": "游憩用海",
    "22": "特殊用海",
    "23": "其他土地",
    "24": "其他海域",
}

CONTROL_LINE_TYPES: dict[str, str] = {
    "ecological_red_line": "生态保护红线",
    "permanent_basic_farmland": "永久基本农田",
    "urban_development_boundary": "城镇开发边界",
}

# code list name (as used by ``codes:`` in collections/*.yaml) -> {code: name}
CODE_LISTS: dict[str, dict[str, str]] = {
    "land_survey_classes": LAND_SURVEY_CLASSES,
    "planning_use_classes": PLANNING_USE_CLASSES,
    "control_line_types": CONTROL_LINE_TYPES,
}


def land_class(code: str) -> tuple[str, str, str, str]:
    """``(land_code, land_name, class_code, class_name)`` of a survey land code; KeyError if unknown."""
    first = LAND_SURVEY_PARENT[code]
    return code, LAND_SURVEY_CLASSES[code], first, LAND_SURVEY_FIRST[first]
