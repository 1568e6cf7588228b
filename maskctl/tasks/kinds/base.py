"""The interface every task kind implements, and the encoded-features container."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from maskctl.errors import TaskError
from maskctl.registry import Registry

if TYPE_CHECKING:  # annotations only: a card is read (`maskctl tasks`) without loading torch
    import torch


@dataclass
class Features:
    """Model-ready features of one split, plus facts about the encoding (e.g. excluded words)."""

    items: list[dict[str, Any]]
    stats: dict[str, int] = field(default_factory=dict)
    # Examples (by index) that max_length cut: serving says so in each prediction.
    truncated: set[int] = field(default_factory=set)
    # Tagging: per example, the indices of the words that got a label position (in order), so a
    # prediction lines its scores up with the right words even when a word has no pieces.
    kept_words: list[list[int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


# Characters of one text kept per token of max_length before the tokenizer sees it: a few times
# what a token takes in practice (about 4-5 characters of English with a wordpiece vocabulary).
CHARS_PER_TOKEN = 8


def bounded(texts: list[str | None], max_length: int) -> tuple[list[str | None], set[int]]:
    """``texts`` cut to ``CHARS_PER_TOKEN * max_length`` characters each, and which were cut.

    Why before tokenising: a text's tokens cost memory and time in proportion to its length
    before truncation applies, and a fast tokenizer's longest-first truncation of a *pair*
    builds every combination of both sides' overflow pieces, which took one 1 MB pair to
    gigabytes (BENCHMARKS.md, one very long input). Cut here, one input costs what its kind's
    token budget costs."""
    limit = CHARS_PER_TOKEN * max_length
    cut = {i for i, text in enumerate(texts) if text is not None and len(text) > limit}
    return [text[:limit] if i in cut else text for i, text in enumerate(texts)], cut


def bounded_words(words: list[str], max_length: int) -> tuple[list[str], bool]:
    """The first of ``words`` that fit ``CHARS_PER_TOKEN * max_length`` characters (a space
    after each), and whether any was dropped: ``bounded`` for a sentence given as words (a
    tagging input). Words are kept whole, so none is tagged as a part of itself; only a first
    word longer than the budget is cut (it becomes one unknown piece either way)."""
    limit, used = CHARS_PER_TOKEN * max_length, 0
    for i, word in enumerate(words):
        if used + len(word) + 1 > limit:
            return (words[:i] if i else [word[:limit]]), True
        used += len(word) + 1
    return words, False


def cut_rows(tokenizer, columns: list[list[Any]], encoded, max_length: int) -> set[int]:
    """Rows of ``encoded`` (tokenized with truncation) that max_length cut. Only a row of
    exactly max_length ids can have been cut, so only those are tokenized again in full."""
    candidates = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) >= max_length]
    if not candidates:
        return set()
    again = tokenizer(*[[column[i] for i in candidates] for column in columns], truncation=False, verbose=False)
    return {i for i, ids in zip(candidates, again["input_ids"]) if len(ids) > max_length}


@dataclass
class RowView:
    """One raw data row as a kind reads it: its columns by role (the card's ``fields:``, renamed
    by the source spec) and labels checked against the card; errors name ``where`` (file:line)."""

    card: Any
    spec: dict[str, Any]
    row: dict[str, Any]
    where: str

    def columns(self, role: str) -> list[Any]:
        names = {**self.card.fields, **(self.spec.get("fields") or {})}[role]  # a source may rename columns
        names = names if isinstance(names, list) else [names]
        for name in names:
            if name not in self.row or self.row[name] is None:
                fix = (
                    f"fix `fields: {{{role}: ...}}` in the card or the file's columns"
                    if not self.spec.get("origin")
                    else "give every row a value in that column"
                    if name in self.row
                    else f"give the file a column {name!r} (the task's {role})"
                )
                raise TaskError(f"{self.where}: no field {name!r} (has {sorted(map(str, self.row))})", fix)
        return [self.row[name] for name in names]

    def label(self, value: Any) -> str:
        """Map a raw label through the spec's ``label_map`` and check it is one of the card's."""
        label = str(value).strip()
        mapping = {str(k): str(v) for k, v in (self.spec.get("label_map") or {}).items()}
        label = mapping.get(label, label)
        if label not in self.card.labels:
            shown = self.card.labels if len(self.card.labels) <= 12 else self.card.labels[:12] + ["..."]
            fix = {
                "data files": "the labels are those of the train file (--train-file): fix this row, or add "
                f"examples of {label!r} to the train file",
                "scored file": "the bundle's task knows only these labels: fix or drop this row",
            }.get(self.spec.get("origin"), "fix the label, add it to the card's `labels:` or map it with `label_map:`")
            raise TaskError(f"{self.where}: label {label!r} is not one of {shown}", fix)
        return label


def sorted_labels(values: list[str]) -> list[str]:
    """Distinct label names in order: numerically when every one is a number (2 before 10)."""
    distinct = set(values)

    def number(text: str) -> float | None:
        try:
            return float(text)
        except ValueError:
            return None

    if all(number(v) is not None for v in distinct):
        return sorted(distinct, key=lambda v: (number(v), v))
    return sorted(distinct)


class Kind(Protocol):
    """How a kind of task meets data, a transformers model and its users: everything about a
    kind lives in its one module, so a new kind is one module: a class registered in ``KINDS``
    (``@KINDS.register(name)``, or an entry point of the group ``maskctl.kinds`` elsewhere).

    ``default_fields`` are the roles a card's ``fields:`` maps to columns (and their default
    column names); ``example_from_row`` builds a canonical example from a data row,
    ``example_from_input`` from what a user sends to ``predict`` / the server (``input_hint``
    says what that is; ``input_from_row`` first renames the card's columns in it);
    ``recognises`` tells a user's data file of this kind from others; ``auto_class`` names the
    transformers Auto class that builds the head;
    ``tokenizer_kwargs`` are passed when loading the tokenizer; ``encode`` turns canonical
    examples into features (with ``labels``), ``cost`` says what one encoded input costs a padded
    batch (the server's token budget); ``collate`` pads a batch; ``select`` cuts a batch of
    logits into per-example score tensors (classes, endings, or words x tags for tagging) with
    their golds; ``result`` turns one score tensor into the prediction users see (``kept_words``:
    the words a tagging example's score rows belong to, ``Features.kept_words``). The argmax of
    a score tensor is the prediction; ensembles add score tensors up. ``KindBase`` holds what
    the built-in kinds share.
    """

    name: str
    auto_class: str
    tokenizer_kwargs: dict[str, Any]
    default_fields: dict[str, str]
    input_role: str  # the role --text-column names for data files (text, tokens, context)
    label_role: str  # the role --label-column names (label, tags); labels are inferred from it
    default_metric: str  # the metric of a task built from data files
    input_hint: str
    pipeline_tag: str  # the Hugging Face Hub's pipeline tag for a model card
    # one label per input sequence: what TEI's /predict answers and the [CLS] t-SNE projects
    labels_sequences: bool
    cli_example: str  # how ``maskctl predict`` is given one input of this kind ("{ref}": the bundle)
    # The fields of an input object and their rank (1: a text, 2: a list of texts), the first
    # required: what an Open Inference Protocol client sends as one BYTES tensor each.
    input_fields: dict[str, int]
    result_type: type  # the dataclass ``result`` returns (its fields: the OIP output tensors)

    def example_from_row(self, row: RowView) -> dict[str, Any]: ...

    def example_from_input(self, labels: list[str], item: Any) -> dict[str, Any]: ...

    def input_from_row(self, fields: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        """A user's input object that may use the card's own column names (``fields``), under
        the canonical input names ``example_from_input`` reads."""

    @classmethod
    def recognises(cls, columns: list[str], rows: list[dict[str, Any]], label_column: str | None) -> bool:
        """Whether a user's data file (its ``columns``, its first ``rows``) holds this kind's
        data, for a task built from files without ``--kind``."""

    def infer_labels(self, values: list[str], first: RowView) -> list[str]:
        """The labels of a task built from data files: ``values`` are the train file's label
        column (flattened for tagging) as names, ``first`` its first row."""

    def encode(
        self, card, tokenizer, examples: list[dict[str, Any]], max_length: int, options: dict[str, Any]
    ) -> Features: ...

    def collate(self, tokenizer): ...

    def cost(self, item: dict[str, Any]) -> int:
        """An encoded input's share of a padded batch (rows x length): the server's token budget."""

    def select(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list]: ...

    def result(
        self,
        labels: list[str],
        example: dict[str, Any],
        scores: torch.Tensor,
        truncated: bool,
        kept_words: list[int] | None,
    ) -> Any: ...


# Kind names to kind classes. The built-in kinds register themselves (their modules are imported
# by ``maskctl.tasks.kinds``; none loads torch), a plugin's through the group ``maskctl.kinds``.
KINDS: Registry[type[Kind]] = Registry("task kind", group="maskctl.kinds", error=TaskError)


class KindBase:
    """What the built-in kinds share, each overridable by a kind that differs: the role-by-role
    renaming of a user's input object, no claim on users' data files, and a ``result`` that
    answers from the scores alone (``prediction``): only a word-level kind needs to know which
    words its score rows belong to (``TokenTagging`` overrides ``result``)."""

    def input_from_row(self, fields: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        """``row`` under the canonical input names: each role ``fields`` maps to columns that
        ``row`` has gets their values as ``input_from_columns`` reads them (``review`` ->
        ``text``). Canonical names given in ``row`` win, so ``{"text": ...}`` always works."""
        item = dict(row)
        for role, names in fields.items():
            if role in row:
                continue
            columns = names if isinstance(names, list) else [names]
            if all(name in row for name in columns):
                for key, value in self.input_from_columns(role, [row[name] for name in columns]).items():
                    item.setdefault(key, value)
        return item

    def input_from_columns(self, role: str, values: list[Any]) -> dict[str, Any]:
        """The input fields that the values of one role's columns make: the first value, by
        default (a kind whose role may span several columns joins them its own way)."""
        return {role: values[0]}

    @classmethod
    def recognises(cls, columns: list[str], rows: list[dict[str, Any]], label_column: str | None) -> bool:
        """No claim by default: a file no kind recognises is sequence classification (a text
        and a label, ``kinds.infer_kind``)."""
        return False

    def cost(self, item: dict[str, Any]) -> int:
        """Its rows x its longest row: one sequence's length, or a multiple-choice input's
        endings x the longest (a kind whose encoding differs says so itself)."""
        ids = item["input_ids"]
        if ids and isinstance(ids[0], list):
            return len(ids) * max(len(row) for row in ids)
        return len(ids)

    def result(
        self,
        labels: list[str],
        example: dict[str, Any],
        scores: torch.Tensor,
        truncated: bool = False,
        kept_words: list[int] | None = None,
    ) -> Any:
        """The prediction users see for one example; ``kept_words`` is for word-level kinds."""
        return self.prediction(labels, example, scores, truncated)

    def prediction(
        self, labels: list[str], example: dict[str, Any], scores: torch.Tensor, truncated: bool = False
    ) -> Any:
        """One example's prediction from its score tensor: what a kind that keeps the base
        ``result`` defines."""
        raise NotImplementedError(f"{type(self).__name__} defines no prediction() (define it, or override result())")
