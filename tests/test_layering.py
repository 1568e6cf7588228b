"""Which module may import which: the library never imports the CLI, recipes never import the
sweep runner, sweeps never import the analyses (they share the neutral ``maskctl.experiments.report``),
``maskctl.serving.http`` is imported only by ``maskctl serve``, serving never imports training
(both score through the neutral ``maskctl.evaluation``), and bundles never import training (a model
card rebuilds the training command from the neutral ``maskctl.train_settings``). Read from the
source with ``ast`` (imports inside functions count too, and ``from maskctl import training``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "maskctl"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # a submodule by name
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")


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
            broken += [f"{module} imports {name}" for name in _imports(path)
                       if name == forbidden or name.startswith(forbidden + ".")]
    assert not broken, broken


def test_the_rules_see_imports_inside_functions_and_by_submodule_name(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def card():\n    from maskctl import training\n    import maskctl.training.settings\n",
                      encoding="utf-8")
    assert {"maskctl.training", "maskctl.training.settings"} <= _imports(source)
