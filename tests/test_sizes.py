"""Size limits of the code in ``server/``, read with ``ast`` (nothing is imported).

A function longer than ``MAX_FUNCTION_LINES`` or a module longer than ``MAX_MODULE_LINES`` is split by
responsibility. ``python -m tests.test_sizes`` (from the checkout) lists what is over.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

PACKAGE = ROOT / "server"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def oversized(package: Path = PACKAGE) -> list[str]:
    """Every module and function over its limit, as ``file[:line] name: N lines``."""
    out: list[str] = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(package.parent)
        if (n := len(text.splitlines())) > MAX_MODULE_LINES:
            out.append(f"{rel}: {n} lines (module limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    out.append(f"{rel}:{node.lineno} {node.name}: {length} lines (function limit {MAX_FUNCTION_LINES})")
    return out


def test_no_oversized_module_or_function():
    assert oversized() == []


def test_oversized_finds_long_modules_and_functions(tmp_path):
    pkg = tmp_path / "server"
    pkg.mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (pkg / "long_function.py").write_text(f"def f():\n{body}\n\ndef g():\n    return 1\n", encoding="utf-8")
    (pkg / "long_module.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1), encoding="utf-8")
    (pkg / "fine.py").write_text("def h():\n    return 2\n", encoding="utf-8")
    found = oversized(pkg)
    assert len(found) == 2
    assert found[0].endswith(f"long_function.py:1 f: {MAX_FUNCTION_LINES + 1} lines (function limit 60)")
    assert found[1].endswith(f"long_module.py: {MAX_MODULE_LINES + 1} lines (module limit 400)")


if __name__ == "__main__":
    print("\n".join(oversized()) or "nothing over the limits")
