"""Task metrics, computed with scikit-learn (accuracy, Matthews correlation, macro F1)."""

from __future__ import annotations

from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def compute(metric: str, golds: list[int], preds: list[int]) -> dict[str, float]:
    """Return ``{"score": main metric, metric: value, "accuracy": ..., "n": count}``."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold labels but {len(preds)} predictions")
    result: dict[str, float] = {"accuracy": float(accuracy_score(golds, preds)), "n": len(golds)}
    if metric == "mcc":
        result["mcc"] = float(matthews_corrcoef(golds, preds))
    elif metric == "macro-f1":
        result["macro-f1"] = float(f1_score(golds, preds, average="macro"))
    result["score"] = result[metric]
    return result
