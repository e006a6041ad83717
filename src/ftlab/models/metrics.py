"""The task's metrics, one collection per stage so train/val/test never share state."""

from __future__ import annotations

import torch
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


class ChunkedUpdates:
    """A stage's per-step (predictions, targets), handed to its metric collection CHUNK steps at
    a time.

    A torchmetrics update costs about a millisecond of Python whatever the batch size (measured:
    1.2 ms of a 27 ms digits CNN step); one update per chunk pays it once. The states are counts
    and sums, so accuracy and F1 come out identical and regression metrics equal up to float
    rounding. Chunks end at the same steps of an epoch whether or not the run was resumed in
    between: the steps still pending travel in the checkpoint (`pending`, `restore`)."""

    CHUNK = 32

    def __init__(self, metrics: MetricCollection) -> None:
        self.metrics = metrics
        self._steps: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        self._steps.append((predictions.detach(), targets.detach()))
        if len(self._steps) >= self.CHUNK:
            self.flush()

    def flush(self) -> None:
        """Update the metrics with every pending step; before `compute`, and at each chunk's end."""
        if not self._steps:
            return
        device = next(iter(self.metrics.values())).device
        predictions, targets = zip(*self._steps, strict=True)
        self.metrics.update(
            torch.cat([p.to(device) for p in predictions]),
            torch.cat([t.to(device) for t in targets]),
        )
        self._steps = []

    def pending(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(p.cpu(), t.cpu()) for p, t in self._steps]

    def restore(self, pending: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self._steps = [(p, t) for p, t in pending]
