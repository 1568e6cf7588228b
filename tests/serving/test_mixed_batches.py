"""Mixed-task batches: any mix of tasks and kinds in one call equals each task served alone
(the merged model ``maskctl eval`` scores), the shared weights never change, each loaded task
holds under one bit per masked weight, tasks load and unload while others are served, and a
bad request gets its own error while the rest of its batch is answered."""

from __future__ import annotations

import random
import threading

import pytest
import torch

from maskctl.bundle.format import load_bundle
from maskctl.errors import BundleError
from maskctl.evaluation import collect_scores, make_loader
from maskctl.serving import Choice, Classification, MaskedModel, RequestError, Tagging
from maskctl.serving.loading import load_masked

TEXTS = ["the film was good", "a team and a match today", "bad soup and poor bread", "really nice pizza"]
TOKENS = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"], ["the", "goal", "was", "great"]]
CHOICES = [
    {"context": "The man", "endings": ["a", "b", "c", "d"]},
    {"context": "A team plays", "endings": ["goal", "soup", "film", "day"]},
]


def reference(path, inputs):
    """Scores of the merged single-task model (eval's) for raw inputs, through the same kind code."""
    from maskctl.serving.results import example_from_input

    masked = load_masked(load_bundle(path))
    task = masked.task
    args = masked.bundle.meta["training"]
    examples = [example_from_input(task, item) for item in inputs]
    features = task.kind.encode(
        task.card, masked.tokenizer, examples, args["max_length"], {"word_piece": args["word_piece"]}
    )
    scores, _ = collect_scores(
        masked.model, make_loader(features, task.kind.collate(masked.tokenizer), 64), task, torch.device("cpu")
    )
    return [s.softmax(-1) for s in scores]


def probabilities(result) -> list[float]:
    if isinstance(result, Classification):
        return list(result.probabilities.values())
    if isinstance(result, Choice):
        return result.probabilities
    raise TypeError(result)


@pytest.fixture(scope="module")
def served_paths(three_tasks, other_keywords):
    paths, _ = three_tasks
    return {**paths, "keywords-b": other_keywords}


@pytest.fixture(scope="module")
def expected(served_paths):
    inputs = {"keywords": TEXTS, "keywords-b": TEXTS, "conll03": TOKENS, "swag": CHOICES}
    return inputs, {name: reference(path, inputs[name]) for name, path in served_paths.items()}


def check(result, name, probs, labels):
    if name == "conll03":
        assert isinstance(result, Tagging)
        assert result.tags == [labels[i] for i in probs.argmax(-1).tolist()]
        assert max(abs(a - b) for a, b in zip(result.scores, probs.max(-1).values.tolist())) < 1e-5
    else:
        assert max(abs(a - b) for a, b in zip(probabilities(result), probs.tolist())) < 1e-5
        assert int(torch.tensor(probabilities(result)).argmax()) == int(probs.argmax())


@pytest.mark.parametrize(
    "seed,dense_from,kernel",
    [(0, 64, "auto"), (1, 1, "auto"), (2, 10**9, "auto"), (3, 10**9, "torch"), (4, 1, "torch")],
    ids=["measured-switch", "all-dense-products", "all-sparse-terms", "plain-pytorch-terms", "plain-pytorch-dense"],
)
def test_any_mix_equals_each_task_alone(served_paths, expected, seed, dense_from, kernel, monkeypatch):
    """Every path of the forward: terms from the flips through the compiled kernel or its
    plain-PyTorch twin, and long groups as dense products of their own (flips written in)."""
    monkeypatch.setattr("maskctl.masking.served.DENSE_MIN_TOKENS", dense_from)
    if kernel == "torch":
        monkeypatch.setenv("MASKCTL_KERNEL", "torch")
    inputs, want = expected
    served = MaskedModel.from_bundles(list(served_paths.values()))
    check_mixed_then_single(served, inputs, want, seed, (3, 32), random.Random(seed).sample(list(inputs), len(inputs)))


