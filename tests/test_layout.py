"""The code's layout: `learning/` is layered and imports go one way, down from run.py.

A package may import its own modules and the packages of lower layers, never a package of its own
layer or above; `environments` never imports `learning`. Module-level import cycles are refused
too. The parse reads every `import` statement, including those inside functions.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: the layer of each package: an import may only point to a lower layer (or into its own package)
LAYERS = {
    "environments": 0,
    "learning.nn": 0,
    "learning.q_functions": 1,
    "learning.buffers": 1,
    "learning.policies": 2,
    "learning.algorithms": 3,
    "learning.samplers": 3,
    "learning.runs": 4,
}
TOP_LEVEL = ("run.py", "garage_experiments.py", "experiment_utils.py", "sweep.py", "plot.py",
             "report.py")


def package_of(module: str) -> str | None:
    """The LAYERS package a dotted module belongs to (None: not a project package)."""
    for package in sorted(LAYERS, key=len, reverse=True):
        if module == package or module.startswith(package + "."):
            return package
    return None


def imported_modules(path: Path) -> set[str]:
    """Every project module `path` imports (absolute imports; `from a import b` may name b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in ("learning", "environments")}


def project_modules() -> dict[str, Path]:
    modules = {}
    for top in ("learning", "environments"):
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


MODULES = project_modules()


def test_every_learning_module_lives_in_a_layered_package() -> None:
    loose = [name for name in MODULES if package_of(name) is None and name != "learning"]
    assert loose == []
    assert (ROOT / "learning" / "__init__.py").read_text().strip() == ""


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_the_layers(name: str) -> None:
    here = package_of(name)
    if here is None:
        return
    for target in imported_modules(MODULES[name]):
        there = package_of(target)
        if there is None or there == here:
            continue
        assert LAYERS[there] < LAYERS[here], (
            f"{name} (layer {LAYERS[here]}) imports {target} (layer {LAYERS[there]})")


def test_no_module_level_import_cycles() -> None:
    graph = {name: {t for t in imported_modules(path) if t in MODULES and t != name}
             for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_the_layer_check_sees_a_wrong_import(tmp_path: Path) -> None:
    """The parse finds imports at any depth, so a lower layer reaching up is caught."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from learning.runs.trainer import Trainer\n    import os\n")
    assert imported_modules(module) == {"learning.runs.trainer", "learning.runs.trainer.Trainer"}
    assert package_of("learning.runs.trainer.Trainer") == "learning.runs"
    assert package_of("learning.nn") == "learning.nn" and package_of("os") is None


def test_library_code_never_imports_the_top_level_scripts() -> None:
    names = {os.path.splitext(script)[0] for script in TOP_LEVEL}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bad = {a.name for a in node.names} & names
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                bad = {node.module} & names
            else:
                continue
            assert not bad, f"{name} imports the script {bad}"
