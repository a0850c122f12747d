"""The package's layering, read from every module's imports (``ast``, nothing is imported).

Three tiers (README, "Layout"):
- the entry points (``app``, ``cli``, ``seed``) may import anything;
- a capability imports the floor only, never another capability's internals, nor an entry point;
- the floor imports neither a capability nor an entry point.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

PACKAGE = ROOT / "server"
ENTRY = {"app", "cli", "commands"}
FLOOR = {
    "assets", "cache", "catalog", "codes", "credentials", "crs", "elevation", "errors", "extents", "filters", "handles",
    "html", "observability", "params", "pgconn", "policy", "queryables", "settings", "sheets", "sources",
    "stac_catalog", "stores", "tiling", "web",
}
CAPABILITIES = {
    "common", "features", "processes", "profiles", "raster", "release", "sample", "stac_api", "styles", "tiles",
    "scene", "threed", "viewer", "wmts",
}


def _part(module: str) -> str:
    """The top-level part of ``server`` that a dotted module name lies in ("" outside the package)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "server" and len(parts) > 1 else ""


def _imports(path: Path, root: Path = ROOT) -> list[tuple[int, str, str]]:
    """(line, module, name) of every import of the package in a file under ``root``; name "" for ``import x``."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # ``from server import cache`` imports the module server.cache
                module = f"{base}.{alias.name}" if base == "server" else base
                found.append((node.lineno, module, alias.name))
    return [(line, module, name) for line, module, name in found if _part(module)]


def _modules() -> list[tuple[Path, str]]:
    return [(p, p.relative_to(PACKAGE).parts[0].removesuffix(".py")) for p in sorted(PACKAGE.rglob("*.py"))]


def violations() -> list[str]:
    """Every import that breaks the layering, as ``file:line imports module``."""
    out: list[str] = []
    for path, part in _modules():
        if part in ENTRY or part == "__init__":
            continue
        for line, module, _name in _imports(path):
            target = _part(module)
            if target == part or target in FLOOR:
                continue
            tier = "the floor" if part in FLOOR else f"capability '{part}'"
            what = "an entry point" if target in ENTRY else f"capability '{target}'"
            message = f"{path.relative_to(ROOT)}:{line}: {tier} imports {what} ({module})"
            if message not in out:  # one line per import statement, not per name
                out.append(message)
    return out


def test_every_part_of_the_package_has_a_tier():
    parts = {part for _, part in _modules()} - {"__init__"}
    assert parts == ENTRY | FLOOR | CAPABILITIES, "give each folder or module one tier (README, Layout)"
    assert not (ENTRY & FLOOR or ENTRY & CAPABILITIES or FLOOR & CAPABILITIES)


def test_capabilities_import_only_the_floor_and_the_floor_no_capability():
    found = violations()
    assert not found, "imports across the layers:\n" + "\n".join(found)


def test_the_check_sees_every_form_of_import(tmp_path):
    bad = tmp_path / "server" / "sources" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "import server.app\nfrom server import tiles\nfrom ..raster import terrain\n"
        "def f():\n    from server.features.routes import router\n",
        encoding="utf-8",
    )
    imports = {(module, name) for _, module, name in _imports(bad, tmp_path)}
    assert imports == {("server.app", ""), ("server.tiles", "tiles"), ("server.raster", "terrain"),
                       ("server.features.routes", "router")}
