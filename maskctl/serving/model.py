"""``MaskedModel``: one resident base model answering many tasks at once, one bundle per task.

    mm = MaskedModel.from_bundles(["masks/news.bundle", "masks/ner.bundle"])
    mm.predict_many([("bbc-news", "Shares fell in London ..."), ("wnut16", "I saw Taylor Swift")])
    mm.predict("bbc-news", ["Shares fell in London ..."])      # one task: the same call underneath
    mm.load("masks/sport.bundle"); mm.unload("wnut16")          # while serving

How a batch runs (``_run``): requests are grouped by task and stacked into one encoder batch
(``batching``). With several tasks in it, the pristine base weights compute every row once and
each task's rows get its sparse correction (``masking.mixed``); the shared weights are never
written. A run of batches of one single task instead multiplies that task's mask into the
resident weights (zeroing its removed weights, which its correction matrix holds and puts
back bit for bit), so single-task traffic runs at the speed of a merged model. Heads are tiny
and per task: each runs through its kind's task model with ``torch.func.functional_call``.

    requests [(task, input), ...]
      -> results.example_from_input (per kind)     -> a RequestError in place for a bad one
      -> batching.build_batch: encode + collate per task, stack rows (smallest groups first)
      -> encoder pass once: every MixedMaskLinear computes x W^T on the pristine W, then per
         task group + its term (CSR of -W * not M_t, or the flips kernel), or x (W + S_t)^T
         for large groups
      -> per group: the task's head (functional_call with its head tensors) on its rows;
         Kind.select -> Classification / Tagging / Choice

Memory (``memory``): with numba a loaded task holds its encoder layers as flipped positions
only; CSR matrices built from them sit in a cache bounded in MB (``cache_mb``) and tasks beyond
it run from their flips through the kernel; without numba masks stay coded and decoded
corrections live in an LRU. All compute and state changes hold one lock; ``load`` reads and
verifies a bundle before taking it, so a corrupt file leaves every task serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions

from maskctl.bundle.format import read_coded, read_meta
from maskctl.bundle.hub_ref import resolve_bundle_ref
from maskctl.bundle.meta import BundleMeta
from maskctl.errors import BundleError, DuplicateTask, MaskctlError, ModelError
from maskctl.masking.mixed import MixedMaskLinear, RowGroup, Routing, wrap_for_mixing
from maskctl.models import load_tokenizer
from maskctl.serving.batching import TaskRequests, build_batch
from maskctl.serving.heads import Precomputed, task_model
from maskctl.serving.loading import check_fit, fit_head, load_base
from maskctl.serving.merged import MergedWeights
from maskctl.serving.references import References
from maskctl.serving.memory import CorrectionCache, hold_flips, release_freed_memory
from maskctl.serving.results import RequestError, example_from_input
from maskctl.serving.tasks import Corrections, ServedTask
from maskctl.tasks.card import TaskCard
from maskctl.tasks.task import Task
from maskctl.evaluation import resolve_device

log = logging.getLogger(__name__)


class MaskedModel:
    """Serve many bundles of one base model; see the module docstring."""

    def __init__(self, base: torch.nn.Module, source, device: torch.device, cache_mb: float = 512) -> None:
        self._base = base  # keeps the real encoder: names, shapes and fingerprints are checked on it
        self._prefix = base.base_model_prefix
        self.encoder = getattr(base, self._prefix)
        self._source = source
        self.device = device
        self._routing = Routing()
        self._stub = Precomputed()
        self._nets: dict[tuple[str, int], torch.nn.Module] = {}
        self._tokenizers: dict[str, Any] = {}
        self._tasks: dict[str, ServedTask] = {}
        self._cache = CorrectionCache(int(cache_mb * 2**20))
        self._fingerprints: dict[tuple[str, ...], str] = {}
        self._layers: dict[str, MixedMaskLinear] = {}  # by encoder-relative name
        self._merged = MergedWeights(self._layers, self.encoder)  # the task multiplied into the weights, if any
        self._references = References(self._layers)  # W ⊙ R per initial mask, shared by its tasks
        self._last_single: str | None = None
        self._lock = threading.RLock()
        self.load_seconds: list[float] = []

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_bundles(cls, paths: Iterable[str | Path], model: str | None = None, device: str = "auto",
                     cache_mb: float = 512) -> MaskedModel:
        """Load the base model once (from the first bundle, or ``model``) and every bundle."""
        paths = [resolve_bundle_ref(p) for p in paths]  # hf:// references: files in the Hugging Face cache
        if not paths:
            raise MaskctlError("no bundle given", "pass one or more *.bundle files")
        metas = [(BundleMeta.from_dict(read_meta(p), p), p) for p in paths]
        files: dict[str, list[Path]] = {}
        for meta_, path_ in metas:
            files.setdefault(meta_.task_name, []).append(Path(path_))
        for name, same in files.items():
            if len(same) > 1:
                count = {2: "two", 3: "three"}.get(len(same), str(len(same)))
                raise DuplicateTask(f"{count} bundles for task {name!r}: {', '.join(p.name for p in same)}",
                                    "pass one bundle per task (maskctl ensemble votes several of one task)")
        meta, path = metas[0]
        dev = resolve_device(device)
        # The multiple-choice model keeps the encoder's pooler (token classification drops it),
        # so tasks of every kind, loaded now or later, can share the encoder.
        try:
            base, source, _ = load_base(meta, model, dev, auto_class="AutoModelForMultipleChoice", where=path)
        except ModelError:  # an architecture without a multiple-choice head
            base, source, _ = load_base(meta, model, dev, where=path)
        served = cls(base, source, dev, cache_mb)
        for p in paths:
            served.load(p)
        return served

    def load(self, path: str | Path, replaces: str | None = None) -> str:
        """Load one bundle while serving; returns its task name. Reading and decoding happen
        before the lock, so other tasks' requests wait at most for the final check.

        ``replaces`` names a loaded task this bundle takes over from (a changed file): the new
        version is read, verified and fit-checked beside it, and only then swapped in, within
        one hold of the lock; if anything fails the old version goes on serving (Triton's rule)."""
        tick = time.perf_counter()
        coded, head = read_coded(path)
        masks = coded.decode_all()  # verifies every layer (CRC) before anything changes
        task = Task.from_card(TaskCard.from_dict(coded.info.task.card))
        inner = {n: n[len(self._prefix) + 1:] for n in masks if n.startswith(self._prefix + ".")}
        reference, initial = self._references.missing(coded, inner)
        tokenizer = self._tokenizers.get(task.kind.name) or load_tokenizer(self._source, **task.kind.tokenizer_kwargs)
        with self._lock:
            if task.name in self._tasks and task.name != replaces:
                served_from = Path(self._tasks[task.name].coded.path).name
                raise DuplicateTask(f"{path}: task {task.name!r} is already served from {served_from}",
                                    "unload it first, or keep one bundle per task in a served folder "
                                    "(maskctl ensemble votes several)")
            self._merged.unmerge()  # fingerprints and corrections read the pristine weights
            self._check_base(coded.info, path)
            net = self._net_for(task)
            effective = self._effective_head(net, head, masks, path)
            if replaces in self._tasks:  # every check passed: the old version goes now
                self._drop(replaces)
            tuned_modules = sorted({name.rpartition(".")[0] for name in self._deltas(coded)})
            wrapped = wrap_for_mixing(self.encoder, list(inner.values()) + tuned_modules, self._routing)
            self._layers.update({n: m for n, m in wrapped.items() if isinstance(m, MixedMaskLinear)})
            record = coded.info.training
            if self._references.lacks(reference, inner.values(), initial):
                _, initial = self._references.missing(coded, inner)  # rare: an unload dropped it meanwhile
            self._references.add(reference, initial)
            encoder = {inner[n]: m for n, m in masks.items() if n in inner}
            corrections = self._references.terms(reference, encoder)
            coded, held = hold_flips(coded, corrections, inner)
            served = ServedTask(name=task.name, task=task, coded=coded, head=effective, encoder_layers=inner,
                                net_key=(task.kind.auto_class, len(task.labels)), reference=reference,
                                max_length=min(record.max_length, self._position_limit(tokenizer)),
                                options=record.kind_options, flips=held)
            if held is None:
                self._cache.put(task.name, corrections)
            self._tokenizers.setdefault(task.kind.name, tokenizer)
            self._tasks[task.name] = served
        del masks, head, encoder, corrections, initial
        release_freed_memory()
        self.load_seconds.append(time.perf_counter() - tick)
        return task.name

    def unload(self, name: str) -> None:
        """Drop a task and the memory it holds; requests already running finish first."""
        with self._lock:
            self.task(name)
            self._drop(name)
            release_freed_memory()

    def _drop(self, name: str) -> None:
        if self._merged.task == name:
            self._merged.unmerge()
        self._cache.drop(name)
        served = self._tasks.pop(name)
        self._references.release(served.reference)

    @property
    def pinned(self) -> set[str]:
        return self._cache.always

    def pin(self, names: Iterable[str]) -> None:
        """Keep these tasks' corrections decoded: never evicted from the LRU (a hot task never
        waits for a decode). Names not loaded yet are pinned when they load."""
        self._cache.always |= set(names)

    def _position_limit(self, tokenizer) -> int:
        """The longest input the base model takes: a bundle's max length beyond it (trained on
        short texts) is cut to it, so a long request is truncated instead of failing."""
        limit = getattr(self._base.config, "max_position_embeddings", None) or 10**6
        declared = getattr(tokenizer, "model_max_length", None)
        return min(limit, declared) if declared and declared < 10**6 else limit

    def _check_base(self, info: BundleMeta, path) -> None:
        """The encoder layers (and tuned parameters) of the bundle against the served base
        (``loading.check_fit``); tuned parameters serve only inside the shared encoder."""
        check_fit(self._base, info, path, self._source.spec, "serve together only bundles of the same base model",
                  encoder_only=True, fingerprints=self._fingerprints)
        outside = [n for n in (info.tuned.tensors if info.tuned else []) if not n.startswith(self._prefix + ".")]
        if outside:
            raise BundleError(f"{path}: tuned tensor {outside[0]} is outside the shared encoder",
                              "serve it alone with maskctl eval / predict, or train it without --also-train")

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
        fit_head({k: tuple(p.shape) for k, p in net.named_parameters()}, head, path,
                 "serve together only bundles of the same base model", complete=True)
        effective = {k: t.to(self.device, torch.float32).clone() for k, t in head.items()}
        for name, mask in masks.items():
            if not name.startswith(self._prefix + ".") and f"{name}.weight" in effective:
                effective[f"{name}.weight"].mul_(mask.to(self.device, torch.float32))
        return effective

    def _corrections(self, name: str, pinned: frozenset[str]) -> Corrections:
        """A task's terms. A task held as flips runs as CSR matrices built from them while the
        cache has room (MKL's product beats the kernel on short groups; no eviction, so tasks
        never churn), else from its flips through the kernel. A coded task's CSR corrections
        come from the cache, decoded on a miss (evicting the least recently used)."""
        served = self._tasks[name]
        if name not in self._cache:
            self._merged.unmerge()  # values are gathered from the pristine weights
        if served.flips is not None:
            if name in self._cache:
                return self._cache.get(name, dict)
            size = sum(c.matrix_nbytes for c in served.flips.values())
            if self._cache.bytes + size > self._cache.limit_bytes:
                return served.flips
            return self._cache.put(name, {inner: c.as_matrix(self._layers[inner].weight,
                                                              None if c.reference is None
                                                              else self._layers[inner].references[c.reference])
                                          for inner, c in served.flips.items()}, pinned)
        return self._cache.get(name, lambda: self._references.terms(served.reference, served.encoder_masks(self._layers)), pinned)

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
        card, info = served.task.card, served.coded.info
        dev = {k: v for k, v in info.dev.items() if not isinstance(v, (dict, list))}
        return {"name": name, "kind": card.kind, "labels": list(card.labels), "description": card.description,
                "base_model": info.base_model.spec, "metric": card.metric, "metrics": dev,
                "max_length": served.max_length, "sparsity": info.sparsity.get("final")}

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
        results: list[Any] = [None] * len(requests)
        valid: list[tuple[int, ServedTask, dict[str, Any]]] = []
        for index, request in enumerate(requests):
            if not isinstance(request, (tuple, list)) or len(request) != 2:
                results[index] = RequestError(index, None, "a request is a (task, input) pair",
                                              'e.g. ("bbc-news", "Shares fell")')
                continue
            name, item = request
            served = self._tasks.get(name)
            if served is None:
                results[index] = RequestError(index, name, f"task {name!r} is not loaded",
                                              f"use one of: {', '.join(self._tasks) or 'none (load a bundle)'}", 404)
                continue
            try:
                valid.append((index, served, example_from_input(served.task, item)))
            except ValueError as exc:
                results[index] = RequestError(index, name, f"{name} {exc}", served.task.kind.input_hint)
        for start in range(0, len(valid), batch_size):
            self._run_isolated(valid[start:start + batch_size], results)
        return results

    def _run_isolated(self, chunk: list[tuple[int, ServedTask, dict[str, Any]]], results: list[Any]) -> None:
        """``_run``, and if the batch fails, its halves again until the request at fault is
        alone: one input the tokenizer (or anything else) rejects fails only its own request.
        Encoding errors (``ValueError``, ``TypeError``) answer 400; anything else is a bug,
        logged with its traceback, and answers 500 for that request alone."""
        try:
            with self._lock:
                self._run(chunk, results)
            return
        except Exception as exc:  # noqa: BLE001 - isolated below, never the whole batch's failure
            if len(chunk) > 1:
                half = len(chunk) // 2
                self._run_isolated(chunk[:half], results)
                self._run_isolated(chunk[half:], results)
                return
            index, served, _ = chunk[0]
            if isinstance(exc, (ValueError, TypeError)):
                results[index] = RequestError(index, served.name, f"{served.name} cannot encode this input "
                                              f"({type(exc).__name__}: {str(exc)[:160]})", served.task.kind.input_hint)
            else:
                log.exception("request %d (task %s) failed", index, served.name)
                results[index] = RequestError(index, served.name, "internal error on this input",
                                              "the server log has the details", status=500)

    @torch.inference_mode()
    def _run(self, chunk: list[tuple[int, ServedTask, dict[str, Any]]], results: list[Any]) -> None:
        parts: dict[str, TaskRequests] = {}
        for index, served, example in chunk:
            if self._tasks.get(served.name) is not served:  # unloaded while waiting for the lock
                results[index] = RequestError(index, served.name, f"task {served.name!r} was unloaded",
                                              f"use one of: {', '.join(self._tasks) or 'none'}", 404)
                continue
            part = parts.setdefault(served.name, TaskRequests(served))
            part.indices.append(index)
            part.examples.append(example)
        if not parts:
            return
        names = list(parts)
        single = names[0] if len(names) == 1 else None
        if single is not None and single in (self._last_single, self._merged.task):
            self._merged.merge(single, lambda: self._tasks[single].encoder_masks(self._layers),
                               self._deltas(self._tasks[single].coded))
        else:
            self._merged.unmerge()
        self._last_single = single
        pinned = frozenset(names)
        misses = self._cache.misses
        batch = build_batch(list(parts.values()), self._tokenizers, self.device)
        merged = self._merged.task is not None
        groups = [] if merged else [RowGroup(g.start, g.stop, self._corrections(g.served.name, pinned),
                                             self._deltas(g.served.coded)) for g in batch.groups]
        with self._routing.route(groups):
            out = self.encoder(**batch.inputs)
        hidden, pooled = out[0], getattr(out, "pooler_output", None)
        for group in batch.groups:
            served = group.served
            self._stub.output = BaseModelOutputWithPoolingAndCrossAttentions(
                last_hidden_state=hidden[group.start:group.stop, :group.length],
                pooler_output=None if pooled is None else pooled[group.start:group.stop])
            kwargs = {k: v.to(self.device) for k, v in group.batch.items() if k != "labels"}
            logits = functional_call(self._nets[served.net_key], served.head, (), kwargs, strict=False).logits
            scores, _ = served.task.kind.select(logits, group.batch)
            for position, (index, example, score) in enumerate(zip(group.indices, group.examples, scores)):
                words = group.kept_words[position] if group.kept_words else None
                results[index] = served.task.kind.result(served.task.labels, example, score,
                                                         position in group.truncated, words)
        self._stub.output = None
        self._cache.trim()  # the batch's tasks were pinned while it ran
        if self._cache.misses != misses:  # corrections were decoded: return their temporaries
            release_freed_memory()

    # -- memory --------------------------------------------------------------------------------
    def memory(self) -> dict[str, int]:
        """Bytes held beyond the base model: loaded tasks (coded masks, flips held for the kernel,
        heads), the CSR corrections cache, the dense reference copies (one per initial mask in
        use), and their counts."""
        tasks = self._tasks.values()
        return {"tasks": len(self._tasks), "coded_bytes": sum(t.coded_bytes() for t in tasks),
                "flips_bytes": sum(t.flips_bytes() for t in tasks),
                "hot_tasks": len({t.name for t in tasks if t.flips} | set(self._cache.names())),
                "references": len(self._references.users), "references_bytes": self._references.nbytes(),
                "corrections_bytes": self._cache.bytes, "corrections_cached": len(self._cache.names()),
                "corrections_limit_bytes": self._cache.limit_bytes, "decodes": self._cache.misses}

    def close(self) -> None:
        """Put the pristine base weights back (they are only ever changed in merged mode)."""
        with self._lock:
            self._merged.unmerge()
            self._last_single = None
