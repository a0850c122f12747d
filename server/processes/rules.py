"""The site-compliance configuration (``config/compliance.yaml``): layers, limits and verdict rules.

Rules are data; this module only knows the three kinds of test (``overlap``, ``outside``,
``use_conflict``) and how a verdict is combined: the most severe rule that fires wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

RULES_FILE = "compliance.yaml"
VERDICTS = ("approve", "flag", "conflict", "reject")  # least to most severe
Verdict = Literal["approve", "flag", "conflict", "reject"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    """Size limits on a site and the run timeout."""

    sync_max_area_m2: float = Field(gt=0)
    max_area_m2: float = Field(gt=0)
    max_vertices: int = Field(gt=3)
    timeout_s: float = Field(gt=0)


class Rule(_Strict):
    """One verdict rule (see the file's header for the kinds)."""

    id: str
    kind: Literal["overlap", "outside", "use_conflict"]
    layer: str
    values: tuple[str, ...] = ()
    planned_uses: tuple[str, ...] | None = None
    compatible_everywhere: tuple[str, ...] = ()
    min_m2: float = Field(default=0.01, ge=0)
    verdict: Literal["flag", "conflict", "reject"]
    reason: dict[Literal["zh", "en"], str]

    def measure(self, groups: Mapping[str, float], site_m2: float, planned_use: str | None) -> float | None:
        """The area the rule is about, given the layer's areas by group value; None when it does not apply."""
        if self.kind == "overlap":
            return sum(a for v, a in groups.items() if v in self.values)
        if self.kind == "outside":
            if self.planned_uses is not None and planned_use not in self.planned_uses:
                return None
            return max(site_m2 - sum(a for v, a in groups.items() if v in self.values), 0.0)
        if planned_use is None or planned_use in self.compatible_everywhere:
            return None
        return sum(a for v, a in groups.items() if v != planned_use)

    def text(self, lang: str, area_m2: float, planned_use: str | None) -> str:
        """The reason in ``lang`` (zh or en)."""
        template = self.reason.get("en" if lang == "en" else "zh") or next(iter(self.reason.values()))
        return template.format(area_m2=f"{area_m2:.2f}", planned_use=planned_use or "")


class ComplianceConfig(_Strict):
    """The whole file."""

    layers: dict[str, str | None]
    limits: Limits
    rules: tuple[Rule, ...]


def load_compliance(config_dir: Path, known_layers: set[str]) -> ComplianceConfig:
    """Read and check ``compliance.yaml``; ``ValueError`` naming the file and the problem."""
    path = Path(config_dir) / RULES_FILE
    try:
        config = ComplianceConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    unknown = sorted((set(config.layers) - known_layers) | {r.layer for r in config.rules} - set(config.layers))
    if unknown:
        raise ValueError(f"{path}: layers {unknown} are not vector collections listed under 'layers'")
    return config


def combine(fired: list[Verdict]) -> Verdict:
    """The most severe verdict of those fired; approve when none did."""
    return max(fired, key=VERDICTS.index, default="approve")
