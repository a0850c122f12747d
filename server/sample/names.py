"""Synthetic names and identifiers: villages, communities, people, organisations, ID numbers.

Resident ID numbers follow GB 11643 (region, birth date, sequence, check character); organisation
codes follow the unified social credit code of GB 32100 (with its check character). All are
invented; none belongs to a real person or body.
"""

from __future__ import annotations

import numpy as np

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志文辉鹏飞斌宇浩凯健俊帆帅旭宁龙林欣"
    "佳雪琳晨阳波海峰亮雷成振东南春秋冬松柏梅竹兴旺福庆德仁义礼智信忠孝和顺安康泰宏伟嘉怡婷慧颖晓彤"
)
PLACE_A = "东西南北前后上下大小新老中高长横塘溪山湖桥岙岭坑田"
PLACE_B = "家庄岙塘桥溪山湾岭头坪墩浦港埠坂洋畈林园"
VILLAGE_FIRST = "梅竹松桃杏李兰荷柳枫石金银龙凤鹤云青白红黄马牛鹿凤"
COMMUNITY = (
    "河滨", "中山", "人民", "解放", "新华", "文昌", "春晖", "阳光", "锦绣", "和平", "东湖", "西湖",
    "南苑", "北苑", "翠苑", "景华", "明珠", "长春", "瑞丰", "星光", "嘉禾", "百丈", "望春", "钱湖",
)
COMPANY_STEM = "鑫华盛恒泰宏达瑞丰源祥和安兴隆昌荣嘉信诚越甬海天宇"
REGION = "330212"

_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.array(list("10X98765432"))
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)])
_ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2])


def _pairs(first: str, second: str, rng: np.random.Generator) -> list[str]:
    combos = [a + b for a in first for b in second if a != b]
    return [combos[i] for i in rng.permutation(len(combos))]


def subzone_names(urban: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Unique names: ``…社区`` for urban subzones, ``…村`` for rural ones."""
    villages = iter(_pairs(PLACE_A + VILLAGE_FIRST, PLACE_B, rng))
    communities = iter(list(COMMUNITY) + _pairs(COMPANY_STEM, "苑城园庭", rng))
    return [next(communities) + "社区" if u else next(villages) + "村" for u in urban]


def person_names(count: int, rng: np.random.Generator) -> list[str]:
    """Chinese personal names: common surnames, one or two given characters."""
    weights = 1.0 / np.arange(1, len(SURNAMES) + 1) ** 0.9
    sur = rng.choice(len(SURNAMES), count, p=weights / weights.sum())
    g1 = rng.integers(0, len(GIVEN), count)
    g2 = rng.integers(0, len(GIVEN), count)
    two = rng.random(count) < 0.7
    return [
        SURNAMES[s] + GIVEN[a] + (GIVEN[b] if t else "")
        for s, a, b, t in zip(sur.tolist(), g1.tolist(), g2.tolist(), two.tolist(), strict=True)
    ]


_BIRTH_START = np.datetime64("1940-01-01")
_BIRTH_DAYS = int((np.datetime64("2000-12-31") - _BIRTH_START).astype(int)) + 1


def person_slots(count: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct (birth date, sequence) slots for ``count`` people, in random order."""
    space = _BIRTH_DAYS * 999
    slots = np.empty(0, dtype=np.int64)
    for _ in range(16):
        extra = rng.integers(0, space, int(count * 1.05) + 64)
        slots = np.unique(np.concatenate([slots, extra]))
        if len(slots) >= count:
            break
    return rng.permutation(slots)[:count]


def resident_ids(slots: np.ndarray, region: str = REGION) -> list[str]:
    """18-character resident ID numbers (GB 11643) for people born 1940-2000 in ``region``."""
    if len(slots) == 0:
        return []
    slots = np.asarray(slots, dtype=np.int64)
    births = (_BIRTH_START + (slots // 999)).astype("datetime64[D]").astype(str)
    seq = slots % 999 + 1
    body = [f"{region}{b.replace('-', '')}{s:03d}" for b, s in zip(births.tolist(), seq.tolist(), strict=True)]
    digits = np.frombuffer("".join(body).encode("ascii"), dtype=np.uint8).reshape(len(body), 17) - 48
    check = _ID_CHECK[(digits.astype(np.int64) @ _ID_WEIGHTS) % 11]
    return [b + c for b, c in zip(body, check.tolist(), strict=True)]


def resident_id_valid(value: str) -> bool:
    """GB 11643 check of an 18-character resident ID number."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    digits = np.array([int(c) for c in value[:17]])
    return _ID_CHECK[int(digits @ _ID_WEIGHTS) % 11] == value[17]


def _org_code(body8: str) -> str:
    values = [_USCC_CHARS.index(c) for c in body8]
    check = 11 - int(np.dot(values, _ORG_WEIGHTS)) % 11
    return body8 + ("X" if check == 10 else "0" if check == 11 else str(check))


def credit_code(dept_type: str, serial: int, region: str = REGION) -> str:
    """A unified social credit code: department+type (e.g. ``91`` company), region, org code, check."""
    body8 = f"{serial:08d}"
    body = dept_type + region + _org_code(body8)
    values = np.array([_USCC_CHARS.index(c) for c in body])
    check = (31 - int(values @ _USCC_WEIGHTS) % 31) % 31
    return body + _USCC_CHARS[check]


def credit_code_valid(value: str) -> bool:
    """GB 32100 check character of a unified social credit code."""
    if len(value) != 18 or any(c not in _USCC_CHARS for c in value):
        return False
    values = np.array([_USCC_CHARS.index(c) for c in value[:17]])
    return _USCC_CHARS[(31 - int(values @ _USCC_WEIGHTS) % 31) % 31] == value[17]


def company_name(kind: str, serial: int, county: str) -> str:
    """An invented company name of a given business kind (置业, 制造, 物流 ...); distinct per serial."""
    n = len(COMPANY_STEM)
    mixed = (serial * 7919 + 13) % (n * n)  # a bijection on 0..n²-1 (7919 is prime to n²)
    a, b, branch = COMPANY_STEM[mixed % n], COMPANY_STEM[mixed // n], serial // (n * n)
    name = f"{county}{a}{b}{kind}有限公司"
    return name if branch == 0 else f"{name}第{branch}分公司"
