"""The life of each parcel (规、批、供、用、登、管) as dated records linked by its code.

One record per event, generated from the parcel's right and use, consistently with it: construction
land (parcel types B/S/X) goes through farmland conversion or expropriation approval (when it was not
already built-up), supply by transfer contract (price, term by use) or allocation (no price), the
land-use and construction planning permits, construction start and completion acceptance (when it has
buildings), registration (first registration on the parcel's registration date, then transfers,
mortgages and their cancellations) and supervision (inspections, violation cases, idle land when
construction started more than a year after supply). Homesteads and contracted land are registered
and supervised only. Records before the fixture exists carry the 19-character parcel code, the others
the 28-character unit code. The record's geometry is its parcel's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

END = dt.date(2025, 6, 30)  # the sample's "today": nothing is dated later
AUTHORITY = {
    "county": "示例县行政审批局",  # permits, allocation decisions and idle-land findings
    "province": "浙江省人民政府",
    "trading": "示例县公共资源交易中心",  # transfer contracts, let by public tender
    "works": "示例县建设工程质量安全监督站",  # construction start and completion acceptance
    "registry": "示例县不动产登记中心",
    "inspector": "示例县自然资源执法监察大队",
}
STAGE_NAMES = {"planning": "规划", "approval": "批地", "supply": "供地", "use": "用地", "registration": "登记",
               "supervision": "监管"}
# survey land code of a construction parcel -> (planning use code, transfer term in years)
USE_OF_LAND = {"0701": ("07", 70), "05H1": ("09", 40), "0508": ("11", 50), "0601": ("10", 50),
               "0602": ("10", 50), "08H1": ("08", 50), "08H2": ("08", 50), "0809": ("13", 50),
               "0810": ("14", 50), "1005": ("12", 50), "09": ("15", 50)}
PRICE_PER_M2 = {"07": (6_000, 18_000), "09": (3_000, 9_000), "11": (400, 900), "10": (300, 800)}
BANKS = ("中国工商银行示例县支行", "中国农业银行示例县支行", "中国建设银行示例县支行", "示例县农村商业银行")
VIOLATIONS = (("未批先建", "立案查处"), ("超面积占地", "整改中"), ("擅自改变用途", "已结案"),
              ("非法占用耕地", "立案查处"))
FIELDS = ("event_id", "code", "parcel_code", "land_use", "stage", "stage_name", "event_type", "event_name",
          "event_date", "doc_number", "authority", "planned_use", "area_m2", "supply_method", "price_cny",
          "term_years", "mortgage_amount_cny", "holder_name", "status", "details")


@dataclass
class Events:
    """Records under construction: one list per field."""

    columns: dict[str, list[Any]] = field(default_factory=lambda: {f: [] for f in FIELDS})
    parcel: list[int] = field(default_factory=list)

    def add(self, i: int, parcel_code: str, unit_code: str, land_use: str, stage: str, event_type: str,
            event_name: str, date: dt.date, doc: str, authority: str, code: str | None = None,
            **extra: Any) -> None:
        """Append one record of parcel ``i``; ``code`` defaults to the unit code."""
        row: dict[str, Any] = dict.fromkeys(FIELDS)
        row.update(extra)
        number = sum(1 for p in self.parcel[-20:] if p == i) + 1
        row.update(event_id=f"{parcel_code}-{number:02d}", code=code or unit_code, parcel_code=parcel_code,
                   land_use=land_use, stage=stage, stage_name=STAGE_NAMES[stage], event_type=event_type,
                   event_name=event_name, event_date=date.isoformat(), doc_number=doc, authority=authority)
        for name, value in row.items():
            self.columns[name].append(value)
        self.parcel.append(i)


def _day(rng: np.random.Generator, lo: int, hi: int) -> dt.timedelta:
    return dt.timedelta(days=int(rng.integers(lo, hi + 1)))


class LifeMaker:
    """Events for the parcels of one chunk (deterministic given the chunk's generator)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.events = Events()

    def run(self, parcels: dict[str, list], areas: list[float], completed: dict[str, str],
            owners: list[str | None]) -> Events:
        """All events of the chunk's parcels (``completed``: parcel code -> first building completion)."""
        for i, (pcode, ucode, ptype, use, reg) in enumerate(zip(
                parcels["parcel_code"], parcels["unit_code"], parcels["parcel_type"], parcels["land_use"],
                parcels["registration_date"], strict=True)):
            registered = dt.date.fromisoformat(reg)
            if ptype in ("B", "S", "X") and use in USE_OF_LAND:
                self._construction(i, pcode, ucode, use, registered, areas[i], completed.get(pcode))
            self._registration(i, pcode, ucode, use, ptype, registered, areas[i], owners[i])
            self._supervision(i, pcode, ucode, use, registered, areas[i])
        return self.events

    def _construction(self, i: int, pcode: str, ucode: str, use: str, registered: dt.date, area: float,
                      completed: str | None) -> None:
        rng, ev = self.rng, self.events
        planned, term = USE_OF_LAND[use]
        supply = registered - _day(rng, 30, 120)
        if completed is not None:  # built before: supplied long enough before its completion
            supply = min(supply, dt.date.fromisoformat(completed) - _day(rng, 500, 1200))
        year = supply.year
        if rng.random() < 0.45:  # was farmland: converted (and expropriated if collective) first
            approved = supply - _day(rng, 60, 365)
            kind, name = (("farmland_conversion", "农用地转用批复") if rng.random() < 0.5
                          else ("expropriation", "土地征收批复"))
            ev.add(i, pcode, ucode, use, "approval", kind, name, approved,
                   f"浙政土〔{approved.year}〕{rng.integers(1, 400)}号", AUTHORITY["province"], code=pcode,
                   planned_use=planned, area_m2=round(area, 2))
        lo, hi = PRICE_PER_M2.get(planned, (0, 0))
        if hi and rng.random() < 0.8:
            price = round(area * float(rng.uniform(lo, hi)), -3)
            ev.add(i, pcode, ucode, use, "supply", "transfer_contract", "国有建设用地使用权出让合同", supply,
                   f"{pcode[:6]}{year}A{rng.integers(1, 99999):05d}", AUTHORITY["trading"], code=pcode,
                   planned_use=planned, area_m2=round(area, 2), supply_method="出让", price_cny=price,
                   term_years=term)
        else:
            ev.add(i, pcode, ucode, use, "supply", "allocation", "国有建设用地划拨决定书", supply,
                   f"{pcode[:6]}{year}H{rng.integers(1, 99999):05d}", AUTHORITY["county"], code=pcode,
                   planned_use=planned, area_m2=round(area, 2), supply_method="划拨")
        permit = supply + _day(rng, 5, 60)
        ev.add(i, pcode, ucode, use, "planning", "land_use_planning_permit", "建设用地规划许可证", permit,
               f"地字第{pcode[:6]}{permit.year}{rng.integers(1, 99999):05d}号", AUTHORITY["county"], code=pcode,
               planned_use=planned, area_m2=round(area, 2))
        if completed is None:
            return
        done = dt.date.fromisoformat(completed)
        latest = (done - supply).days - 300  # at least 300 days of works
        start = supply + dt.timedelta(days=min(int(rng.integers(90, 600)), latest))
        start = max(start, permit + dt.timedelta(days=1))
        ev.add(i, pcode, ucode, use, "planning", "construction_planning_permit", "建设工程规划许可证",
               start - _day(rng, 10, 60), f"建字第{pcode[:6]}{start.year}{rng.integers(1, 99999):05d}号",
               AUTHORITY["county"], code=pcode, planned_use=planned)
        ev.add(i, pcode, ucode, use, "use", "construction_start", "开工", start,
               f"施{start.year}{rng.integers(1, 99999):05d}", AUTHORITY["works"])
        if start - supply > dt.timedelta(days=365):
            found = supply + _day(rng, 380, 450)
            ev.add(i, pcode, ucode, use, "supervision", "idle_land_finding", "闲置土地认定", found,
                   f"闲认〔{found.year}〕{rng.integers(1, 300)}号", AUTHORITY["county"], status="已处置",
                   details=f"约定开工日期后{(start - supply).days - 365}日方开工")
        if done <= END:
            ev.add(i, pcode, ucode, use, "use", "completion_acceptance", "竣工验收", done,
                   f"竣{done.year}{rng.integers(1, 99999):05d}", AUTHORITY["works"])

    def _registration(self, i: int, pcode: str, ucode: str, use: str, ptype: str, registered: dt.date,
                      area: float, owner: str | None) -> None:
        rng, ev = self.rng, self.events

        def cert(day: dt.date) -> str:
            return f"浙({day.year})示例县不动产权第{rng.integers(1, 9_999_999):07d}号"

        ev.add(i, pcode, ucode, use, "registration", "first_registration", "首次登记", registered, cert(registered),
               AUTHORITY["registry"], holder_name=owner, area_m2=round(area, 2))
        if ptype not in ("B", "S", "X", "C"):
            return
        day = registered
        for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):
            day = day + _day(rng, 120, 1500)
            if day > END:
                break
            if rng.random() < 0.55:
                amount = round(area * float(rng.uniform(500, 6000)), -3)
                ev.add(i, pcode, ucode, use, "registration", "mortgage", "抵押权登记", day,
                       f"浙({day.year})示例县不动产证明第{rng.integers(1, 9_999_999):07d}号", AUTHORITY["registry"],
                       mortgage_amount_cny=amount, holder_name=str(rng.choice(BANKS)))
                off = day + _day(rng, 365, 1800)
                if off <= END and rng.random() < 0.5:
                    ev.add(i, pcode, ucode, use, "registration", "mortgage_cancellation", "抵押权注销登记", off,
                           f"注销{off.year}{rng.integers(1, 99999):05d}", AUTHORITY["registry"])
                    day = off
            else:
                ev.add(i, pcode, ucode, use, "registration", "transfer", "转移登记", day, cert(day),
                       AUTHORITY["registry"])

    def _supervision(self, i: int, pcode: str, ucode: str, use: str, registered: dt.date, area: float) -> None:
        rng, ev = self.rng, self.events
        if rng.random() < 0.25:
            day = min(END, registered + _day(rng, 30, 1500))
            ev.add(i, pcode, ucode, use, "supervision", "inspection", "日常巡查", day,
                   f"巡{day.year}{rng.integers(1, 99999):05d}", AUTHORITY["inspector"],
                   status=str(rng.choice(["未发现问题", "未发现问题", "发现疑似问题"])))
        if rng.random() < 0.04:
            day = min(END, registered + _day(rng, 60, 2000))
            kind, status = VIOLATIONS[int(rng.integers(len(VIOLATIONS)))]
            share = float(rng.uniform(0.02, 0.3))
            ev.add(i, pcode, ucode, use, "supervision", "violation_case", "违法用地案件", day,
                   f"示自然资罚〔{day.year}〕{rng.integers(1, 500)}号", AUTHORITY["inspector"],
                   area_m2=round(area * share, 2), status=status, details=f"{kind}，面积约{area * share:.0f}平方米")


def chunk_events(parcels: dict[str, list], geoms: np.ndarray, completed: dict[str, str],
                 rng: np.random.Generator) -> tuple[dict[str, list], np.ndarray]:
    """The events of a chunk's parcels as columns, in event id order, and their geometries (each its parcel's).

    ``completed``: parcel code -> completion date of its first building.
    """
    events = LifeMaker(rng).run(parcels, parcels["area_m2"], completed, parcels["owner_name"])
    order = np.argsort(np.array(events.columns["event_id"]), kind="stable")
    columns = {k: [v[j] for j in order] for k, v in events.columns.items()}
    return columns, geoms[np.array(events.parcel, dtype=np.int64)[order]]
