"""The task's metrics, one collection per stage so train/val/test never share state."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, PearsonCorrCoef

from ftlab.names import REGRESSION


def task_metrics(
    task: str, num_classes: int | None, prefix: str, persistent: bool = False
) -> MetricCollection:
    """Regression: mse, mae, pearson r. Classification: accuracy and macro F1 on class indices.

    `persistent` puts the accumulated state into checkpoints: a run resumed mid-epoch then reports
    the same epoch metrics as one that never stopped.
    """
    if task == REGRESSION:
        metrics = {
            "mse": MeanSquaredError(),
            "mae": MeanAbsoluteError(),
            "pearson": PearsonCorrCoef(),
        }
    else:
        classes = int(num_classes or 2)
        metrics = {
            "acc": MulticlassAccuracy(num_classes=classes, average="micro"),
            "f1_macro": MulticlassF1Score(num_classes=classes, average="macro"),
        }
    collection = MetricCollection(metrics, prefix=prefix)
    collection.persistent(persistent)
    return collection
