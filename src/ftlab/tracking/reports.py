"""Test-set reports for people: a confusion matrix or a predicted-vs-true scatter, and a summary
(per-class scores, or error statistics with the worst examples)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def classification_report(
    targets: np.ndarray, predicted: np.ndarray, class_names: list[str], directory: Path
) -> list[Path]:
    from sklearn.metrics import classification_report as sk_report
    from sklearn.metrics import confusion_matrix

    labels = list(range(len(class_names)))
    matrix = confusion_matrix(targets, predicted, labels=labels)
    plt = _figure()
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set(xticks=labels, yticks=labels, xticklabels=class_names, yticklabels=class_names)
    ax.set(xlabel="predicted", ylabel="true", title="test confusion matrix")
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(
            col,
            row,
            str(count),
            ha="center",
            va="center",
            color="white" if count > matrix.max() / 2 else "black",
        )
    fig.tight_layout()
    png = directory / "confusion_matrix.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    summary = sk_report(
        targets,
        predicted,
        labels=labels,
        target_names=class_names,
        output_dict=True,
        zero_division=0,
    )
    report = directory / "per_class.json"
    report.write_text(json.dumps(summary, indent=2))
    return [png, report]


def regression_report(
    targets: np.ndarray,
    predicted: np.ndarray,
    examples: list[Any],
    directory: Path,
    worst: int = 20,
) -> list[Path]:
    errors = predicted - targets
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(targets, predicted, s=6, alpha=0.5)
    low, high = (
        float(min(targets.min(), predicted.min())),
        float(max(targets.max(), predicted.max())),
    )
    ax.plot([low, high], [low, high], color="grey", linewidth=1)
    ax.set(xlabel="true", ylabel="predicted", title="test: predicted vs true")
    fig.tight_layout()
    png = directory / "predicted_vs_true.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    order = np.argsort(-np.abs(errors))[:worst]
    summary = {
        "count": int(len(targets)),
        "mse": float(np.mean(errors**2)),
        "mae": float(np.mean(np.abs(errors))),
        "bias": float(np.mean(errors)),
        "abs_error_quantiles": {
            str(q): float(np.quantile(np.abs(errors), q)) for q in (0.5, 0.9, 0.99)
        },
        "worst": [
            {
                "example": str(examples[i]) if isinstance(examples[i], str) else int(i),
                "true": float(targets[i]),
                "predicted": float(predicted[i]),
            }
            for i in order
        ],
    }
    report = directory / "error_summary.json"
    report.write_text(json.dumps(summary, indent=2))
    return [png, report]
