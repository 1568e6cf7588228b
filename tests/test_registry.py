"""The one registry mechanism (``maskctl.registry``): names without imports, lazy placeholders,
clear errors, and a third-party distribution that adds a task kind and a metric through entry
points, with nothing in ``maskctl/`` touched."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from maskctl import registry
from maskctl.errors import MaskctlError, TaskError
from maskctl.registry import Registry
from maskctl.schema import check_fields
from maskctl.tasks import metrics
from maskctl.tasks.card import TaskCard
from maskctl.tasks.kinds import KINDS
from maskctl.train_settings import TrainArgs

PLUGIN = '''
from dataclasses import dataclass

from maskctl.tasks.kinds.sequence_classification import SequenceClassification


@dataclass
class Score:
    value: float


class Rating(SequenceClassification):
    """A text and a 1-5 rating: the encoder side of classification, its own results."""

    name = "rating"
    input_hint = "give a review"

    def result(self, labels, example, scores, truncated=False, kept_words=None):
        return Score(float(scores.softmax(-1).argmax()) + 1)


def off_by_at_most_one(scored):
    pairs = list(zip(scored.flat_golds, scored.flat_preds))
    return {"within-one": sum(abs(g - p) <= 1 for g, p in pairs) / len(pairs)}
'''


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A distribution ``rating-plugin`` installed on ``sys.path`` as pip would lay it out."""
    site = tmp_path / "site"
    (site / "rating_plugin").mkdir(parents=True)
    (site / "rating_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    dist_info = site / "rating_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: rating-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[maskctl.kinds]\nrating = rating_plugin:Rating\n\n"
        "[maskctl.metrics]\nwithin-one = rating_plugin:off_by_at_most_one\n"
    )
    monkeypatch.syspath_prepend(str(site))
    registry.rescan()
    yield site
    monkeypatch.undo()
    sys.modules.pop("rating_plugin", None)
    registry.rescan()  # the plugin is gone for the next test


def test_a_plugin_adds_a_kind_and_a_metric_through_entry_points(plugin_site):
    assert "rating" in KINDS and "within-one" in metrics.METRICS
    assert "rating_plugin" not in sys.modules  # listing names imports no plugin

    card = TaskCard(
        name="reviews", kind="rating", labels=["1", "2", "3", "4", "5"], metric="within-one", source={"reader": "csv"}
    )
    assert KINDS.get(card.kind).name == "rating" and "rating_plugin" in sys.modules
    scored = metrics.compute(card.metric, golds=[0, 1, 4, 2], preds=[1, 3, 4, 2])
    assert scored["within-one"] == scored["score"] == 0.75 and scored["accuracy"] == 0.5
    check_fields(TrainArgs(kind="rating", train_file="reviews.csv"))  # --kind accepts it


def test_a_plugin_kind_is_a_choice_of_the_cli(plugin_site):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), *sys.path]), "COLUMNS": "250"}
    shown = subprocess.run(
        [sys.executable, "-m", "maskctl", "train", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "multiple-choice, sequence-classification, token-tagging, rating." in " ".join(shown.stdout.split())


def test_without_the_plugin_the_kind_is_refused_with_the_choices():
    assert "rating" not in KINDS
    with pytest.raises(TaskError, match="unknown kind 'rating'") as caught:
        TaskCard(name="reviews", kind="rating", labels=["1", "2"])
    assert "sequence-classification" in caught.value.fix


def test_placeholders_load_on_first_use_and_names_suggest_the_closest():
    things: Registry[object] = Registry("thing")
    things.register("path", "os.path:join")
    things.register("sep")(os.sep)
    assert things.names() == ("path", "sep")  # registration order
    assert things.get("path") is os.path.join
    assert things.names() == ("path", "sep")  # loading a placeholder keeps its place (CLI choices)
    with pytest.raises(MaskctlError, match="unknown thing 'pth'") as caught:
        things.get("pth")
    assert caught.value.fix == "did you mean path? use one of path, sep"
    many: Registry[object] = Registry("task", listing="maskctl tasks")
    for name in ("bbc-news", "conll03", "wnut16", "sst2", "mrpc", "swag", "trec"):
        many.register(name)(name)
    with pytest.raises(MaskctlError) as caught:  # 13 names would not fit an 80-column error line
        many.get("wnut61")
    assert caught.value.fix == "did you mean wnut16? `maskctl tasks` lists the 7 registered"
    things.register("gone", "os.path:no_such_function")
    with pytest.raises(MaskctlError, match=r"the thing 'gone' \(os.path:no_such_function\) failed to load"):
        things.get("gone")
