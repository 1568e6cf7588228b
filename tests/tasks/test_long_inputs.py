"""A text of any length costs what the kind's token budget costs: each kind cuts its texts to a few
times ``max_length`` tokens' worth of characters *before* the tokenizer sees them (each side of a
pair, each multiple-choice ending, a tagged sentence's words), and says so in ``truncated``.

Why: a fast tokenizer's longest-first truncation of a pair builds every combination of both
sides' overflow pieces, and a 1 MB pair took a server to gigabytes. The tokenizer is watched here
(it refuses any longer text), so the tests need no memory or timing figures."""

from __future__ import annotations

import pytest

from maskctl.models import load_tokenizer, resolve_model
from maskctl.tasks.card import TaskCard
from maskctl.tasks.kinds.multiple_choice import MultipleChoice
from maskctl.tasks.kinds.sequence_classification import SequenceClassification
from maskctl.tasks.kinds.token_tagging import TokenTagging

MAX_LENGTH = 32
BOUND = 16 * MAX_LENGTH  # "a few times max_length tokens' worth of characters", per text
LONG = "word " * 200_000  # 1 MB


class Watched:
    """A tokenizer that refuses any text (or list of words) longer than ``BOUND`` characters,
    before tokenising it: a kind that passes one on fails here, without the memory it would take."""

    def __init__(self, real) -> None:
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __call__(self, *args, **kwargs):
        words = kwargs.get("is_split_into_words", False)
        for column in args:
            for item in column if isinstance(column, list) else [column]:
                size = sum(len(w) + 1 for w in item) if words and isinstance(item, list) else len(item or "")
                assert size <= BOUND, f"the tokenizer was given {size:,} characters"
        return self.real(*args, **kwargs)


@pytest.fixture
def tokenizer(tiny_bert):
    return Watched(load_tokenizer(resolve_model(str(tiny_bert)), **TokenTagging.tokenizer_kwargs))


def _card(kind: str, labels: list[str]) -> TaskCard:
    return TaskCard(name="t", kind=kind, labels=labels, source={"reader": "jsonl"})


def test_a_long_pair_is_cut_on_each_side_before_tokenising(tokenizer):
    examples = [
        {"text": LONG, "text_pair": LONG, "label": "a"},
        {"text": "short", "text_pair": None, "label": "b"},
        {"text": "short", "text_pair": LONG, "label": "a"},
    ]
    features = SequenceClassification().encode(
        _card("sequence-classification", ["a", "b"]), tokenizer, examples, MAX_LENGTH
    )
    assert features.truncated == {0, 2}
    assert len(features[0]["input_ids"]) == MAX_LENGTH and len(features[2]["input_ids"]) == MAX_LENGTH
    assert len(features[1]["input_ids"]) < MAX_LENGTH


def test_a_long_multiple_choice_input_is_cut_per_ending(tokenizer):
    examples = [
        {"context": LONG, "endings": [LONG, "b", LONG[:100], "d"], "label": "0"},
        {"context": "a day", "endings": ["nice", "sad", "long", "short"], "label": "1"},
    ]
    features = MultipleChoice().encode(_card("multiple-choice", ["0", "1", "2", "3"]), tokenizer, examples, MAX_LENGTH)
    assert features.truncated == {0}
    assert all(len(ids) == MAX_LENGTH for ids in features[0]["input_ids"])


def test_a_long_tagged_sentence_is_cut_to_the_words_that_can_fit(tokenizer):
    words = LONG.split()
    examples = [
        {"tokens": words, "tags": ["O"] * len(words)},
        {"tokens": ["a", "b"], "tags": ["O", "O"]},
        {"tokens": ["x" * 1_000_000], "tags": ["O"]},
    ]
    features = TokenTagging().encode(_card("token-tagging", ["O", "B-X"]), tokenizer, examples, MAX_LENGTH)
    assert features.truncated == {0, 2}
    assert features.kept_words[0] == list(range(MAX_LENGTH - 2))  # [CLS] w0 .. w29 [SEP]
    assert features.stats["excluded_words"] == len(words) - (MAX_LENGTH - 2)


def test_a_long_input_costs_the_batch_what_its_kind_budgets(tokenizer):
    """What the server's batcher budgets a request (``Kind.cost`` of its encoding, tokenised
    once): rows x max_length at most, however long its text."""
    cases = [
        (
            SequenceClassification(),
            _card("sequence-classification", ["a", "b"]),
            {"text": LONG, "text_pair": LONG, "label": "a"},
            MAX_LENGTH,
        ),
        (TokenTagging(), _card("token-tagging", ["O", "B-X"]), {"tokens": LONG.split(), "tags": None}, MAX_LENGTH),
        (
            MultipleChoice(),
            _card("multiple-choice", ["0", "1"]),
            {"context": LONG, "endings": [LONG, "x"], "label": "0"},
            2 * MAX_LENGTH,
        ),
    ]
    for kind, card, example, budget in cases:
        if example.get("tags", 1) is None:
            example["tags"] = ["O"] * len(example["tokens"])
        features = kind.encode(card, tokenizer, [example], MAX_LENGTH, {})
        assert kind.cost(features.items[0]) == budget and features.truncated == {0}, kind.name
