"""Task metrics: accuracy, Matthews correlation, macro F1 (scikit-learn), entity F1 (seqeval).

Predictions and golds are label ids, one per example, or one list per sentence for tagging
(then accuracy is over words and ``seqeval-f1`` is the micro-averaged entity F1 of CoNLL).
"""

from __future__ import annotations

from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def compute(metric: str, golds: list, preds: list, labels: list[str] | None = None) -> dict[str, float]:
    """Return ``{"score": main metric, metric: value, "accuracy": ..., "n": count, ...}``."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold labels but {len(preds)} predictions")
    nested = bool(golds) and isinstance(golds[0], list)
    flat_g = [g for seq in golds for g in seq] if nested else list(golds)
    flat_p = [p for seq in preds for p in seq] if nested else list(preds)
    result: dict[str, float] = {"accuracy": float(accuracy_score(flat_g, flat_p)) if flat_g else 0.0,
                                "n": len(golds)}
    if nested:
        result["words"] = len(flat_g)
    if metric == "mcc":
        result["mcc"] = float(matthews_corrcoef(flat_g, flat_p))
    elif metric == "macro-f1":
        result["macro-f1"] = float(f1_score(flat_g, flat_p, average="macro"))
    elif metric == "seqeval-f1":
        from seqeval.metrics import f1_score as entity_f1
        from seqeval.metrics import precision_score, recall_score

        if labels is None:
            raise ValueError("seqeval-f1 needs the label names")
        g = [[labels[i] for i in seq] for seq in golds]
        p = [[labels[i] for i in seq] for seq in preds]
        result["precision"] = float(precision_score(g, p, zero_division=0))
        result["recall"] = float(recall_score(g, p, zero_division=0))
        result["seqeval-f1"] = float(entity_f1(g, p, zero_division=0))
    result["score"] = result[metric]
    return result