def check_mixed_then_single(served, inputs, want, seed, batch_sizes, single_order) -> None:
    """Shuffled mixed batches of every request, then single-task calls (merged mode after a
    task's first batch) in ``single_order``, all equal ``want``; the pristine weights afterwards."""
    pristine = {k: v.clone() for k, v in served.encoder.state_dict().items()}
    requests = [(name, i) for name in inputs for i in range(len(inputs[name]))]
    random.Random(seed).shuffle(requests)
    for batch_size in batch_sizes:
        results = served.predict_many([(name, inputs[name][i]) for name, i in requests], batch_size=batch_size)
        for (name, i), result in zip(requests, results):
            check(result, name, want[name][i], served.task(name).labels)
    for name in single_order:
        for _ in range(2):
            for i, result in enumerate(served.predict(name, inputs[name], batch_size=2)):
                check(result, name, want[name][i], served.task(name).labels)
    served.close()
    assert all(torch.equal(v, served.encoder.state_dict()[k]) for k, v in pristine.items())


def test_bad_requests_get_their_own_error(served_paths):
    served = MaskedModel.from_bundles([served_paths["keywords"], served_paths["swag"]])
    results = served.predict_many(
        [
            ("keywords", "good film"),
            ("nope", "x"),
            ("swag", "not a dict"),
            ("keywords", 42),
            "no pair",
            ("swag", CHOICES[0]),
        ]
    )
    assert isinstance(results[0], Classification) and isinstance(results[5], Choice)
    errors = {r.index: r for r in results if isinstance(r, RequestError)}
    assert sorted(errors) == [1, 2, 3, 4]
    assert "not loaded" in errors[1].message and "keywords" in errors[1].fix
    assert "context" in errors[2].message and "endings" in errors[2].fix
    assert "text" in errors[3].message


def _pristine_weights(served) -> dict[str, torch.Tensor]:
    out = {}
    for name, layer in served._layers.items():
        with layer.pristine():
            out[name] = layer.weight.detach().clone()
    return out


def test_each_task_holds_its_flips_only_and_merges_to_its_exact_mask(served_paths, expected):
    """A loaded task holds, per served layer, the bits its mask differs from the layer's
    reference (about a byte each, and two a row) and nothing else of its masks; merging it
    writes exactly its bundle's mask into the weights."""
    served = MaskedModel.from_bundles(list(served_paths.values()))
    pristine = _pristine_weights(served)
    cut = len(served._prefix) + 1
    for name, path in served_paths.items():
        bundle = load_bundle(path)
        masks = {n[cut:]: m for n, m in bundle.masks.items() if n.startswith(served._prefix + ".")}
        differ = sum(
            int(
                (masks.get(n, torch.ones(layer.weight.shape, dtype=torch.bool)).numpy() != layer.reference_mask()).sum()
            )
            for n, layer in served._layers.items()
        )
        rows = sum(layer.weight.shape[0] for layer in served._layers.values())
        held = sum(layer.nbytes(name) for layer in served._layers.values())
        assert held <= 1.02 * differ + 2 * rows
        assert served.task_bytes(name) == held + sum(t.numel() * 4 for t in bundle.head.values())
        served._merge(name)
        for inner, layer in served._layers.items():
            want = pristine[inner] * masks[inner] if inner in masks else pristine[inner]
            assert torch.equal(layer.weight, want), (name, inner)
    served._unmerge()
    memory = served.memory()
    assert memory["tasks"] == len(served_paths) and memory["flips_bytes"] > 0
    assert memory["reference_bytes"] < sum(w.numel() for w in pristine.values()) * 0.2 * 6  # ~5 % held twice over


