"""A public name that moved still answers at its old path, with a warning that names its new
home and the version that removes the old path; nothing else answers there."""

from __future__ import annotations

import importlib

import pytest

from maskctl.deprecation import REMOVED_IN

MOVED = [  # (old module, name, new module)
    ("maskctl.training.settings", "TrainArgs", "maskctl.train_settings"),
    ("maskctl.training.settings", "FALLBACKS", "maskctl.train_settings"),
    ("maskctl.training.trainer", "DEFAULT_LR", "maskctl.train_settings"),
    ("maskctl.training.trainer", "TrainArgs", "maskctl.train_settings"),
    ("maskctl.serving.results", "Classification", "maskctl.tasks.kinds.sequence_classification"),
    ("maskctl.serving.ensemble", "run_ensemble", "maskctl.experiments.ensemble"),
    ("maskctl.serving.export", "export_bundle", "maskctl.experiments.export"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED, ids=lambda v: v if "." not in v else None)
def test_a_moved_name_warns_with_its_new_home_and_the_removal_version(old, name, new):
    with pytest.warns(DeprecationWarning) as caught:
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)
    assert (
        str(caught[0].message) == f"{old}.{name} moved to {new}.{name}; the old path is removed in maskctl {REMOVED_IN}"
    )
    assert REMOVED_IN == "0.3.0"


def test_only_the_moved_names_answer_at_the_old_path():
    with pytest.raises(AttributeError, match="has no attribute 'train'"):
        importlib.import_module("maskctl.training.settings").train  # noqa: B018 - the access is the test
