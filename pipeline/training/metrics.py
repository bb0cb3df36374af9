"""Classification figures computed one way everywhere (training, tuning, evaluation)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_recall_fscore_support


def macro_f1(labels: np.ndarray, probabilities: np.ndarray, num_classes: int) -> float:
    return float(
        f1_score(labels, probabilities.argmax(axis=1), labels=range(num_classes), average="macro", zero_division=0)
    )


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict:
    predicted = probabilities.argmax(axis=1)
    ids = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=ids, zero_division=0)
    return {
        "accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "balanced_accuracy": round(float(balanced_accuracy_score(labels, predicted)), 4),
        "macro_f1": round(float(f1_score(labels, predicted, labels=ids, average="macro", zero_division=0)), 4),
        "weighted_f1": round(float(f1_score(labels, predicted, labels=ids, average="weighted", zero_division=0)), 4),
        "per_class": {
            name: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        },
    }
