"""Task kinds: wordpiece alignment for tagging, choice encoding, metrics with known answers,
and hub loading through `datasets` from a local folder (never the network)."""

from __future__ import annotations

import pytest
import torch

from maskctl.models import load_tokenizer, resolve_model
from maskctl.tasks import metrics
from maskctl.tasks.card import TaskCard
from maskctl.tasks.kinds.multiple_choice import MultipleChoice
from maskctl.tasks.kinds.token_tagging import IGNORE, TokenTagging


def _card(**kw) -> TaskCard:
    base = dict(name="t", kind="token-tagging", labels=["O", "B-X", "I-X"], source={"reader": "jsonl"})
    return TaskCard(**{**base, **kw})


@pytest.fixture
def bert_tokenizer(tiny_bert):
    return load_tokenizer(resolve_model(str(tiny_bert)), **TokenTagging.tokenizer_kwargs)


def test_tagging_labels_the_last_wordpiece_of_each_word(bert_tokenizer):
    example = {"tokens": ["the", "unbelievable", "film"], "tags": ["O", "B-X", "O"]}
    assert bert_tokenizer.tokenize("unbelievable") == ["un", "##believ", "##able"]
    feats = TokenTagging().encode(_card(), bert_tokenizer, [example], 128, {"word_piece": "last"})
    pieces = bert_tokenizer.convert_ids_to_tokens(feats[0]["input_ids"])
    assert pieces == ["[CLS]", "the", "un", "##believ", "##able", "film", "[SEP]"]
    assert feats[0]["labels"] == [IGNORE, 0, IGNORE, IGNORE, 1, 0, IGNORE]
    first = TokenTagging().encode(_card(), bert_tokenizer, [example], 128, {"word_piece": "first"})
    assert first[0]["labels"] == [IGNORE, 0, 1, IGNORE, IGNORE, 0, IGNORE]
    assert feats.stats == {"words": 3, "excluded_words": 0}


def test_words_past_max_length_are_excluded_and_counted(bert_tokenizer):
    example = {"tokens": ["the", "film", "unbelievable", "film"], "tags": ["O", "O", "B-X", "O"]}
    # 6 tokens fit: [CLS] the film un ##believ [SEP] -> "unbelievable" lost its last piece.
    feats = TokenTagging().encode(_card(), bert_tokenizer, [example], 6, {"word_piece": "last"})
    assert len(feats[0]["input_ids"]) == 6
    assert feats[0]["labels"] == [IGNORE, 0, 0, IGNORE, IGNORE, IGNORE]
    assert feats.stats == {"words": 4, "excluded_words": 2}
    kept_first = TokenTagging().encode(_card(), bert_tokenizer, [example], 6, {"word_piece": "first"})
    assert kept_first.stats["excluded_words"] == 1
    assert feats.truncated == {0} and feats.kept_words == [[0, 1]]
    whole = TokenTagging().encode(_card(), bert_tokenizer, [example], 8, {"word_piece": "last"})
    assert whole.truncated == set() and whole.kept_words == [[0, 1, 2, 3]]  # exactly 8 ids: nothing cut


def test_each_kind_says_which_examples_max_length_cut(bert_tokenizer):
    from maskctl.tasks.kinds.sequence_classification import SequenceClassification

    card = TaskCard(name="c", kind="sequence-classification", labels=["a", "b"], source={"reader": "jsonl"})
    texts = ["the film", "the film was good", "the film was"]  # 4, 6 and 5 ids with [CLS]/[SEP]
    examples = [{"text": t, "text_pair": None, "label": "a"} for t in texts]
    assert SequenceClassification().encode(card, bert_tokenizer, examples, 5).truncated == {1}
    assert SequenceClassification().encode(card, bert_tokenizer, examples, 6).truncated == set()
    pairs = [{"text": "the film", "text_pair": "was good", "label": "a"}]  # 6 ids
    assert SequenceClassification().encode(card, bert_tokenizer, pairs, 5).truncated == {0}
    choice = TaskCard(name="m", kind="multiple-choice", labels=["0", "1"], source={"reader": "jsonl"})
    examples = [
        {"context": "a day", "endings": ["nice", "sad"], "label": "0"},
        {"context": "the film", "endings": ["was good", "bad"], "label": "0"},
    ]
    assert MultipleChoice().encode(choice, bert_tokenizer, examples, 6).truncated == {1}  # 6 ids vs 7


def test_roberta_tagging_aligns_words(tiny_models):
    tokenizer = load_tokenizer(resolve_model(str(tiny_models["roberta"])), **TokenTagging.tokenizer_kwargs)
    example = {"tokens": ["the", "unbelievable", "film"], "tags": ["O", "B-X", "O"]}
    feats = TokenTagging().encode(_card(), tokenizer, [example], 128, {"word_piece": "last"})
    labelled = [label for label in feats[0]["labels"] if label != IGNORE]
    assert labelled == [0, 1, 0]


