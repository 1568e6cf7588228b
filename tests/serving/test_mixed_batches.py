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
from maskctl.serving import Choice, Classification, MaskedModel, RequestError, Tagging
from maskctl.serving.loading import load_masked
from maskctl.evaluation import collect_scores, make_loader

TEXTS = ["the film was good", "a team and a match today", "bad soup and poor bread", "really nice pizza"]
TOKENS = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"], ["the", "goal", "was", "great"]]
CHOICES = [{"context": "The man", "endings": ["a", "b", "c", "d"]},
           {"context": "A team plays", "endings": ["goal", "soup", "film", "day"]}]


def reference(path, inputs):
    """Scores of the merged single-task model (eval's) for raw inputs, through the same kind code."""
    from maskctl.serving.results import example_from_input

    masked = load_masked(load_bundle(path))
    task = masked.task
    args = masked.bundle.meta["training"]
    examples = [example_from_input(task, item) for item in inputs]
    features = task.kind.encode(task.card, masked.tokenizer, examples, args["max_length"],
                                {"word_piece": args["word_piece"]})
    scores, _ = collect_scores(masked.model, make_loader(features, task.kind.collate(masked.tokenizer), 64),
                               task, torch.device("cpu"))
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


@pytest.mark.parametrize("seed,dense_from,kernel,cache_mb", [(0, 64, "auto", 0), (1, 1, "auto", 0),
                                                              (2, 10**9, "auto", 0), (3, 10**9, "torch", 512),
                                                              (4, 10**9, "auto", 512)],
                         ids=["measured-switch", "all-dense-products", "all-sparse-terms", "plain-pytorch-terms",
                              "csr-built-from-flips"])
def test_any_mix_equals_each_task_alone(served_paths, expected, seed, dense_from, kernel, cache_mb, monkeypatch):
    """Every path of the forward: the compiled kernel over flipped positions (when numba is
    installed, no cache room), CSR terms built from the flips (cache room), the CSR terms of the
    plain-PyTorch fallback, and dense per-task products."""
    from maskctl.masking.flips import kernel_available

    monkeypatch.setattr("maskctl.masking.mixed.DENSE_MIN_TOKENS", dense_from)
    if kernel == "torch":
        monkeypatch.setenv("MASKCTL_KERNEL", "torch")
    inputs, want = expected
    served = MaskedModel.from_bundles(list(served_paths.values()), cache_mb=cache_mb)
    compact = kernel_available() and cache_mb == 0
    served.predict_many([(name, inputs[name][0]) for name in inputs])
    corrections = [c for name in inputs for c in served._corrections(name, frozenset()).values()]
    assert corrections and all((c.flips is not None) == compact and (c.matrix is None) == compact
                               for c in corrections)
    check_mixed_then_single(served, inputs, want, seed, (3, 32),
                            random.Random(seed).sample(list(inputs), len(inputs)))


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
    results = served.predict_many([("keywords", "good film"), ("nope", "x"), ("swag", "not a dict"),
                                   ("keywords", 42), "no pair", ("swag", CHOICES[0])])
    assert isinstance(results[0], Classification) and isinstance(results[5], Choice)
    errors = {r.index: r for r in results if isinstance(r, RequestError)}
    assert sorted(errors) == [1, 2, 3, 4]
    assert "not loaded" in errors[1].message and "keywords" in errors[1].fix
    assert "context" in errors[2].message and "endings" in errors[2].fix
    assert "text" in errors[3].message


def test_memory_per_task_and_a_tiny_cache(served_paths, expected, monkeypatch):
    """The plain-PyTorch path keeps masks coded and decodes CSR corrections into a bounded LRU."""
    monkeypatch.setenv("MASKCTL_KERNEL", "torch")
    inputs, want = expected
    served = MaskedModel.from_bundles(list(served_paths.values()), cache_mb=0.001)  # below one task
    for _ in range(2):
        results = served.predict_many([(name, inputs[name][0]) for name in inputs])
        for name, result in zip(inputs, results):
            check(result, name, want[name][0], served.task(name).labels)
    memory = served.memory()
    assert memory["decodes"] >= len(inputs)  # evicted between batches, decoded again on demand
    masked = sum(m.numel() for p in served_paths.values() for m in load_bundle(p).masks.values())
    heads = sum(t.numel() * 4 for p in served_paths.values() for t in load_bundle(p).head.values())
    assert memory["coded_bytes"] <= masked / 8 + heads and memory["flips_bytes"] == 0


def test_with_the_kernel_tasks_hold_flips_instead_of_coded_masks(served_paths, expected):
    """Every task is hot: its encoder layers are held as flipped positions only (no coded copy,
    no cache entry, no decode on use), and merging rebuilds its exact mask from them."""
    from maskctl.masking.flips import kernel_available

    if not kernel_available():
        pytest.skip("numba is not installed (the 'fast' extra)")
    inputs, want = expected
    served = MaskedModel.from_bundles(list(served_paths.values()), cache_mb=0.001)
    for name in inputs:
        held = served._tasks[name]
        assert held.flips and not set(held.coded.payloads) & set(held.encoder_layers)
        bundle = load_bundle(served_paths[name])
        rebuilt = held.encoder_masks(served._layers)
        for outer, inner in held.encoder_layers.items():
            weight = served._layers[inner].weight
            # equal wherever it matters: a zero weight is zero under either bit
            assert torch.equal(weight * rebuilt[inner], weight * bundle.masks[outer].to(torch.float32))
    for _ in range(2):
        results = served.predict_many([(name, inputs[name][0]) for name in inputs])
        for name, result in zip(inputs, results):
            check(result, name, want[name][0], served.task(name).labels)
    memory = served.memory()
    assert memory["decodes"] == 0 and memory["corrections_bytes"] == 0
    assert memory["hot_tasks"] == len(inputs) and memory["flips_bytes"] > 0


def test_load_and_unload_while_serving(served_paths, expected, tmp_path):
    inputs, want = expected
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
    assert served.tasks == ["keywords"] and served.memory()["hot_tasks"] == 1  # unloaded tasks hold nothing


def test_a_bundle_of_another_base_is_refused_by_name(served_paths, tiny_models, keyword_task, tmp_path):
    from maskctl.training.trainer import TrainArgs, train

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


def test_format_1_bundles_mix_with_format_2(served_paths, expected, tmp_path):
    inputs, want = expected
    old = tmp_path / "keywords-old.bundle"
    _as_format_1(served_paths["keywords"], old)
    assert load_bundle(old).meta["format_version"] == 1
    served = MaskedModel.from_bundles([old, served_paths["keywords-b"], served_paths["conll03"]])
    assert served.memory()["references"] == 2  # keywords-b's and conll03's seeds; none for format 1
    requests = [(name, inputs[name][i]) for i in range(2) for name in ("keywords", "keywords-b", "conll03")]
    for (name, _), result, i in zip(requests, served.predict_many(requests), [0, 0, 0, 1, 1, 1]):
        check(result, name, want[name][i], served.task(name).labels)
