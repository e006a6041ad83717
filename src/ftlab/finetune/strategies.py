"""The strategies selected by `finetune=...`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from ftlab.models.module import FineTuneModule


def freeze(module: nn.Module) -> None:
    """Truly freeze: no gradients, and norm/dropout layers in eval mode so BatchNorm running
    statistics stay as pretrained (Lightning's own freeze leaves them training)."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    module.eval()


class Strategy:
    """Full fine-tuning: every parameter trains at the optimizer's lr in one group."""

    name = "full"

    def setup(self, model: FineTuneModule) -> None:
        """Called once, after the model is built and before the optimizer."""

    def frozen_modules(self, model: FineTuneModule) -> list[nn.Module]:
        """Modules that must stay in eval mode whenever the model is put in train mode."""
        return []

    def param_groups(self, model: FineTuneModule, lr: float) -> list[dict[str, Any]]:
        return [
            {"name": "all", "params": [p for p in model.parameters() if p.requires_grad], "lr": lr}
        ]


class Full(Strategy):
    def __init__(self, name: str = "full") -> None:
        self.name = name


class LinearProbe(Strategy):
    """Only the head trains; the backbone is frozen with its norm and dropout layers in eval mode."""

    def __init__(self, name: str = "linear_probe") -> None:
        self.name = name

    def setup(self, model: FineTuneModule) -> None:
        freeze(model.backbone)

    def frozen_modules(self, model: FineTuneModule) -> list[nn.Module]:
        return [model.backbone]

    def param_groups(self, model: FineTuneModule, lr: float) -> list[dict[str, Any]]:
        return [{"name": "head", "params": list(model.head.parameters()), "lr": lr}]
