"""Task metrics: accuracy, Matthews correlation, macro F1 (scikit-learn), entity F1 (seqeval),
and any a plugin registers.

Predictions and golds are label ids, one per example, or one list per sentence for tagging
(then accuracy is over words and ``seqeval-f1`` is the micro-averaged entity F1 of CoNLL).

A metric is a function of ``Scored`` that returns its value under its own name (and any side
values, as ``seqeval-f1`` adds precision and recall), registered in ``METRICS``; a plugin's
through the entry-point group ``maskctl.metrics``. scikit-learn and seqeval are imported inside
the functions: a card names its metric, and reading a card (``maskctl tasks``) must stay quick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from maskctl.errors import TaskError
from maskctl.registry import Registry


@dataclass(frozen=True)
class Scored:
    """Golds and predictions as given (nested for tagging), flattened, and the label names."""

    golds: list
    preds: list
    labels: list[str] | None = None

    @property
    def nested(self) -> bool:
        return bool(self.golds) and isinstance(self.golds[0], list)

    @property
    def flat_golds(self) -> list:
        return [g for seq in self.golds for g in seq] if self.nested else list(self.golds)

    @property
    def flat_preds(self) -> list:
        return [p for seq in self.preds for p in seq] if self.nested else list(self.preds)


Metric = Callable[[Scored], dict[str, float]]
METRICS: Registry[Metric] = Registry("metric", group="maskctl.metrics", error=TaskError)


@METRICS.register("accuracy")
def accuracy(scored: Scored) -> dict[str, float]:
    from sklearn.metrics import accuracy_score

    golds = scored.flat_golds
    return {"accuracy": float(accuracy_score(golds, scored.flat_preds)) if golds else 0.0}


@METRICS.register("mcc")
def mcc(scored: Scored) -> dict[str, float]:
    from sklearn.metrics import matthews_corrcoef

    return {"mcc": float(matthews_corrcoef(scored.flat_golds, scored.flat_preds))}


@METRICS.register("macro-f1")
def macro_f1(scored: Scored) -> dict[str, float]:
    from sklearn.metrics import f1_score

    return {"macro-f1": float(f1_score(scored.flat_golds, scored.flat_preds, average="macro"))}


@METRICS.register("seqeval-f1")
def entity_f1(scored: Scored) -> dict[str, float]:
    from seqeval.metrics import f1_score, precision_score, recall_score

    if scored.labels is None:
        raise ValueError("seqeval-f1 needs the label names")
    g = [[scored.labels[i] for i in seq] for seq in scored.golds]
    p = [[scored.labels[i] for i in seq] for seq in scored.preds]
    return {
        "precision": float(precision_score(g, p, zero_division=0)),
        "recall": float(recall_score(g, p, zero_division=0)),
        "seqeval-f1": float(f1_score(g, p, zero_division=0)),
    }


def compute(metric: str, golds: list, preds: list, labels: list[str] | None = None) -> dict[str, float]:
    """Return ``{"score": main metric, metric: value, "accuracy": ..., "n": count, ...}``."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold labels but {len(preds)} predictions")
    scored = Scored(golds, preds, labels)
    result: dict[str, float] = {**accuracy(scored), "n": len(golds)}
    if scored.nested:
        result["words"] = len(scored.flat_golds)
    if metric != "accuracy":
        result.update(METRICS.get(metric)(scored))
    if metric not in result:
        raise TaskError(
            f"the metric {metric!r} gave no value under its own name (gave {sorted(result)})",
            "fix the plugin that registers it: return {name: value, ...}",
        )
    result["score"] = result[metric]
    return result