def test_tagging_scores_skip_unlabelled_positions():
    logits = torch.zeros(1, 5, 3)
    logits[0, 1, 2] = logits[0, 3, 1] = 5.0
    batch = {"labels": torch.tensor([[IGNORE, 2, IGNORE, 0, IGNORE]])}
    scores, golds = TokenTagging().select(logits, batch)
    assert [s.argmax(-1).tolist() for s in scores] == [[2, 1]] and golds == [[2, 0]]
    assert scores[0].shape == (2, 3)


def test_multiple_choice_encodes_each_pair_and_collates_to_3d(bert_tokenizer):
    card = TaskCard(name="c", kind="multiple-choice", labels=["0", "1"], source={"reader": "jsonl"})
    examples = [
        {"context": "the film", "endings": ["was good", "was bad and awful"], "label": "1"},
        {"context": "a day", "endings": ["nice", "sad"], "label": "0"},
    ]
    kind = MultipleChoice()
    feats = kind.encode(card, bert_tokenizer, examples, 128)
    batch = kind.collate(bert_tokenizer)([feats[0], feats[1]])
    assert batch["input_ids"].shape[:2] == (2, 2) and batch["labels"].tolist() == [1, 0]
    first = bert_tokenizer.convert_ids_to_tokens(batch["input_ids"][0, 1].tolist())
    assert first[:7] == ["[CLS]", "the", "film", "[SEP]", "was", "bad", "and"]


def test_metrics_with_known_answers():
    # Matthews correlation: TP=2, TN=1, FP=1, FN=0 -> (2*1 - 1*0) / sqrt(3*2*2*1) = 2/sqrt(12)
    result = metrics.compute("mcc", golds=[1, 1, 0, 0], preds=[1, 1, 1, 0])
    assert result["mcc"] == pytest.approx(2 / 12**0.5) and result["score"] == result["mcc"]
    assert result["accuracy"] == 0.75
    labels = ["O", "B-PER", "I-PER", "B-LOC"]
    gold = [[1, 2, 0, 3], [3, 0]]  # entities: PER(0-1), LOC(3); LOC(0)
    pred = [[1, 2, 0, 0], [3, 0]]  # finds PER and the second LOC, misses the first LOC
    result = metrics.compute("seqeval-f1", gold, pred, labels)
    assert result["precision"] == 1.0 and result["recall"] == pytest.approx(2 / 3)
    assert result["seqeval-f1"] == pytest.approx(0.8) and result["score"] == pytest.approx(0.8)
    assert result["accuracy"] == pytest.approx(5 / 6) and result["words"] == 6
    assert metrics.compute("macro-f1", [0, 1, 1], [0, 1, 0])["macro-f1"] == pytest.approx(2 / 3)  # both classes: F1 2/3


def test_hub_reader_through_datasets_from_a_local_folder(tmp_path):
    """`reader: hub` calls datasets.load_dataset; a local folder of parquet files stands in for
    the hub, with ClassLabel features mapped to names as for glue or conll2003."""
    import datasets

    from maskctl.tasks.readers import read_split

    ner = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-X", "I-X"])),
        }
    )
    folder = tmp_path / "ner"
    folder.mkdir()
    for split in ("train", "validation"):
        datasets.Dataset.from_dict({"tokens": [["EU", "rejects"]], "ner_tags": [[1, 0]]}, features=ner).to_parquet(
            str(folder / f"{split}.parquet")
        )
    card = _card(fields={"tokens": "tokens", "tags": "ner_tags"}, source={"reader": "hub", "path": str(folder)})
    assert read_split(card, "dev") == [{"tokens": ["EU", "rejects"], "tags": ["B-X", "O"]}]

    cls = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])}
    )
    folder = tmp_path / "sst"
    folder.mkdir()
    datasets.Dataset.from_dict(
        {"sentence": [f"s{i}" for i in range(20)], "label": [i % 2 for i in range(20)]}, features=cls
    ).to_parquet(str(folder / "train.parquet"))
    card = TaskCard(
        name="s",
        kind="sequence-classification",
        labels=["negative", "positive"],
        fields={"text": "sentence"},
        source={"reader": "hub", "path": str(folder), "dev_from_train": {"fraction": 0.2}},
    )
    dev = read_split(card, "dev")
    assert len(dev) == 4 and {ex["label"] for ex in dev} == {"negative", "positive"}
    assert len(read_split(card, "train")) == 16


def test_a_word_without_pieces_does_not_shift_the_tags_after_it(bert_tokenizer):
    example = {"tokens": ["the", "\u200b", "film"], "tags": ["O", "O", "B-X"]}  # a zero-width space has no piece
    feats = TokenTagging().encode(_card(), bert_tokenizer, [example], 128, {"word_piece": "last"})
    assert feats.kept_words == [[0, 2]] and feats.stats["excluded_words"] == 1
    scores = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])  # rows for "the" and "film"
    result = TokenTagging().result(["O", "B-X", "I-X"], example, scores, False, feats.kept_words[0])
    assert result.tags == ["O", "O", "B-X"] and result.scores[1] == 0.0
    assert result.entities == [{"type": "X", "start": 2, "end": 3, "text": "film"}]
