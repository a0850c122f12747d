"""Right holders of the sample parcels: village households, companies, public bodies, collectives.

People belong to a subzone's pool of households (each household holds at most one homestead and
any number of contracted plots); organisations come from deterministic pools, so the same company
or body holds several parcels under one name and one credit code.
"""

from __future__ import annotations

import numpy as np

from server.sample import names
from server.sample.county import COUNTY_NAME

# owner kind -> (credit code department+type, business word or None, pool divisor)
COMPANY_KINDS = {
    "developer": ("91", "置业"), "trade": ("91", "商贸"), "logistics": ("91", "物流"),
    "factory": ("91", "制造"), "mining": ("91", "矿业"), "company_farm": ("91", "农业开发"),
}
PUBLIC_BODIES = {
    "government": ("11", ("人民政府", "自然资源和规划局", "发展和改革局", "住房和城乡建设局", "交通运输局",
                          "水利局", "农业农村局", "财政局", "公安局", "市场监督管理局")),
    "institution": ("12", ("第一中学", "第二中学", "实验小学", "职业高级中学", "人民医院", "中医院",
                           "妇幼保健院", "图书馆", "文化馆", "体育中心", "疾病预防控制中心")),
    "utility": ("91", ("水务集团有限公司", "燃气有限公司", "供电有限公司", "环境卫生管理有限公司")),
    "park": ("12", ("园林绿化管理中心",)),
    "transport": ("91", ("公共交通有限公司", "交通投资集团有限公司")),
    "special": ("11", ("机关事务管理局",)),
    "forest_farm": ("12", ("国有林场",)),
}
PERSON_KINDS = ("household", "person")


def household_counts(person_parcels_per_unit: np.ndarray) -> np.ndarray:
    """Households in each subzone's pool, from the number of parcels held by people there."""
    return np.ceil(person_parcels_per_unit * 0.6).astype(np.int64) + 3


class Owners:
    """Assigns right holders; ``slots`` are the pre-drawn distinct ID slots of every person."""

    def __init__(self, households: np.ndarray, slots: np.ndarray, unit_names: list[str], scale: int) -> None:
        self.households = households
        self.base = np.cumsum(households) - households
        self.slots = slots
        self.unit_names = unit_names
        self.company_pool = max(8, scale // 150)

    def assign(self, kinds: np.ndarray, unit: np.ndarray, rng: np.random.Generator) -> tuple[list[str], list[str]]:
        """Names and ID numbers for parcels given their owner kind and subzone."""
        names_out = np.empty(len(kinds), dtype=object)
        ids_out = np.empty(len(kinds), dtype=object)
        self._people(kinds, unit, rng, names_out, ids_out)
        for kind, (dept, word) in COMPANY_KINDS.items():
            m = kinds == kind
            serial = rng.integers(0, self.company_pool, int(m.sum()))
            names_out[m] = [names.company_name(word, int(s), COUNTY_NAME) for s in serial]
            ids_out[m] = [names.credit_code(dept, 100_000 * (1 + list(COMPANY_KINDS).index(kind)) + int(s))
                          for s in serial]
        for k, (kind, (dept, bodies)) in enumerate(PUBLIC_BODIES.items()):
            m = kinds == kind
            pick = rng.integers(0, len(bodies), int(m.sum()))
            names_out[m] = [COUNTY_NAME + bodies[p] for p in pick]
            ids_out[m] = [names.credit_code(dept, 10_000 * (k + 1) + int(p)) for p in pick]
        m = kinds == "collective"
        names_out[m] = [self._collective(int(u)) for u in unit[m]]
        ids_out[m] = [names.credit_code("N2", 1_000_000 + int(u)) for u in unit[m]]
        return names_out.tolist(), ids_out.tolist()

    def _collective(self, unit: int) -> str:
        name = self.unit_names[unit]
        return name + "股份经济合作社"

    def _people(self, kinds, unit, rng, names_out, ids_out) -> None:
        """Households get homesteads (one each) and contracted plots (any number)."""
        person = np.isin(kinds, PERSON_KINDS)
        idx = np.flatnonzero(person)
        if idx.size == 0:
            return
        member = np.empty(idx.size, dtype=np.int64)
        for u in np.unique(unit[idx]):
            at = unit[idx] == u
            hh = int(self.households[u])
            homes = at & (kinds[idx] == "household")
            n_home = int(homes.sum())
            member[homes] = rng.permutation(hh)[:n_home] if n_home <= hh else rng.integers(0, hh, n_home)
            others = at & ~homes
            member[others] = rng.integers(0, hh, int(others.sum()))
        pid = self.base[unit[idx]] + member
        uniq, inverse = np.unique(pid, return_inverse=True)
        person_rng = np.random.default_rng([int(uniq[0]), len(uniq)]) if len(uniq) else rng
        full = names.person_names(len(uniq), person_rng)
        ids = names.resident_ids(self.slots[uniq])
        names_out[idx] = [full[i] for i in inverse]
        ids_out[idx] = [ids[i] for i in inverse]
