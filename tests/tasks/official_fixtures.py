"""A few lines of each of the paper's eleven tasks in its official on-disk format.

Each writer fills ``root`` with the files the task card's ``files:`` section names, with the
real layout quirks: GLUE's unquoted TSVs (and CoLA's header-less one), TREC's Latin-1
``COARSE:fine`` lines, AG News' header-less CSV with class numbers, SemEval's header-less TSV,
CoNLL-2003's -DOCSTART- lines and 4 columns, PTB ``word tag`` columns, SWAG's CSV.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

SENTENCES = [
    "the film was good",
    "a bad plot and a poor actor",
    "really nice story today",
    "this song is awful",
    "the team won the match",
    "what a great day",
]


def _lines(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))


def sst2(root: Path) -> None:
    for split in ("train", "dev"):
        _lines(root / f"{split}.tsv", ["sentence\tlabel"] + [f'{s} " quoted\t{i % 2}' for i, s in enumerate(SENTENCES)])


def mrpc(root: Path) -> None:
    for split in ("train", "dev"):
        rows = [f"{i % 2}\t{100 + i}\t{200 + i}\t{a}\t{b}" for i, (a, b) in enumerate(itertools.pairwise(SENTENCES))]
        _lines(root / f"{split}.tsv", ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"] + rows)


def cola(root: Path) -> None:
    for split in ("train", "dev"):
        _lines(root / f"{split}.tsv", [f"gj04\t{i % 2}\t{'' if i % 2 else '*'}\t{s}" for i, s in enumerate(SENTENCES)])


def _pairs_tsv(root: Path, first: str, second: str) -> None:
    labels = ["entailment", "not_entailment"]
    for split in ("train", "dev"):
        rows = [f"{i}\t{a}\t{b}\t{labels[i % 2]}" for i, (a, b) in enumerate(zip(SENTENCES, SENTENCES[2:]))]
        _lines(root / f"{split}.tsv", [f"index\t{first}\t{second}\tlabel"] + rows)


def rte(root: Path) -> None:
    _pairs_tsv(root, "sentence1", "sentence2")


def qnli(root: Path) -> None:
    _pairs_tsv(root, "question", "sentence")


def trec(root: Path) -> None:
    coarse = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    train = [f"{coarse[i % 6]}:other what is the caf\u00e9 number {i} ?" for i in range(30)]
    _lines(root / "train_5500.label", train, encoding="latin-1")
    _lines(root / "TREC_10.label", train[:12], encoding="latin-1")


def ag(root: Path) -> None:
    for name, n in (("train.csv", 40), ("test.csv", 8)):
        with (root / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
            for i in range(n):
                writer.writerow([str(i % 4 + 1), f"Title, number {i}", SENTENCES[i % len(SENTENCES)]])


def sem(root: Path) -> None:
    labels = ["negative", "positive"]
    for name in ("twitter-2016train-BD.txt", "twitter-2016dev-BD.txt", "twitter-2016test-BD.txt"):
        _lines(root / name, [f"{6000 + i}\tthe film\t{labels[i % 2]}\t@user {s} #tag" for i, s in enumerate(SENTENCES)])


def pos(root: Path) -> None:
    block = ["The DT", "unbelievable JJ", "film NN", "( (", "was VBD", ") )", "good JJ", ". ."]
    for name in ("train.txt", "dev.txt", "test.txt"):
        _lines(root / name, block + [""] + ["It PRP", "is VBZ", "nice JJ", ". ."] + [""])


CONLL03_SENTENCE = [
    "EU NNP I-NP I-ORG",
    "rejects VBZ I-VP O",
    "German JJ I-NP I-MISC",
    "call NN I-NP O",
    "to TO I-VP O",
    "boycott VB I-VP O",
    "British JJ I-NP I-MISC",
    "lamb NN I-NP O",
    ". . O O",
]


def conll03(root: Path) -> None:
    for name in ("eng.train", "eng.testa", "eng.testb"):
        _lines(
            root / name,
            ["-DOCSTART- -X- -X- O", ""]
            + CONLL03_SENTENCE
            + ["", "Peter NNP I-NP I-PER", "Blackburn NNP I-NP I-PER", ""],
        )


def swag(root: Path) -> None:
    header = [
        "",
        "video-id",
        "fold-ind",
        "startphrase",
        "sent1",
        "sent2",
        "gold-source",
        "ending0",
        "ending1",
        "ending2",
        "ending3",
        "label",
    ]
    for name in ("train.csv", "val.csv"):
        with (root / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for i in range(8):
                writer.writerow(
                    [
                        i,
                        "anetv_x",
                        i,
                        "start",
                        "The man walks to the team.",
                        "He",
                        "gold",
                        "sings a song.",
                        "plays the match.",
                        "eats soup.",
                        "reads a book.",
                        i % 4,
                    ]
                )


WRITERS = {f.__name__: f for f in (sst2, mrpc, cola, rte, qnli, trec, ag, sem, pos, conll03, swag)}
