"""The package's shape: an acyclic import graph, imports at module level only (except optional
extras), every public name importable from the curated `__init__` files, and each `__init__` one
block of explicit re-exports (ruff's isort keeps it sorted)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "simjax"
#: Optional extras (and the standard library's optional backends) may be imported where they are used.
OPTIONAL = {"matplotlib", "pyarrow", "h5py", "nir", "sklearn", "pandas", "torch", "brian2"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """(simjax modules imported at module level, [(line, top-level package) of imports inside functions])."""
    module, is_package = _module_name(path), path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    nested: list[tuple[int, str]] = []

    def visit(node, depth):
        for child in ast.iter_child_nodes(node):
            inner = depth + isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(module, is_package, child)
                names = [target] + [f"{target}.{a.name}" for a in child.names]
            else:
                visit(child, inner)
                continue
            if inner:
                nested.append((child.lineno, names[0].split(".")[0]))
            else:
                top.update(n for n in names if n.split(".")[0] == "simjax")

    visit(tree, 0)
    return top, nested


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets, _ = _imports(path)
        edges = {t for t in targets if t in files and not name.startswith(t + ".")}
        # importing a.b.c runs the __init__ of a and a.b first
        # (not the root package: every module is imported after `simjax/__init__` has begun, and an
        # explicit `from simjax import x` is an edge of its own above)
        for t in list(edges):
            parts = t.split(".")
            ancestors = {".".join(parts[:k]) for k in range(2, len(parts))}
            edges |= {a for a in ancestors if a in files and not name.startswith(a + ".")}
        edges.discard(name)
        graph[name] = edges
    return graph


def test_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    # The top-level package imports everything; cycles through it are what matters least, so
    # start from every module (the facade `simjax/__init__` is allowed to be the root only).
    for node in sorted(graph):
        if node not in state:
            dfs(node)


def test_library_core_does_not_import_the_application():
    graph = _graph()
    core = [m for m in graph if not m.startswith("simjax._app") and m != "simjax" and m != "simjax.__main__"]
    offenders = {m: sorted(t for t in graph[m] if t.startswith("simjax._app")) for m in core}
    assert not {m: t for m, t in offenders.items() if t}


def test_imports_inside_functions_are_optional_extras_only():
    found = []
    for path in PACKAGE.rglob("*.py"):
        for line, package in _imports(path)[1]:
            if package not in OPTIONAL:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {package} inside a function")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("init", sorted(PACKAGE.rglob("__init__.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_init_files_are_one_sorted_block_of_explicit_reexports(init):
    tree = ast.parse(init.read_text())
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    imports = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))]
    first_other = next((i for i, n in enumerate(body) if not isinstance(n, (ast.Import, ast.ImportFrom))), len(body))
    assert all(i < first_other for i, n in enumerate(body) if isinstance(n, (ast.Import, ast.ImportFrom))), \
        "imports after other statements"
    assert not any(isinstance(n, (ast.AugAssign,)) for n in body), "__all__ += accretion"
    # Explicit re-exports (`X as X`, the form type checkers read as public); the order is ruff's isort.
    for n in imports:
        if isinstance(n, ast.ImportFrom) and n.module != "__future__":
            assert all(a.asname == a.name for a in n.names), f"line {n.lineno}: re-export as `Name as Name`"


def test_every_public_name_the_design_promises_is_importable():
    import simjax as sj

    for name in ("analysis", "fit", "losses", "networks", "neurons", "parameters", "plasticity", "rules", "simulate",
                 "spike_times", "pseudospike_times", "SpikeTrain", "Output", "surrogates", "sweep", "synapses",
                 "tasks"):
        assert hasattr(sj, name), name
    assert callable(sj.sweep) and callable(sj.analysis.gradient_quality) and callable(sj.parameters.params)


FAMILIES = ["simjax.networks", "simjax.plasticity", "simjax._simulate.output", "simjax._simulate.event", "simjax.rules",
            "simjax.tasks", "simjax.analysis", "simjax._app.cli"]


def test_each_family_imports_on_its_own():
    """Importing any one family first works: no order-dependent cycle. One interpreter, with every
    simjax module dropped from `sys.modules` before each family (the dependencies stay imported:
    the question is simjax's own import graph, and a fresh interpreter per family costs seconds)."""
    script = (
        "import importlib, sys, traceback\n"
        "failed = []\n"
        f"for name in {FAMILIES!r}:\n"
        "    for m in [m for m in sys.modules if m == 'simjax' or m.startswith('simjax.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        failed.append(name + ': ' + traceback.format_exc())\n"
        "    assert (name in sys.modules) or failed\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_output_module_imports_nothing_else_from_simjax():
    targets, _ = _imports(PACKAGE / "_simulate" / "output.py")
    assert {t for t in targets if t.startswith("simjax.")} <= {"simjax._spike_train", "simjax._spike_train.SpikeTrain"}
