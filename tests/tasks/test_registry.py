"""Task lookup: entry points (built-in and third-party), YAML cards, helpful errors."""

from __future__ import annotations

import importlib.metadata as md
import sys
import textwrap

import pytest

from maskctl import registry as plugins
from maskctl.errors import TaskError
from maskctl.resources import builtin_dir
from maskctl.tasks import registry
from maskctl.tasks.card import TaskCard, load_card


def test_builtin_tasks_register_through_the_public_entry_point_group():
    eps = {ep.name: ep.value for ep in md.entry_points(group="maskctl.tasks")}
    assert eps["bbc-news"] == "maskctl.tasks.builtin:bbc_news"
    assert "bbc-news" in registry.task_names()


def test_every_shipped_card_is_an_entry_point_and_every_entry_point_a_card():
    eps = {ep.name: ep for ep in md.entry_points(group="maskctl.tasks") if ep.value.startswith("maskctl.")}
    cards = {path.stem for path in builtin_dir("tasks").glob("*.yaml")}
    assert set(eps) == cards
    for name, ep in eps.items():
        assert ep.value == f"maskctl.tasks.builtin:{name.replace('-', '_')}"
        assert registry.get_card(name).name == name


def test_every_shipped_card_loads():
    cards = sorted(builtin_dir("tasks").glob("*.yaml"))
    assert cards
    for path in cards:
        card = load_card(path)
        assert card.name == path.stem


def test_unknown_task_suggests_close_names():
    with pytest.raises(TaskError, match="did you mean bbc-news"):
        registry.get_card("bbc-new")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on ``sys.path`` where a test lays out a distribution as pip would; every
    registry sees it, and forgets it afterwards."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    plugins.rescan()
    yield path
    monkeypatch.undo()
    plugins.rescan()  # the plugin is gone for the next test


def test_third_party_plugin_registers_through_an_entry_point(site, keyword_task):
    """A separate distribution declares `maskctl.tasks` and maskctl finds and trains it."""
    package = site / "my_tasks_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(f"""
        from maskctl.tasks.card import load_card
        def keywords():
            return load_card({str(keyword_task)!r})
    """)
    )
    dist_info = site / "my_tasks_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-tasks-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[maskctl.tasks]\nplugin-keywords = my_tasks_plugin:keywords\n")
    assert "plugin-keywords" in registry.task_names()
    assert "my_tasks_plugin" not in sys.modules  # listing imports no plugin
    card = registry.get_card("plugin-keywords")
    assert isinstance(card, TaskCard) and card.name == "keywords"


def test_plugin_that_returns_the_wrong_type_is_reported(site):
    package = site / "bad_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def task():\n    return 42\n")
    dist_info = site / "bad_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[maskctl.tasks]\nbad-task = bad_plugin:task\n")
    with pytest.raises(TaskError, match="not a TaskCard"):
        registry.get_card("bad-task")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: x\nkind: regression\nlabels: [a]\nsource: {reader: csv}\n", "unknown kind"),
        ("name: x\nkind: sequence-classification\nlabels: [a, a]\nsource: {reader: csv}\n", "distinct"),
        ("name: x\nkind: sequence-classification\nlabels: [a]\nsource: {reader: csv}\ncolour: red\n", "unknown keys"),
        ("name: x\nkind: sequence-classification\nlabels: [a]\n", "no data source"),
        ("name: x\nkind: sequence-classification\nlabels: [a]\nsource: {path: x}\n", "no reader"),
        (
            "name: x\nkind: sequence-classification\nlabels: [a]\nfields: {tokens: w}\nsource: {reader: csv}\n",
            "mean nothing",
        ),
        ("kind: sequence-classification\nlabels: [a]\nsource: {reader: csv}\n", "missing"),
        ("- just\n- a list\n", "mapping"),
        ("name: [unclosed\n", "not valid YAML"),
        (
            "name: x\nkind: sequence-classification\nlabels: [a]\nmetric: bleu\nsource: {reader: csv}\n",
            "unknown metric",
        ),
    ],
)
def test_bad_cards_name_the_problem(tmp_path, body, message):
    path = tmp_path / "card.yaml"
    path.write_text(body)
    with pytest.raises(TaskError, match=message):
        load_card(path)


def test_missing_card_file(tmp_path):
    with pytest.raises(TaskError, match="does not exist"):
        registry.get_card(str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("raise ImportError('no module named torchaudio')\n", "failed to load .*torchaudio"),
        ("def task():\n    raise ValueError('the labels file is missing')\n", "failed to build .*labels file"),
    ],
)
def test_a_broken_plugin_fails_as_one_task_error(site, body, message):
    (site / "broken_plugin.py").write_text(body)
    dist_info = site / "broken_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[maskctl.tasks]\nbroken = broken_plugin:task\n")
    with pytest.raises(TaskError, match=message):
        registry.get_card("broken")
    listed = dict(registry.registered_cards())  # `maskctl tasks` lists it beside the good ones
    assert isinstance(listed["broken"], TaskError) and isinstance(listed["bbc-news"], TaskCard)
    sys.modules.pop("broken_plugin", None)


def test_listing_reads_registered_tasks_not_a_file_of_the_same_name(tmp_path, monkeypatch):
    (tmp_path / "bbc-news").write_text("not: [a card\n")  # `--task ./bbc-news` would read it
    monkeypatch.chdir(tmp_path)
    assert isinstance(dict(registry.registered_cards())["bbc-news"], TaskCard)
