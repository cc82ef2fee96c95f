"""The project's shape is a checked contract, not a hope."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_leaf_libraries_never_import_the_application():
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 5 kept, 0 broken" in r.stdout


def test_top_level_layout():
    for name in ("pyproject.toml", "sandbox", "connectors", "policies", "dp", "notebooks", "tests", "README.md",
                 "bench", "Makefile", "ARCHITECTURE.md", ".ci/run"):
        assert (ROOT / name).exists(), name


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text().split("##")[0]
    assert "make demo" in head and "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_public_api_of_the_application_is_pinned():
    import sandbox

    assert sorted(sandbox.__all__) == ["Client", "LocalClient", "Settings", "Warehouse"]


def test_error_codes_are_unique_and_round_trip():
    from sandbox import errors

    codes = [c.code for c in errors.ERRORS_BY_CODE.values()]
    assert len(codes) == len(set(codes))
    for code, cls in errors.ERRORS_BY_CODE.items():
        again = errors.from_dict(cls("m", details={"x": 1}).to_dict())
        assert type(again) is cls and again.details == {"x": 1}


#: the only modules directly under sandbox/: the facade and what every wing shares (ARCHITECTURE.md)
TOP_MODULES = {"__init__.py", "warehouse.py", "context.py", "auth.py", "settings.py", "errors.py",
               "client.py"}  # client.py: the public ``sandbox.client.Client`` import, handed on


def test_only_the_facade_and_shared_modules_sit_directly_under_sandbox():
    assert {p.name for p in (ROOT / "sandbox").glob("*.py")} == TOP_MODULES


def test_every_wing_has_a_face_that_names_its_modules():
    """Each subpackage's __init__ says what the wing is for (a docstring) and lists its modules."""
    for init in sorted((ROOT / "sandbox").rglob("__init__.py")):
        if "migrations" in init.parts:
            continue
        tree = ast.parse(init.read_text())
        doc = ast.get_docstring(tree)
        assert doc and len(doc) > 40, f"{init.relative_to(ROOT)} has no docstring face"
        if init.parent == ROOT / "sandbox":
            continue
        names = [n for n in tree.body if isinstance(n, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
        assert names, f"{init.relative_to(ROOT)} has no __all__"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(target: str, modules: dict[str, Path], at_least: str = "") -> str | None:
    """The longest known module that ``target`` names (at least ``at_least``), or None."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in modules and len(candidate) >= len(at_least):
            return candidate
    return None


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> modules it imports (anywhere in the file, lazy imports included), over the application,
    the leaf libraries, the benchmarks and the tests. Bare names (``from timing import …`` in bench/,
    ``from pg import …`` in tests/) resolve to a sibling file or to tests/ itself, as on sys.path there."""
    files = [p for top in ("sandbox", "connectors", "policies", "dp", "bench", "tests")
             for p in (root / top).rglob("*.py") if ".venv" not in p.parts]
    modules = {_module_name(p, root): p for p in files}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            else:
                continue
            for target in targets:
                hit = _resolve(target, modules)
                if hit is None and path.relative_to(root).parts[0] in ("bench", "tests"):
                    # a bare name on sys.path: a sibling file, or a helper at the top of tests/
                    for prefix in (name.rsplit(".", 1)[0], "tests"):
                        hit = _resolve(f"{prefix}.{target}", modules, at_least=f"{prefix}.{target.split('.')[0]}")
                        if hit is not None:
                            break
                if hit is not None and hit != name:
                    graph[name].add(hit)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in list(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_another_that_imports_it_back():
    """No import circle anywhere (lazy imports count: a circle is a missing lower module)."""
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_circle(tmp_path: Path):
    for top in ("sandbox", "bench", "tests"):
        (tmp_path / top).mkdir()
    (tmp_path / "sandbox" / "__init__.py").write_text("")
    (tmp_path / "sandbox" / "a.py").write_text("from . import b\n")
    (tmp_path / "sandbox" / "b.py").write_text("def f():\n    from .a import x\n")
    (tmp_path / "bench" / "run.py").write_text("from timing import t\n")
    (tmp_path / "bench" / "timing.py").write_text("from run import r\n")
    assert sorted(cycles(import_graph(tmp_path))) == [["bench.run", "bench.timing"], ["sandbox.a", "sandbox.b"]]
