"""The packages depend on each other one way: agent -> common; export -> trainer -> common.
Within them, no module imports one that imports it back, however long the way round."""
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


def module_name(relative: str) -> str:
    """`agent/sinks/__init__.py` -> `agent.sinks`, `agent/observers.py` -> `agent.observers`."""
    name = relative.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """Which project modules each module of `sources` (relative path -> source text) makes Python run.

    Every import counts, inside functions and `TYPE_CHECKING` too. `import a.b.c` and
    `from a.b import c` (c a module) run a.b.c and the packages above it; those that contain
    the importing module are already running and are left out unless imported by name.
    """
    packages = {module_name(p) for p in sources if p.endswith("__init__.py")}
    known = {module_name(p) for p in sources}
    graph = {}
    for path, text in sources.items():
        name = module_name(path)
        above = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets = set()
        for node in ast.walk(ast.parse(text, path)):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package `name` is (in)
                    parts = name.split(".") if name in packages else name.split(".")[:-1]
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
        edges = set()
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                module = ".".join(parts[:i])
                if module in known and module != name and (module == target or module not in above):
                    edges.add(module)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (first module repeated last) through each group of modules that import one another."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(min((shortest_cycle(graph, group, start) for start in sorted(group)), key=len) for group in groups)


def shortest_cycle(graph: dict[str, set[str]], group: set[str], start: str) -> list[str]:
    """A shortest way from `start` back to itself through `group` (modules that import one another)."""
    paths, frontier = {start: [start]}, [start]
    while not any(start in graph[v] for v in frontier):
        reached = []
        for v in frontier:
            for w in sorted(graph[v] & group - paths.keys()):
                paths[w] = paths[v] + [w]
                reached.append(w)
        frontier = reached
    return paths[next(v for v in frontier if start in graph[v])] + [start]


def project_sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def test_no_module_imports_itself_round_a_circle():
    found = cycles(import_graph(project_sources()))
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_cycle_finder_sees_direct_lazy_relative_and_package_circles():
    assert cycles(import_graph({"p/__init__.py": "", "p/a.py": "from p.b import x",
                                "p/b.py": "def f():\n    from p import a"})) == [["p.a", "p.b", "p.a"]]
    assert cycles(import_graph({"p/__init__.py": "", "p/a.py": "from . import b", "p/b.py": "from .a import y"})) \
        == [["p.a", "p.b", "p.a"]]
    # p.a imports q.b, which runs q/__init__.py first; that imports p.a.
    assert cycles(import_graph({"p/__init__.py": "", "p/a.py": "import q.b", "q/__init__.py": "from q.c import z",
                                "q/b.py": "", "q/c.py": "from p.a import y"})) == [["p.a", "q", "q.c", "p.a"]]
    # A module of a package importing a sibling, or a name its package defines, is no circle.
    assert cycles(import_graph({"p/__init__.py": "from p.a import x", "p/a.py": "from p.b import y",
                                "p/b.py": "", "p/s/__init__.py": "class S: ...", "p/s/m.py": "from p.s import S"})) == []
