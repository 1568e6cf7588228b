"""Which module may import which: the library never imports the CLI, recipes never import the
sweep runner, sweeps never import the analyses (they share the neutral ``maskctl.experiments.report``),
``maskctl.serving.http`` is imported only by ``maskctl serve``, serving never imports training
(both score through the neutral ``maskctl.evaluation``), and bundles never import training (a model
card rebuilds the training command from the neutral ``maskctl.train_settings``); and no module
reaches itself again through what it imports.

Read from the source with ``ast``: imports inside functions count too, and ``from maskctl import
training``, and so do the loads an import statement does not show: ``importlib.import_module``
and every string naming a maskctl module (a registry's lazy ``"module:attribute"`` placeholder,
a deprecation shim's new home), so a lazy load cannot hide a broken layer or a cycle. Imports
under ``if TYPE_CHECKING:`` are annotations: they count for the layers, not for cycles."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "maskctl"
NAMED = re.compile(r"(maskctl(?:\.\w+)+)(?::[\w.]+)?")  # "maskctl.x.y" or a placeholder "maskctl.x.y:attr"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")


MODULES = {_module(path) for path in ROOT.rglob("*.py")}


def _annotations_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:``."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            skipped.update(id(inner) for child in node.body for inner in ast.walk(child))
    return skipped


def _imports(path: Path, annotations: bool = True) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = set() if annotations else _annotations_only(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # a submodule by name
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = NAMED.fullmatch(node.value)
            if named and named.group(1) in MODULES:  # a placeholder, a shim's home, import_module("...")
                names.add(named.group(1))
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            prefix = str(node.values[0].value)  # import_module(f"maskctl.serving.{name}"): the package
            if prefix.startswith("maskctl.") and prefix.endswith("."):
                names.add(prefix.rstrip("."))
    return names


def test_the_layers_hold():
    rules = [  # (importer prefix, forbidden prefix, except importers)
        ("maskctl", "maskctl.cli", ("maskctl.cli", "maskctl.__main__")),
        ("maskctl.experiments.recipes", "maskctl.experiments.sweep", ()),
        ("maskctl.experiments.sweep", "maskctl.analysis", ()),
        ("maskctl", "maskctl.serving.http", ("maskctl.serving.http", "maskctl.cli.serve")),
        ("maskctl.serving", "maskctl.training", ()),  # using masks never needs the optimiser
        ("maskctl.bundle", "maskctl.training", ()),  # a file format never needs the loop that wrote it
    ]
    broken = []
    for path in ROOT.rglob("*.py"):
        module = _module(path)
        for importer, forbidden, allowed in rules:
            if not (module == importer or module.startswith(importer + ".")):
                continue
            if any(module == a or module.startswith(a + ".") for a in allowed):
                continue
            broken += [
                f"{module} imports {name}"
                for name in _imports(path)
                if name == forbidden or name.startswith(forbidden + ".")
            ]
    assert not broken, broken


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph``, as the modules along it, or None (a depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in ROOT.rglob("*.py"):
        module = _module(path)
        graph[module] = {name for name in _imports(path, annotations=False) if name in MODULES and name != module}
    return graph


def test_no_module_reaches_itself_through_its_imports():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_rules_see_imports_inside_functions_and_by_submodule_name(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "def card():\n    from maskctl import training\n    import maskctl.training.settings\n", encoding="utf-8"
    )
    assert {"maskctl.training", "maskctl.training.settings"} <= _imports(source)


def test_the_rules_see_lazy_loads(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "import importlib\nKINDS.register('x', 'maskctl.training.methods:MaskMethod')\n"
        "def load(name):\n    importlib.import_module('maskctl.cli')\n"
        "    return importlib.import_module(f'maskctl.serving.{name}')\n",
        encoding="utf-8",
    )
    assert {"maskctl.training.methods", "maskctl.cli", "maskctl.serving"} <= _imports(source)


def test_a_cycle_is_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
