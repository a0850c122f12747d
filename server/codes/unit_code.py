"""The 28-character real estate unit code (不动产单元代码, GB/T 37346-2019).

==========  =====  ==================================================================
positions   width  meaning
==========  =====  ==================================================================
1-6         6      county-level division code (GB/T 2260)
7-9         3      cadastral zone (地籍区)
10-12       3      cadastral subzone (地籍子区)
13          1      ownership: G state, J collective, Z undetermined
14          1      parcel type (宗地特征码), see ``PARCEL_TYPES``
15-19       5      parcel sequence 00001-99999 (positions 1-19: the parcel code)
20          1      fixture type: F building, L forest/trees, Q other, W none
21-28       8      fixture number; 00000000 when position 20 is W
==========  =====  ==================================================================

Parcel type A (collective land ownership) only goes with ownership J. Errors name every wrong
1-based position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.errors import InvalidParameter

UNIT_CODE_RE = re.compile(r"^\d{12}[GJZ][ABSXCDEFLNHGWY]\d{5}[FLQW]\d{8}$", re.ASCII)

OWNERSHIPS: dict[str, str] = {"G": "国家土地所有权", "J": "集体土地所有权", "Z": "土地所有权未确定或有争议"}
PARCEL_TYPES: dict[str, str] = {
    "A": "集体土地所有权宗地",
    "B": "建设用地使用权宗地（地表）",
    "S": "建设用地使用权宗地（地上）",
    "X": "建设用地使用权宗地（地下）",
    "C": "宅基地使用权宗地",
    "D": "土地承包经营权宗地（耕地）",
    "E": "林地使用权宗地（承包经营）",
    "F": "土地承包经营权宗地（草地）",
    "L": "林地使用权宗地",
    "N": "农用地使用权宗地（非耕地、林地、草地）",
    "H": "海域使用权宗海",
    "G": "无居民海岛使用权海岛",
    "W": "使用权未确定或有争议的宗地",
    "Y": "其他使用权宗地",
}
FIXTURE_TYPES: dict[str, str] = {"F": "房屋等建筑物、构筑物", "L": "森林或林木", "Q": "其他", "W": "无定着物"}

_DIGIT_SPANS = ((1, 6, "county code"), (7, 9, "cadastral zone"), (10, 12, "cadastral subzone"),
                (15, 19, "parcel sequence"), (21, 28, "fixture number"))
_LETTER_SLOTS = ((13, "ownership", OWNERSHIPS), (14, "parcel type", PARCEL_TYPES), (20, "fixture type", FIXTURE_TYPES))


@dataclass(frozen=True)
class UnitCode:
    """A parsed, valid unit code; every part is kept as the text it has in the code."""

    county: str
    zone: str
    subzone: str
    ownership: str
    parcel_type: str
    sequence: str
    fixture_type: str
    fixture_number: str

    @property
    def code(self) -> str:
        """The 28-character code."""
        return self.parcel_code + self.fixture_type + self.fixture_number

    @property
    def parcel_code(self) -> str:
        """Positions 1-19: the parcel code (宗地代码)."""
        return self.county + self.zone + self.subzone + self.ownership + self.parcel_type + self.sequence

    @property
    def display(self) -> str:
        """The code grouped 6-6-7-9 for reading: ``330212 001002 GB00001 W00000000``."""
        c = self.code
        return f"{c[:6]} {c[6:12]} {c[12:19]} {c[19:]}"

    @property
    def cadastral_subzone(self) -> str:
        """Positions 1-12: county + zone + subzone."""
        return self.county + self.zone + self.subzone

    def __str__(self) -> str:
        return self.code


def _shown(code: str) -> str:
    text = code if len(code) <= 40 else code[:37] + "..."
    return text.encode("unicode_escape").decode("ascii")


def _letters(options: dict[str, str]) -> str:
    keys = list(options)
    return ", ".join(keys[:-1]) + " or " + keys[-1]


def _position_errors(code: str) -> list[str]:
    """Every wrong position of a 28-character string, as readable phrases in position order."""
    problems: list[tuple[int, str]] = []
    for first, last, what in _DIGIT_SPANS:
        bad = [str(i) for i in range(first, last + 1) if not ("0" <= code[i - 1] <= "9")]
        if bad:
            label = "position" if len(bad) == 1 else "positions"
            problems.append((first, f"{label} {', '.join(bad)} ({what}) must be digits"))
    for pos, what, options in _LETTER_SLOTS:
        ch = code[pos - 1]
        if ch not in options:
            problems.append((pos, f"position {pos} ({what}) is '{_shown(ch)}', expected {_letters(options)}"))
    if code[14:19] == "00000":
        problems.append((15, "positions 15-19 (parcel sequence) must be 00001-99999, not 00000"))
    if code[12] != "J" and code[13] == "A":
        problems.append((14, "position 14 (parcel type) 'A' (collective land ownership) requires "
                             f"position 13 (ownership) = 'J', not '{_shown(code[12])}'"))
    if code[19] == "W" and code[20:] != "00000000":
        problems.append((21, "positions 21-28 (fixture number) must be 00000000 when position 20 is 'W' (no fixture)"))
    return [text for _, text in sorted(problems, key=lambda p: p[0])]


def unit_code_problems(code: object) -> list[str]:
    """Why ``code`` is not a valid unit code; empty when it is."""
    if not isinstance(code, str):
        return ["a unit code is a text of 28 characters"]
    if len(code) != 28:
        return [f"it has {len(code)} characters, expected 28"]
    return _position_errors(code)


def parse_unit_code(code: str) -> UnitCode:
    """Parse and validate a unit code; ``InvalidParameter`` names each wrong position and why."""
    problems = unit_code_problems(code)
    if problems:
        shown = _shown(code) if isinstance(code, str) else type(code).__name__
        raise InvalidParameter(f"Unit code '{shown}' is not valid: " + "; ".join(problems) + ".")
    assert UNIT_CODE_RE.match(code)
    return UnitCode(code[:6], code[6:9], code[9:12], code[12], code[13], code[14:19], code[19], code[20:])


def is_unit_code(code: object) -> bool:
    """True when ``code`` is a valid unit code."""
    return isinstance(code, str) and not unit_code_problems(code)


def normalize_unit_code(text: str) -> str:
    """Drop the spaces and hyphens of a grouped code and upper-case its letters (no validation)."""
    return "".join(ch for ch in text if ch not in " -\t").upper()


def make_unit_code(
    county: str,
    zone: int | str,
    subzone: int | str,
    ownership: str,
    parcel_type: str,
    sequence: int | str,
    fixture_type: str = "W",
    fixture_number: int | str = 0,
) -> UnitCode:
    """Build and validate a unit code; numbers are zero-padded to their widths."""

    def pad(value: int | str, width: int) -> str:
        return f"{value:0{width}d}" if isinstance(value, int) else str(value)

    text = (
        str(county) + pad(zone, 3) + pad(subzone, 3) + ownership + parcel_type + pad(sequence, 5)
        + fixture_type + pad(fixture_number, 8)
    )
    return parse_unit_code(text)