def test_load_and_unload_while_serving(served_paths, expected, tmp_path):
    _inputs, want = expected
    served = MaskedModel.from_bundles([served_paths["keywords"]])
    failures, stop = [], threading.Event()

    def traffic():
        while not stop.is_set():
            for result in served.predict_many([("keywords", TEXTS[0]), ("keywords", TEXTS[1])]):
                if not isinstance(result, Classification):
                    failures.append(result)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        for _ in range(2):
            for name in ("conll03", "swag", "keywords-b"):
                assert served.load(served_paths[name]) == name
            result = served.predict_many([("swag", CHOICES[1]), ("keywords-b", TEXTS[2])])
            check(result[0], "swag", want["swag"][1], served.task("swag").labels)
            check(result[1], "keywords-b", want["keywords-b"][2], served.task("keywords-b").labels)
            for name in ("conll03", "swag", "keywords-b"):
                served.unload(name)
        broken = tmp_path / "broken.bundle"
        raw = served_paths["conll03"].read_bytes()
        broken.write_bytes(raw[:-40] + bytes(40))
        with pytest.raises(BundleError):
            served.load(broken)
        with pytest.raises(BundleError, match="already served from keywords.bundle"):
            served.load(served_paths["keywords"])
    finally:
        stop.set()
        worker.join()
    assert not failures
    assert served.tasks == ["keywords"] and served.memory()["tasks"] == 1
    assert all(set(layer.flips) <= {"keywords"} for layer in served._layers.values())  # unloaded tasks hold nothing


def test_a_bundle_of_another_base_is_refused_by_name(served_paths, tiny_models, keyword_task, tmp_path):
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    other = tmp_path / "distil.bundle"
    train(TrainArgs(model=str(tiny_models["roberta"]), task=str(keyword_task), output=str(other), max_steps=1))
    served = MaskedModel.from_bundles([served_paths["keywords"]])
    with pytest.raises(BundleError, match="distil.bundle"):
        served.load(other)
    assert isinstance(served.predict_many([("keywords", "good")])[0], Classification)


def _as_format_1(source, target) -> None:
    """The same bundle in the format-1 layout (packbits, no initial-mask record)."""
    import json

    import numpy as np
    from safetensors.torch import save_file

    bundle = load_bundle(source)
    meta = {k: v for k, v in bundle.meta.items() if k not in ("mask_coding", "path")}
    meta["format_version"] = 1
    meta["layers"] = [{k: v for k, v in layer.items() if k != "coding"} for layer in meta["layers"]]
    tensors = {f"mask/{n}": torch.from_numpy(np.packbits(m.numpy().reshape(-1))) for n, m in bundle.masks.items()}
    tensors.update({f"head/{n}": t for n, t in bundle.head.items()})
    save_file(tensors, str(target), metadata={"format": "maskctl.bundle", "maskctl": json.dumps(meta)})


def test_format_1_bundles_and_other_seeds_mix_exactly(served_paths, expected, tmp_path):
    """The layers take the initial mask most bundles share as reference; a format-1 bundle (no
    initial mask) and a task of another seed hold their flips against it and answer exactly."""
    inputs, want = expected
    old = tmp_path / "keywords-old.bundle"
    _as_format_1(served_paths["keywords"], old)
    assert load_bundle(old).meta["format_version"] == 1
    served = MaskedModel.from_bundles([old, served_paths["keywords-b"], served_paths["conll03"], served_paths["swag"]])
    conll = load_bundle(served_paths["conll03"]).meta["mask"]
    assert served.reference == (conll["seed"], conll["threshold"], conll["init_sparsity"])  # conll03 and swag's
    own = sum(layer.nbytes("conll03") for layer in served._layers.values())
    other = sum(layer.nbytes("keywords-b") for layer in served._layers.values())
    assert other > own  # another seed: its initial mask differs from the reference too
    requests = [(name, inputs[name][i]) for i in range(2) for name in ("keywords", "keywords-b", "conll03", "swag")]
    for (name, _), result, i in zip(requests, served.predict_many(requests), [0] * 4 + [1] * 4):
        check(result, name, want[name][i], served.task(name).labels)
