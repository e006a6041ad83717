"""Losses that know which task they fit and how many outputs the head needs.

Each wraps a torch loss so the head's raw outputs and the data module's targets meet without
shape juggling elsewhere, and `predict` turns outputs into what metrics compare with targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ftlab.errors import FtlabError, require
from ftlab.names import CLASSIFICATION, REGRESSION


class TaskLoss(nn.Module):
    task = REGRESSION
    name = "loss"

    def __init__(self) -> None:  # named arguments only, so config checks can list them
        super().__init__()

    def num_outputs(self, num_classes: int | None) -> int:
        return 1

    def check_fits(self, task: str, num_classes: int | None) -> None:
        if task != self.task:
            raise FtlabError(
                f"loss={self.name} is for {self.task} but the data is {task}: choose another loss"
            )

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Regression: the value. Classification: class probabilities, shape [batch, classes]."""
        return outputs.squeeze(-1)


class MSE(TaskLoss):
    name = "mse"

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.squeeze(-1), targets)


class Huber(TaskLoss):
    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        require(delta > 0, "loss.delta", "> 0", delta)
        super().__init__()
        self.delta = delta

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.huber_loss(outputs.squeeze(-1), targets, delta=self.delta)


class CrossEntropy(TaskLoss):
    task = CLASSIFICATION
    name = "cross_entropy"

    def __init__(
        self, label_smoothing: float = 0.0, class_weights: list[float] | None = None
    ) -> None:
        super().__init__()
        if not 0 <= label_smoothing < 1:
            raise FtlabError(f"loss.label_smoothing must lie in [0, 1) (got {label_smoothing})")
        self.label_smoothing = label_smoothing
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)

    def num_outputs(self, num_classes: int | None) -> int:
        return int(num_classes or 0)

    def check_fits(self, task: str, num_classes: int | None) -> None:
        super().check_fits(task, num_classes)
        if self.class_weights is not None and len(self.class_weights) != num_classes:
            raise FtlabError(
                f"loss.class_weights has {len(self.class_weights)} values but the data has {num_classes} classes"
            )

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            outputs, targets, weight=self.class_weights, label_smoothing=self.label_smoothing
        )

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.softmax(-1)


class BCEWithLogits(TaskLoss):
    """Binary classification with one logit; the positive class is index 1."""

    task = CLASSIFICATION
    name = "bce_with_logits"

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        self.register_buffer(
            "pos_weight", torch.tensor([pos_weight]) if pos_weight else None, persistent=False
        )

    def check_fits(self, task: str, num_classes: int | None) -> None:
        super().check_fits(task, num_classes)
        if num_classes != 2:
            raise FtlabError(
                f"loss=bce_with_logits needs two classes but the data has {num_classes}: use cross_entropy"
            )

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            outputs.squeeze(-1), targets.float(), pos_weight=self.pos_weight
        )

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        positive = outputs.squeeze(-1).sigmoid()
        return torch.stack([1 - positive, positive], dim=-1)
