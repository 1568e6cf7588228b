"""``TaskCard``: the data that defines a task, read from YAML with ``yaml.safe_load``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from maskctl.errors import TaskError
from maskctl.schema import did_you_mean
from maskctl.tasks.kinds import KINDS
from maskctl.tasks.metrics import METRICS

SPLITS = ("train", "dev", "test")
SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "val": "dev"}  # the Hugging Face name for dev


def canonical_split(name: str) -> str:
    """``validation`` (the Hub's name) and its short forms mean ``dev``."""
    return SPLIT_ALIASES.get(name, name)


# The kinds, and the roles each reads from the data with their default columns, live on the
# kinds (``maskctl.tasks.kinds.KINDS``, ``Kind.default_fields``); the metrics in ``METRICS``.


@dataclass
class TaskCard:
    """One task: what kind of head, which data, which fields, which labels, which metric.

    ``source`` is where the data comes from by default (``reader: hub``, ``packaged``, ``csv``,
    ...); ``files`` optionally describes the official on-disk format, used when the user passes
    ``--data-dir`` (offline, on a cluster). ``fields`` maps the kind's roles (``text``,
    ``label``, ``tokens``, ``tags``, ``context``, ``endings``) to the data's column names; a role
    may take a list of columns (a sentence pair, the four SWAG endings). Relative file paths are
    resolved against ``--data-dir``, else ``base_dir`` (the card's folder).
    """

    name: str
    kind: str
    labels: list[str]
    metric: str = "accuracy"
    source: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Any] | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)  # e.g. epochs, lr per method
    base_dir: str | None = None

    def __post_init__(self) -> None:
        where = f"task card {self.name!r}"
        if self.kind not in KINDS:
            raise TaskError(f"{where}: unknown kind {self.kind!r}", f"use one of {', '.join(KINDS)}")
        if self.metric not in METRICS:
            raise TaskError(f"{where}: unknown metric {self.metric!r}", f"use one of {', '.join(METRICS)}")
        if not self.labels or len(set(map(str, self.labels))) != len(self.labels):
            raise TaskError(
                f"{where}: labels must be a non-empty list of distinct names", "list every label once under `labels:`"
            )
        defaults = KINDS.get(self.kind).default_fields
        unknown = sorted(set(self.fields) - set(defaults))
        if unknown:
            raise TaskError(
                f"{where}: fields {unknown} mean nothing for kind {self.kind}", f"use the roles {', '.join(defaults)}"
            )
        self.fields = {**defaults, **self.fields}
        text = self.fields.get("text")
        if isinstance(text, list) and not 1 <= len(text) <= 2:
            raise TaskError(
                f"{where}: fields.text must name one column or a sentence pair",
                "e.g. fields: {text: [sentence1, sentence2]}",
            )
        if not self.source and not self.files:
            raise TaskError(f"{where}: no data source", "add `source: {reader: ...}` or `files: {reader: ...}`")
        for name, spec in (("source", self.source), ("files", self.files)):
            if spec and "reader" not in spec:
                raise TaskError(f"{where}: {name} has no reader", f"add e.g. `{name}: {{reader: csv, ...}}`")
        self.labels = [str(label) for label in self.labels]

    def field(self, role: str) -> Any:
        return self.fields[role]

    @property
    def data_source(self) -> str:
        """A short human description of where the data comes from (for `maskctl tasks`)."""
        parts = []
        if self.source:
            src = self.source
            if src["reader"] == "hub":
                parts.append("hub:" + "/".join(str(s) for s in (src.get("path"), src.get("name")) if s))
            elif src["reader"] == "packaged":
                parts.append("package:" + str(src.get("distribution")))
            else:
                parts.append(f"{src['reader']} files")
        if self.files:
            parts.append(f"--data-dir ({self.files['reader']})")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskCard:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise TaskError(
                f"task card {data.get('name')!r}: unknown keys {unknown}",
                did_you_mean(unknown[0], known, f"allowed keys: {', '.join(sorted(known))}"),
            )
        missing = [k for k in ("name", "kind", "labels") if k not in data]
        if missing:
            raise TaskError(
                f"task card {data.get('name')!r}: missing {missing}", "every card needs name, kind and labels"
            )
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
