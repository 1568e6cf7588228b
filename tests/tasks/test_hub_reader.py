"""The hub reader against the loopback stand-in Hub (``tests/bundle/fake_hub.py``), as
``datasets`` 5 sees it through ``HF_ENDPOINT``: a script-only repository with a parquet
conversion is read from ``refs/convert/parquet``; one without a conversion, a missing one and an
uncached one offline each fail with their own typed one-line error; a conversion read once online
loads again offline. Each read runs in a fresh interpreter, since ``datasets`` and
``huggingface_hub`` read ``HF_ENDPOINT`` and the offline flags at import."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundle"))
from fake_hub import FakeHub

TAGS = ["O", "B-PER", "I-PER"]
SCRIPT = b"import datasets\n\nclass Conll(datasets.GeneratorBasedBuilder):\n    pass\n"
READ = r"""
import json, logging, sys
logging.basicConfig(level="WARNING", format="LOG %(message)s")
from maskctl.errors import MaskctlError
from maskctl.tasks.card import TaskCard
from maskctl.tasks.readers import read_split
source = json.loads(sys.argv[1])
card = TaskCard(name="ner", kind="token-tagging", labels=TAGS, fields={"tokens": "tokens", "tags": "ner_tags"},
                source={"reader": "hub", **source}, files={"reader": "conll", "files": {"train": "eng.train"}})
try:
    print("ROWS " + json.dumps({s: read_split(card, s) for s in ("train", "dev")}))
except MaskctlError as exc:
    print(f"ERROR {type(exc).__name__}: {exc}")
""".replace("TAGS", repr(TAGS))


def _parquet(rows: int) -> bytes:
    import datasets

    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=TAGS)),
        }
    )
    buffer = io.BytesIO()
    datasets.Dataset.from_dict(
        {"tokens": [["Ada", f"w{i}"] for i in range(rows)], "ner_tags": [[1, 0]] * rows}, features=features
    ).to_parquet(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def hub():
    with FakeHub() as server:
        conversion = {
            "regular/train/0000.parquet": _parquet(5),
            "regular/validation/0000.parquet": _parquet(2),
            "full/train/0000.parquet": _parquet(7),
            "full/validation/0000.parquet": _parquet(3),
        }
        server.add_dataset(
            "org/conll", {"conll.py": SCRIPT, "README.md": b"# conll\n"}, branches={"refs/convert/parquet": conversion}
        )
        server.add_dataset("org/script-only", {"script-only.py": SCRIPT})
        yield server


def _read(hub: FakeHub, home: Path, offline: bool = False, **source) -> str:
    flag = "1" if offline else "0"
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(home),
        "HF_HUB_OFFLINE": flag,
        "HF_DATASETS_OFFLINE": flag,
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    env.pop("HF_DATASETS_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-c", READ, json.dumps(source)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def _rows(output: str) -> dict:
    line = next(line for line in output.splitlines() if line.startswith(("ROWS ", "ERROR ")))
    assert line.startswith("ROWS "), line
    return json.loads(line[5:])


def test_a_script_only_repository_is_read_from_its_parquet_conversion_then_offline_from_the_cache(hub, tmp_path):
    output = _read(hub, tmp_path, path="org/conll", name="regular")
    rows = _rows(output)
    assert rows["train"][0] == {"tokens": ["Ada", "w0"], "tags": ["B-PER", "O"]}  # ClassLabel names kept
    assert (len(rows["train"]), len(rows["dev"])) == (5, 2)  # the named configuration only, not all files
    assert "holds only a loading script" in output and "refs/convert/parquet" in output
    assert any("/full/" not in p and "/regular/train/" in p for _, p in hub.dataset_requests("org/conll"))

    offline = _rows(_read(hub, tmp_path, offline=True, path="org/conll", name="regular"))
    assert offline == rows
    assert _rows(_read(hub, tmp_path, path="org/conll", name="full"))["train"][6]["tokens"] == ["Ada", "w6"]


def test_a_card_naming_the_conversion_reads_it_without_trying_the_script(hub, tmp_path):
    before = len(hub.dataset_requests("org/conll"))
    output = _read(hub, tmp_path, path="org/conll", name="full", revision="refs/convert/parquet")
    assert len(_rows(output)["dev"]) == 3 and "holds only a loading script" not in output
    assert not any("/resolve/main/" in p for _, p in hub.dataset_requests("org/conll")[before:])


@pytest.mark.parametrize(
    "source, error, words",
    [
        ({"path": "org/script-only"}, "DatasetScriptOnly", ["only a loading script", "--data-dir (eng.train)"]),
        ({"path": "org/absent"}, "DatasetNotFound", ["not found", "check the dataset id"]),
        ({"path": "org/conll"}, "DatasetNotFound", ["configurations ['full', 'regular']", "source.name"]),
    ],
)
def test_each_failure_online_says_what_happened_and_its_fix(hub, tmp_path, source, error, words):
    line = next(line for line in _read(hub, tmp_path, **source).splitlines() if line.startswith(("ROWS", "ERROR")))
    assert line.startswith(f"ERROR {error}: ") and all(w in line for w in words), line
    assert "offline" not in line


def test_offline_and_not_cached_says_so_not_that_it_is_missing(hub, tmp_path):
    line = next(
        line
        for line in _read(hub, tmp_path, offline=True, path="org/conll", name="regular").splitlines()
        if line.startswith(("ROWS", "ERROR"))
    )
    assert line.startswith("ERROR DatasetOffline: ") and "offline and not in the datasets cache" in line, line
    assert "--data-dir (eng.train)" in line


def test_every_shipped_hub_card_names_an_organisation_repository_that_needs_no_script():
    from maskctl.tasks.registry import get_card, task_names

    hub_cards = {n: get_card(n) for n in task_names() if get_card(n).source.get("reader") == "hub"}
    assert set(hub_cards) >= {"sst2", "mrpc", "cola", "rte", "qnli", "trec", "ag", "conll03", "swag"}
    for name, card in hub_cards.items():
        assert "/" in card.source["path"], f"{name}: {card.source['path']} is a legacy id the Hub redirects"
    for name in ("conll03", "trec"):  # script-only upstream: the card reads the conversion directly
        assert hub_cards[name].source["revision"] == "refs/convert/parquet"
