"""``TaskCard``: the data that defines a task, read from YAML with ``yaml.safe_load``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from maskctl.errors import TaskError

KINDS = ("sequence-classification",)
METRICS = ("accuracy", "mcc", "macro-f1")
SPLITS = ("train", "dev", "test")


@dataclass
class TaskCard:
    """One task: what kind of head, which data, which fields, which labels, which metric.

    ``source`` is handed to the reader it names (``source["reader"]``); relative file paths in
    it are resolved against ``base_dir`` (the card's folder) or ``--data-dir``.
    """

    name: str
    kind: str
    labels: list[str]
    metric: str = "accuracy"
    source: dict[str, Any] = field(default_factory=dict)
    text_fields: list[str] = field(default_factory=lambda: ["text"])
    label_field: str = "label"
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)  # e.g. epochs, lr per method
    base_dir: str | None = None

    def __post_init__(self) -> None:
        where = f"task card {self.name!r}"
        if self.kind not in KINDS:
            raise TaskError(f"{where}: unknown kind {self.kind!r}", f"use one of {', '.join(KINDS)}")
        if self.metric not in METRICS:
            raise TaskError(f"{where}: unknown metric {self.metric!r}", f"use one of {', '.join(METRICS)}")
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise TaskError(f"{where}: labels must be a non-empty list of distinct names",
                            "list every label once under `labels:`")
        if not 1 <= len(self.text_fields) <= 2:
            raise TaskError(f"{where}: text_fields must name one field or a sentence pair",
                            "e.g. text_fields: [sentence1, sentence2]")
        if "reader" not in self.source:
            raise TaskError(f"{where}: source has no reader", "add e.g. `source: {reader: csv, ...}`")
        self.labels = [str(label) for label in self.labels]

    @property
    def data_source(self) -> str:
        """A short human description of where the data comes from (for `maskctl tasks`)."""
        src = self.source
        if src["reader"] == "hub":
            return "hub:" + "/".join(str(s) for s in (src.get("path"), src.get("name")) if s)
        if src["reader"] == "packaged":
            return "package:" + str(src.get("distribution"))
        return f"{src['reader']} files"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskCard:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise TaskError(f"task card {data.get('name')!r}: unknown keys {unknown}",
                            f"allowed keys: {', '.join(sorted(known))}")
        missing = [k for k in ("name", "kind", "labels") if k not in data]
        if missing:
            raise TaskError(f"task card {data.get('name')!r}: missing {missing}",
                            "every card needs name, kind and labels")
        return cls(**data)


def load_card(path: str | Path) -> TaskCard:
    """Read a YAML task card; relative data paths are then resolved against its folder."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"task card {path} does not exist", "check the path, or run `maskctl tasks`")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaskError(f"{path}: not valid YAML ({exc})".replace("\n", " "), "fix the YAML syntax") from exc
    if not isinstance(data, dict):
        raise TaskError(f"{path}: a task card must be a YAML mapping", "see tasks/bbc-news.yaml")
    data.setdefault("base_dir", str(path.resolve().parent))
    try:
        return TaskCard.from_dict(data)
    except TypeError as exc:
        raise TaskError(f"{path}: {exc}", "see tasks/bbc-news.yaml for the card format") from exc
