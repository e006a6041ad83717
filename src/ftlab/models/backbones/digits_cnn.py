"""A small CNN for 8x8 single-channel digits: trains from scratch in seconds on a CPU."""

from __future__ import annotations

import torch
from torch import nn

from ftlab.errors import require
from ftlab.models.backbones.base import Backbone

# Mean and std of sklearn's digits pixels scaled to [0, 1].
DIGITS_MEAN, DIGITS_STD = 0.3051, 0.3788


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DigitsCNN(Backbone):
    modality = "image"

    def __init__(self, width: int = 32, dropout: float = 0.1) -> None:
        require(width > 0, "model.backbone.width", "> 0", width)
        require(0 <= dropout < 1, "model.backbone.dropout", "in [0, 1)", dropout)
        super().__init__()
        self.stages = nn.Sequential(
            _conv_block(1, width),
            nn.Sequential(_conv_block(width, width), nn.MaxPool2d(2)),
            nn.Sequential(_conv_block(width, 2 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        )
        self.dropout = nn.Dropout(dropout)
        self.out_features = 2 * width
        self.normalization = ([DIGITS_MEAN], [DIGITS_STD])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.stages(images))

    def block_modules(self) -> list[nn.Module]:
        return list(self.stages)
