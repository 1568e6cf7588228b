"""Offline fixtures: tiny random BERT, RoBERTa and DistilBERT models with real tokenizers,
and a small learnable sentence-classification task written as CSV files plus a YAML card.

Nothing here touches the network: configs are built in code, tokenizers from vocabularies
written here, and the hub is switched off for the whole session.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A pytest-xdist worker (`make test` runs two on a 2-core machine) gets one core: one torch
# thread here and in every process a test starts (set before torch is imported).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import csv  # noqa: E402
import inspect  # noqa: E402
import random  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

if XDIST_WORKER:
    torch.set_num_threads(1)

# The learnable task: one keyword among filler words decides the label (4 classes, chance 0.25).
GROUPS = {
    "pos": ["good", "great", "nice"],
    "neg": ["bad", "awful", "poor"],
    "food": ["pizza", "bread", "soup"],
    "sport": ["goal", "match", "team"],
}
LABELS = list(GROUPS)
FILLER = [
    "the",
    "a",
    "movie",
    "film",
    "was",
    "is",
    "very",
    "really",
    "plot",
    "actor",
    "story",
    "and",
    "it",
    "this",
    "that",
    "show",
    "book",
    "day",
    "song",
    "today",
]
WORDS = [w for group in GROUPS.values() for w in group] + FILLER
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Word pieces so that some words split into several pieces (for alignment tests).
PIECES = ["un", "##believ", "##able", "##s", "##ing", "##ed"]
ARCHS = ("bert", "roberta", "distilbert")
PNG = b"\x89PNG\r\n\x1a\n"  # the signature every written figure must start with
TINY = dict(hidden=64, layers=4, heads=2, intermediate=128)
# Files that run longest, started first on a worker so that they overlap the rest of the suite
# (with `--dist loadfile --no-loadscope-reorder` files are handed out in collection order).
LONGEST_FIRST = ("tests/test_readme.py",)


def pytest_collection_modifyitems(config, items):
    if XDIST_WORKER:
        items.sort(key=lambda item: item.nodeid.split("::")[0] not in LONGEST_FIRST)  # stable: else as collected


def make_sentences(n: int, seed: int) -> list[tuple[str, str]]:
    """Sentences whose label is set by the one keyword they contain (classes in turn)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        key = rng.choice(GROUPS[label])
        words = rng.choices(FILLER, k=rng.randint(3, 8))
        words.insert(rng.randint(0, len(words)), key)
        rows.append((" ".join(words), label))
    return rows


def _bert_tokenizer(path: Path):
    from transformers import BertTokenizerFast

    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + WORDS + PIECES) + "\n", encoding="utf-8")
    return BertTokenizerFast(**_files(BertTokenizerFast, vocab=vocab), do_lower_case=True)


def _roberta_tokenizer(path: Path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    texts = [s for s, _ in make_sentences(200, 99)] + [" ".join(WORDS)]
    bpe.train_from_iterator(
        texts, vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    bpe.save_model(str(path))
    return RobertaTokenizerFast(**_files(RobertaTokenizerFast, vocab=path / "vocab.json", merges=path / "merges.txt"))


def _files(cls, **paths: Path) -> dict[str, str]:
    """transformers 5 names tokenizer files ``vocab``/``merges``; 4.x ``vocab_file``/``merges_file``."""
    params = inspect.signature(cls.__init__).parameters
    return {(name if name in params else f"{name}_file"): str(p) for name, p in paths.items()}


def build_tiny_model(arch: str, path: Path, seed: int = 0, positions: int = 64, layers: int | None = None) -> Path:
    """Save a tiny random base model (no task head) and its tokenizer into ``path``."""
    import transformers

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _roberta_tokenizer(path) if arch == "roberta" else _bert_tokenizer(path)
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    if arch == "bert":
        config = transformers.BertConfig(
            vocab_size=vocab,
            hidden_size=TINY["hidden"],
            num_hidden_layers=layers or TINY["layers"],
            num_attention_heads=TINY["heads"],
            intermediate_size=TINY["intermediate"],
            max_position_embeddings=positions,
            initializer_range=0.02,
        )
        model = transformers.BertModel(config)
    elif arch == "roberta":
        config = transformers.RobertaConfig(
            vocab_size=vocab,
            hidden_size=TINY["hidden"],
            num_hidden_layers=TINY["layers"],
            num_attention_heads=TINY["heads"],
            intermediate_size=TINY["intermediate"],
            max_position_embeddings=66,
            initializer_range=0.02,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        model = transformers.RobertaModel(config)
    elif arch == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=vocab,
            dim=TINY["hidden"],
            n_layers=TINY["layers"],
            n_heads=TINY["heads"],
            hidden_dim=TINY["intermediate"],
            max_position_embeddings=64,
            initializer_range=0.02,
        )
        model = transformers.DistilBertModel(config)
    else:
        raise ValueError(arch)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {arch: build_tiny_model(arch, root / arch) for arch in ARCHS}


@pytest.fixture(scope="session")
def tiny_bert(tiny_models) -> Path:
    return tiny_models["bert"]


def write_task(root: Path, n_train: int = 240, n_dev: int = 60, n_test: int = 60, seed: int = 1) -> Path:
    """Write train/dev/test CSVs and a YAML card for the keyword task; return the card path."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n, split_seed in (("train", n_train, seed), ("dev", n_dev, seed + 1), ("test", n_test, seed + 2)):
        with (root / f"{split}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sentence", "label"])
            writer.writerows(make_sentences(n, split_seed))
    card = root / "keywords.yaml"
    card.write_text(
        "name: keywords\n"
        "kind: sequence-classification\n"
        f"labels: [{', '.join(LABELS)}]\n"
        "metric: accuracy\n"
        "fields: {text: sentence}\n"
        "source: {reader: csv, files: {train: train.csv, dev: dev.csv, test: test.csv}}\n"
        "defaults: {epochs: 1}\n",
        encoding="utf-8",
    )
    return card


@pytest.fixture(scope="session")
def keyword_task(tmp_path_factory) -> Path:
    return write_task(tmp_path_factory.mktemp("task"))


@pytest.fixture(scope="session")
def pretrained_tiny_bert(tmp_path_factory, tiny_bert) -> Path:
    """A tiny BERT whose encoder was "pretrained" by finetuning on another sample of the task.

    Masking selects among pretrained features: a random tiny network has none a mask could
    pick (weights of std 0.02 barely carry a keyword to [CLS]). The saved folder holds the
    encoder and pooler only, so a masked run starts from a fresh random classifier.
    """
    import transformers

    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    root = tmp_path_factory.mktemp("pretrain")
    card = write_task(root / "data", seed=11)
    train(
        TrainArgs(
            model=str(tiny_bert),
            task=str(card),
            output=str(root / "ft"),
            method="finetune",
            lr=1e-3,
            epochs=8,
            batch_size=16,
            seed=1,
        )
    )
    finetuned = transformers.AutoModelForSequenceClassification.from_pretrained(root / "ft")
    finetuned.bert.save_pretrained(root / "base")
    transformers.AutoTokenizer.from_pretrained(root / "ft").save_pretrained(root / "base")
    return root / "base"


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance for every Ray test of the session (skipped without ray): 2 CPUs,
    bound to 127.0.0.1, no dashboard, no usage report; never a cluster (``address="local"``
    ignores ``$RAY_ADDRESS``)."""
    ray = pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if not ray.is_initialized():
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="warning"
        )
    yield ray
    ray.shutdown()
