"""``MaskedModel``: one resident base model answering many tasks at once, one bundle per task.

    mm = MaskedModel.from_bundles(["masks/news.bundle", "masks/ner.bundle"])
    mm.predict_many([("bbc-news", "Shares fell in London ..."), ("wnut16", "I saw Taylor Swift")])
    mm.predict("bbc-news", ["Shares fell in London ..."])      # one task: the same call underneath
    mm.load("masks/sport.bundle"); mm.unload("wnut16")          # while serving

It is a scheduler: how a task's mask is applied is the served layers' business
(``masking.served.ServedLinear``: every loaded task held as its flips against one shared
reference weight, mixed batches, merge and unmerge). Here: which layers serve, which reference
they hold, loading and unloading tasks, and running batches:

    requests [(task, input), ...]
      -> encode: results.example_from_input + the kind's encoding, once (a server does it as a
         request arrives)                            -> a RequestError in place for a bad one
      -> run: collate.build_batch collates per task and stacks rows (smallest groups first)
      -> one encoder pass with the batch's row groups routed to the served layers; a run of
         single-task batches merges that task into the weights instead (a dense forward)
      -> per group: the task's head (functional_call with its head tensors) on its rows;
         Kind.select -> Classification / Tagging / Choice

All compute and state changes hold one lock; ``load`` reads, verifies and encodes a bundle
before taking it, so a corrupt file leaves every task serving and other requests wait only for
the final step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.func import functional_call
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions

from maskctl.bundle.format import read_coded, read_meta
from maskctl.bundle.hub_ref import resolve_bundle_ref
from maskctl.bundle.mask_coding import InitialMasks, initial_masks_from_meta
from maskctl.bundle.meta import BundleMeta
from maskctl.devices import resolve_device
from maskctl.errors import BundleError, DuplicateTask, MaskctlError, ModelError
from maskctl.masking.flips import Flips, Removed, encode, pack
from maskctl.masking.served import Group, Routing, ServedLayerNorm, ServedLinear, wrap_for_serving
from maskctl.models import load_tokenizer
from maskctl.serving.collate import Encoded, build_batch, encode_inputs
from maskctl.serving.heads import Precomputed, task_model
from maskctl.serving.loading import check_fit, fingerprint_keys, fit_head, load_base
from maskctl.serving.memory import release_freed_memory
from maskctl.serving.results import RequestError, example_from_input
from maskctl.serving.tasks import ServedTask
from maskctl.tasks.card import TaskCard
from maskctl.tasks.task import Task

log = logging.getLogger(__name__)
Key = tuple  # (seed, threshold, initial sparsity): an initial mask that regenerates for any layer


def _key(initial: InitialMasks | None) -> Key | None:
    return None if initial is None else (initial.seed, initial.threshold, initial.init_sparsity)


def _encoding(served: ServedTask) -> tuple:
    """What a request's encoding depends on: requests encoded for one version of a task run on
    another with the same (a retrained bundle swapped in while they waited)."""
    return served.task.kind.name, tuple(served.task.labels), served.max_length, sorted(served.options.items())


def common_reference(metas: Iterable[dict[str, Any]]) -> Key | None:
    """The initial mask most of these bundles (their stored metadata) were trained from (None:
    none records one): the reference the served layers hold, so those tasks store only the bits
    training flipped."""
    keys = Counter(_key(initial_masks_from_meta(meta)) for meta in metas)
    keys.pop(None, None)
    return keys.most_common(1)[0][0] if keys else None


class MaskedModel:
    """Serve many bundles of one base model; see the module docstring."""

    def __init__(self, base: torch.nn.Module, source, device: torch.device, reference: Key | None = None) -> None:
        self._base = base  # keeps the real encoder: names, shapes and fingerprints are checked on it
        self._prefix = cast(str, base.base_model_prefix)  # a transformers PreTrainedModel's
        self.encoder: torch.nn.Module = getattr(base, self._prefix)
        self._source = source
        self.device = device
        self.reference = reference  # the initial mask new served layers take as their reference
        self._routing = Routing()
        self._stub = Precomputed()
        self._nets: dict[tuple[str, int], torch.nn.Module] = {}
        self._tokenizers: dict[str, Any] = {}
        self._tasks: dict[str, ServedTask] = {}
        self._fingerprints: dict[tuple[str, ...], str] = {}
        self._layers: dict[str, ServedLinear] = {}  # by encoder-relative name
        self._norms: dict[str, ServedLayerNorm] = {}
        self._merged: str | None = None  # the task multiplied into the weights, if any
        self._last_single: str | None = None
        self._lock = threading.RLock()  # compute and every change of the served state
        self._encode_lock = threading.Lock()  # the tokenizers (``encode``)
        self.load_seconds: list[float] = []

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_bundles(
        cls,
        paths: Iterable[str | Path],
        model: str | None = None,
        device: str = "auto",
        reference: Key | None | str = "common",
    ) -> MaskedModel:
        """Load the base model once (from the first bundle, or ``model``) and every bundle. The
        served layers take as reference the initial mask most bundles share (``"common"``), or
        ``reference`` (a key; None: the pristine weights)."""
        paths = [resolve_bundle_ref(p) for p in paths]  # hf:// references: files in the Hugging Face cache
        if not paths:
            raise MaskctlError("no bundle given", "pass one or more *.bundle files")
        raws = [read_meta(p) for p in paths]
        metas = [(BundleMeta.from_dict(raw, p), p) for raw, p in zip(raws, paths)]
        files: dict[str, list[Path]] = {}
        for meta_, path_ in metas:
            files.setdefault(meta_.task_name, []).append(Path(path_))
        for name, same in files.items():
            if len(same) > 1:
                count = {2: "two", 3: "three"}.get(len(same), str(len(same)))
                raise DuplicateTask(
                    f"{count} bundles for task {name!r}: {', '.join(p.name for p in same)}",
                    "pass one bundle per task (maskctl ensemble votes several of one task)",
                )
        meta, path = metas[0]
        dev = resolve_device(device)
        # The multiple-choice model keeps the encoder's pooler (token classification drops it),
        # so tasks of every kind, loaded now or later, can share the encoder.
        try:
            base, source, _ = load_base(meta, model, dev, auto_class="AutoModelForMultipleChoice", where=path)
        except ModelError:  # an architecture without a multiple-choice head
            base, source, _ = load_base(meta, model, dev, where=path)
        key = common_reference(raws) if isinstance(reference, str) else reference  # "common"
        served = cls(base, source, dev, key)
        for p in paths:
            served.load(p)
        return served

    def load(self, path: str | Path, replaces: str | None = None) -> str:
        """Load one bundle while serving; returns its task name. Reading, decoding and encoding
        happen before the lock, so other tasks' requests wait only for the final step.

        ``replaces`` names a loaded task this bundle takes over from (a changed file): the new
        version is read, verified and fit-checked beside it, and only then swapped in, within
        one hold of the lock; if anything fails the old version goes on serving (Triton's rule)."""
        tick = time.perf_counter()
        coded, head = read_coded(path)
        decoded = coded.decode_all()  # verifies every layer (CRC) before anything changes
        info = coded.info
        task = Task.from_card(TaskCard.from_dict(info.task.card))
        cut = len(self._prefix) + 1
        masks = {n[cut:]: m.numpy() for n, m in decoded.items() if n.startswith(self._prefix + ".")}
        fresh = self._fresh_layers(masks, coded.initial)  # new layers' reference (regenerated from its seed)
        flips = self._encode(masks, fresh)
        tokenizer = self._tokenizers.get(task.kind.name) or load_tokenizer(self._source, **task.kind.tokenizer_kwargs)
        with self._lock:
            if task.name in self._tasks and task.name != replaces:
                served_from = Path(self._tasks[task.name].path).name
                raise DuplicateTask(
                    f"{path}: task {task.name!r} is already served from {served_from}",
                    "unload it first, or keep one bundle per task in a served folder (maskctl ensemble votes several)",
                )
            self._unmerge()
            if all(key in self._fingerprints for key in fingerprint_keys(info)):
                self._check_base(info, path)
            else:
                with self._pristine():  # a new fingerprint reads the pretrained weights
                    self._check_base(info, path)
            net = self._net_for(task)
            effective = self._effective_head(net, head, decoded, path)
            if replaces in self._tasks:  # every check passed: the old version goes now
                self._drop(replaces)
            deltas = self._deltas(coded)
            self._wrap(list(masks) + sorted({name.rpartition(".")[0] for name in deltas}), fresh)
            if set(flips) != set(self._layers) or any(self._layers[n].removed is not fresh[n][1] for n in fresh):
                flips = self._encode(masks, {})  # rare: another load served these layers meanwhile
            packed = pack({n: f for n, f in flips.items() if f is not None})
            for name, layer in self._layers.items():
                layer.add_task(task.name, packed.get(name), deltas.get(f"{name}.bias"))
            for name, norm in self._norms.items():
                norm.add_task(task.name, deltas.get(f"{name}.weight"), deltas.get(f"{name}.bias"))
            record = info.training
            self._tasks[task.name] = ServedTask(
                name=task.name,
                task=task,
                path=str(path),
                head=effective,
                net_key=(task.kind.auto_class, len(task.labels)),
                options=record.kind_options,
                max_length=min(record.max_length, self._position_limit(tokenizer)),
                facts=ServedTask.facts_of(info),
            )
            self._tokenizers.setdefault(task.kind.name, tokenizer)
        del decoded, masks, head, flips
        release_freed_memory()
        self.load_seconds.append(time.perf_counter() - tick)
        return task.name

    def _fresh_layers(
        self, masks: dict[str, np.ndarray], initial: InitialMasks | None
    ) -> dict[str, tuple[np.ndarray | None, Removed]]:
        """Each layer this task masks that no served layer holds yet, with the reference it will
        take: the shared initial mask when the task was trained from it (the first task's own
        when none is set), else none (the layer keeps ``W``); and the weights that removes."""
        if self.reference is None and not self._tasks and initial is not None:
            self.reference = _key(initial)
        generator = InitialMasks(*self.reference) if self.reference and _key(initial) == self.reference else None
        fresh: dict[str, tuple[np.ndarray | None, Removed]] = {}
        for name, mask in masks.items():
            if name in self._layers:
                continue
            if generator is None:
                fresh[name] = (None, Removed.none(mask.shape[0]))
                continue
            reference = generator.mask(generator.scores(f"{self._prefix}.{name}", mask.size)).reshape(mask.shape)
            weight = cast(torch.nn.Linear, self.encoder.get_submodule(name)).weight  # not served yet: nobody writes it
            fresh[name] = (reference, Removed.of(weight.detach().to("cpu", torch.float32).numpy(), reference))
        return fresh

    def _encode(
        self, masks: dict[str, np.ndarray], fresh: dict[str, tuple[np.ndarray | None, Removed]]
    ) -> dict[str, Flips | None]:
        """The task's flips on every layer that will serve (None where it has none)."""
        out = {name: layer.encode(masks.get(name)) for name, layer in self._layers.items()}
        for name, (reference, removed) in fresh.items():
            flips = encode(masks[name], np.ones(masks[name].shape, bool) if reference is None else reference, removed)
            out[name] = flips if flips.count else None
        return out

    def _wrap(self, names: list[str], fresh: dict[str, tuple[np.ndarray | None, Removed]]) -> None:
        """Serve these layers: a new one takes its reference, and the tasks loaded before get
        their all-ones flips there."""
        for name, layer in wrap_for_serving(self.encoder, names, self._routing).items():
            if isinstance(layer, ServedLayerNorm):
                self._norms[name] = layer
            elif name not in self._layers:
                self._layers[name] = layer
                reference, removed = fresh.get(name, (None, layer.removed))
                if reference is not None:
                    layer.rebase(self.reference, reference, removed)
                    for other in self._tasks:
                        layer.add_task(other, layer.encode(None))
                else:
                    layer.removed = removed

    def unload(self, name: str) -> None:
        """Drop a task and the memory it holds; requests already running finish first."""
        with self._lock:
            self.task(name)
            self._drop(name)
            release_freed_memory()

    def _drop(self, name: str) -> None:
        if self._merged == name:
            self._unmerge()
        layers: list[ServedLinear | ServedLayerNorm] = [*self._layers.values(), *self._norms.values()]
        for layer in layers:
            layer.remove_task(name)
        del self._tasks[name]

    def _position_limit(self, tokenizer) -> int:
        """The longest input the base model takes: a bundle's max length beyond it (trained on
        short texts) is cut to it, so a long request is truncated instead of failing."""
        limit = getattr(self._base.config, "max_position_embeddings", None) or 10**6
        declared = getattr(tokenizer, "model_max_length", None)
        return min(limit, declared) if declared and declared < 10**6 else limit

    def _check_base(self, info: BundleMeta, path) -> None:
        """The encoder layers (and tuned parameters) of the bundle against the served base
        (``loading.check_fit``); tuned parameters serve only inside the shared encoder."""
        check_fit(
            self._base,
            info,
            path,
            self._source.spec,
            "serve together only bundles of the same base model",
            encoder_only=True,
            fingerprints=self._fingerprints,
        )
        outside = [n for n in (info.tuned.tensors if info.tuned else []) if not n.startswith(self._prefix + ".")]
        if outside:
            raise BundleError(
                f"{path}: tuned tensor {outside[0]} is outside the shared encoder",
                "serve it alone with maskctl eval / predict, or train it without --also-train",
            )

    def _deltas(self, coded) -> dict[str, torch.Tensor]:
        """A task's tuned deltas (float16) by encoder-relative parameter name."""
        cut = len(self._prefix) + 1
        return {name[cut:]: delta for name, delta in coded.tuned.items() if name.startswith(self._prefix + ".")}

    def _net_for(self, task: Task) -> torch.nn.Module:
        key = (task.kind.auto_class, len(task.labels))
        if key not in self._nets:
            self._nets[key] = task_model(self._base, task, self._prefix, self._stub, self.device)
        return self._nets[key]

    def _effective_head(self, net, head, masks, path) -> dict[str, torch.Tensor]:
        """The bundle's head tensors with its head masks multiplied in (checked against ``net``)."""
        fit_head(
            {k: tuple(p.shape) for k, p in net.named_parameters()},
            head,
            path,
            "serve together only bundles of the same base model",
            complete=True,
        )
        effective = {k: t.to(self.device, torch.float32).clone() for k, t in head.items()}
        for name, mask in masks.items():
            if not name.startswith(self._prefix + ".") and f"{name}.weight" in effective:
                effective[f"{name}.weight"].mul_(mask.to(self.device, torch.float32))
        return effective

    # -- the served weights --------------------------------------------------------------------
    def _served(self) -> list[Any]:
        return [*self._layers.values(), *self._norms.values()]

    def _merge(self, name: str) -> None:
        if self._merged != name:
            for layer in self._served():
                layer.merge(name)
            self._merged = name

    def _unmerge(self) -> None:
        if self._merged is not None:
            for layer in self._served():
                layer.unmerge()
            self._merged = None

    @contextlib.contextmanager
    def _pristine(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for layer in self._layers.values():
                stack.enter_context(layer.pristine())
            yield

    # -- prediction ----------------------------------------------------------------------------
    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    def task(self, name: str) -> Task:
        if name not in self._tasks:
            raise MaskctlError(f"no bundle for task {name!r}", f"loaded tasks: {', '.join(self._tasks) or 'none'}")
        return self._tasks[name].task

    def encoding(self, name: str) -> tuple[Any, int]:
        """The tokenizer and the max length a loaded task's inputs are encoded with."""
        served = self._tasks[name]
        return self._tokenizers[served.task.kind.name], served.max_length

    def describe(self, name: str) -> dict[str, Any]:
        """What a client needs to know of a served task: kind, labels, base model, dev metrics."""
        self.task(name)
        served = self._tasks[name]
        card = served.task.card
        return {
            "name": name,
            "kind": card.kind,
            "labels": list(card.labels),
            "description": card.description,
            "base_model": served.facts["base_model"],
            "metric": card.metric,
            "metrics": served.facts["metrics"],
            "max_length": served.max_length,
            "sparsity": served.facts["sparsity"],
        }

    def predict(self, name: str, inputs: Sequence[Any], batch_size: int = 32) -> list:
        """Predictions of one task (``predict_many`` underneath); a bad input raises."""
        self.task(name)
        results = self.predict_many([(name, item) for item in inputs], batch_size=batch_size)
        for result in results:
            if isinstance(result, RequestError):
                raise MaskctlError(f"input {result.index}: {result.message}", result.fix)
        return results

    def predict_many(self, requests: Sequence[tuple[str, Any]], batch_size: int = 32) -> list:
        """One result per ``(task, input)`` request, in order: ``Classification``, ``Tagging`` or
        ``Choice``, or a ``RequestError`` for a request naming no loaded task or not fitting its
        kind (the others are answered). Up to ``batch_size`` requests share one encoder pass."""
        return self.run(self.encode(requests), batch_size)

    def encode(self, requests: Sequence[tuple[str, Any]]) -> list[Encoded | RequestError]:
        """Each ``(task, input)`` request checked against its task's kind and tokenised: an
        ``Encoded`` (what ``run`` batches), or a ``RequestError`` in its place. Thread-safe (one
        encoding at a time: a fast tokenizer refuses to be reconfigured while another thread
        uses it); ``maskctl serve`` calls it as a request arrives, off the compute thread."""
        results: list[Any] = [None] * len(requests)
        tasks: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for index, request in enumerate(requests):
            if not isinstance(request, (tuple, list)) or len(request) != 2:
                results[index] = RequestError(
                    index, None, "a request is a (task, input) pair", 'e.g. ("bbc-news", "Shares fell")'
                )
                continue
            name, item = request
            served = self._tasks.get(name)
            if served is None:
                results[index] = RequestError(
                    index,
                    name,
                    f"task {name!r} is not loaded",
                    f"use one of: {', '.join(self._tasks) or 'none (load a bundle)'}",
                    404,
                )
                continue
            try:
                example = example_from_input(served.task, item)
            except ValueError as exc:
                results[index] = RequestError(index, name, f"{name} {exc}", served.task.kind.input_hint)
                continue
            tasks.setdefault(name, []).append((index, example))
        with self._encode_lock:
            for name, items in tasks.items():
                served = self._tasks[name]
                tokenizer = self._tokenizers[served.task.kind.name]
                encoded: list[Encoded | RequestError]
                try:
                    encoded = list(encode_inputs(served, [example for _, example in items], tokenizer))
                except Exception:  # noqa: BLE001 - an input the tokenizer refuses: each alone, to find it
                    encoded = [self._encode_alone(served, index, example, tokenizer) for index, example in items]
                for (index, _), one in zip(items, encoded):
                    results[index] = one
        return results

    @staticmethod
    def _encode_alone(served: ServedTask, index: int, example: dict[str, Any], tokenizer) -> Encoded | RequestError:
        """One input the kind's encoding refuses answers 400 alone, whatever the tokenizer
        raised (IndexError, ValueError, TypeError, ...): the input passed every check before."""
        try:
            return encode_inputs(served, [example], tokenizer)[0]
        except Exception as exc:  # noqa: BLE001 - the input is at fault, alone
            return RequestError(
                index,
                served.name,
                f"{served.name} cannot encode this input ({type(exc).__name__}: {str(exc)[:160]})",
                served.task.kind.input_hint,
                stage="encoding",
            )

    def run(self, encoded: Sequence[Encoded | RequestError], batch_size: int = 32) -> list:
        """The results of encoded requests (``encode``), in order; a ``RequestError`` stays in its
        place. Up to ``batch_size`` requests share one encoder pass."""
        results = [item if isinstance(item, RequestError) else None for item in encoded]
        valid = [(index, item) for index, item in enumerate(encoded) if isinstance(item, Encoded)]
        for start in range(0, len(valid), batch_size):
            self._run_isolated(valid[start : start + batch_size], results)
        return results

    def _run_isolated(self, chunk: list[tuple[int, Encoded]], results: list[Any]) -> None:
        """``_run``, and if the batch fails, its halves again until the request at fault is
        alone: it fails alone (a bug, logged with its traceback: a 500 for that request)."""
        try:
            with self._lock:
                self._run(chunk, results)
            return
        except Exception:
            if len(chunk) > 1:
                half = len(chunk) // 2
                self._run_isolated(chunk[:half], results)
                self._run_isolated(chunk[half:], results)
                return
            index, encoded = chunk[0]
            log.exception("request %d (task %s) failed", index, encoded.served.name)
            results[index] = RequestError(
                index, encoded.served.name, "internal error on this input", "the server log has the details", status=500
            )

    @torch.inference_mode()
    def _run(self, chunk: list[tuple[int, Encoded]], results: list[Any]) -> None:
        parts: dict[str, list[tuple[int, Encoded]]] = {}
        for index, encoded in chunk:
            served, current = encoded.served, self._tasks.get(encoded.served.name)
            if current is None:  # unloaded while waiting
                results[index] = RequestError(
                    index,
                    served.name,
                    f"task {served.name!r} was unloaded",
                    f"use one of: {', '.join(self._tasks) or 'none'}",
                    404,
                )
                continue
            if current is not served:  # a new version of the task took over while it waited
                if _encoding(current) != _encoding(served):
                    results[index] = RequestError(
                        index,
                        served.name,
                        f"task {served.name!r} was reloaded with other labels or encoding settings",
                        "send the request again",
                        409,
                    )
                    continue
                encoded = dataclasses.replace(encoded, served=current)  # its features stand
            parts.setdefault(served.name, []).append((index, encoded))
        if not parts:
            return
        names = list(parts)
        single = names[0] if len(names) == 1 else None
        if single is not None and single in (self._last_single, self._merged):
            self._merge(single)
        else:
            self._unmerge()
        self._last_single = single
        batch = build_batch(parts, self._tokenizers, self.device)
        groups = [] if self._merged else [Group(g.start, g.stop, g.served.name) for g in batch.groups]
        with self._routing.route(groups):
            out = self.encoder(**batch.inputs)
        hidden, pooled = out[0], getattr(out, "pooler_output", None)
        for group in batch.groups:
            served = group.served
            self._stub.output = BaseModelOutputWithPoolingAndCrossAttentions(
                last_hidden_state=hidden[group.start : group.stop, : group.length],
                pooler_output=None if pooled is None else pooled[group.start : group.stop],
            )
            kwargs = {k: v.to(self.device) for k, v in group.batch.items() if k != "labels"}
            logits = functional_call(self._nets[served.net_key], served.head, (), kwargs, strict=False).logits
            scores, _ = served.task.kind.select(logits, group.batch)
            for index, encoded, score in zip(group.indices, group.encoded, scores):
                results[index] = served.task.kind.result(
                    served.task.labels, encoded.example, score, encoded.truncated, encoded.kept_words
                )
        self._stub.output = None

    # -- memory --------------------------------------------------------------------------------
    def task_bytes(self, name: str) -> int:
        """What one loaded task holds: its flips and tuned deltas in every served layer, and its
        head tensors."""
        return sum(layer.nbytes(name) for layer in self._served()) + self._tasks[name].head_bytes()

    def memory(self) -> dict[str, int]:
        """Bytes held beyond the base model: the tasks' flips (and tuned deltas) and heads, and
        the values the reference masks remove (held once for every task)."""
        flips = sum(layer.nbytes(name) for layer in self._served() for name in self._tasks)
        heads = sum(served.head_bytes() for served in self._tasks.values())
        return {
            "tasks": len(self._tasks),
            "flips_bytes": flips,
            "heads_bytes": heads,
            "reference_bytes": sum(layer.removed.nbytes for layer in self._layers.values()),
            "served_layers": len(self._layers),
        }

    def close(self) -> None:
        """Unmerge, so the served weights are the shared reference weights again."""
        with self._lock:
            self._unmerge()
            self._last_single = None
