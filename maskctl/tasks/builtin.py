"""Entry-point targets for the task cards that ship with maskctl (``tasks/*.yaml``).

Each name below is registered in ``pyproject.toml`` under ``maskctl.tasks``, the same group a
third-party plugin uses; calling it reads the card, nothing heavier.
"""

from __future__ import annotations

from maskctl.resources import builtin_dir
from maskctl.tasks.card import TaskCard, load_card


class BuiltinCard:
    """A callable that loads one shipped YAML card by file name."""

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def __call__(self) -> TaskCard:
        return load_card(builtin_dir("tasks") / self.filename)


ag = BuiltinCard("ag.yaml")
bbc_news = BuiltinCard("bbc-news.yaml")
cola = BuiltinCard("cola.yaml")
conll03 = BuiltinCard("conll03.yaml")
mrpc = BuiltinCard("mrpc.yaml")
pos = BuiltinCard("pos.yaml")
qnli = BuiltinCard("qnli.yaml")
rte = BuiltinCard("rte.yaml")
sem = BuiltinCard("sem.yaml")
sst2 = BuiltinCard("sst2.yaml")
swag = BuiltinCard("swag.yaml")
trec = BuiltinCard("trec.yaml")
wnut16 = BuiltinCard("wnut16.yaml")
