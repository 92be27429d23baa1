"""The packages depend on each other one way: agent -> common; export -> trainer -> common."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "common", "export", "trainer")
ALLOWED = {"agent": {"agent", "common"}, "common": {"common"}, "trainer": {"trainer", "common"},
           "export": {"export", "trainer", "common"}}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every import in `path`, including ones inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_the_packages_below_it(package):
    wrong = {f"{path.relative_to(ROOT)} imports {name}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for name in imported_packages(path) & set(PACKAGES) - ALLOWED[package]}
    assert not wrong, sorted(wrong)


def test_the_agent_and_common_never_import_torch():
    offenders = [str(p.relative_to(ROOT)) for package in ("agent", "common") for p in (ROOT / package).rglob("*.py")
                 if imported_packages(p) & {"torch", "torchvision", "onnx"}]
    assert not offenders
