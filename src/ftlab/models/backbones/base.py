"""What every backbone offers the rest of ftlab."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class Backbone(nn.Module):
    """A feature extractor with what data and tracking need to know about it.

    `modality` says which data it reads; `preprocessor()` returns a picklable callable that turns a
    list of raw examples into the model's batch input (runs in DataLoader workers and inside the
    logged model); `normalization` is the (mean, std) images must be normalized with.
    """

    modality: str = "image"
    out_features: int
    normalization: tuple[list[float], list[float]] | None = None

    def preprocessor(self) -> Callable[[list[Any]], Any]:
        return stack_tensors

    def block_modules(self) -> list[nn.Module]:
        """The backbone's blocks from input to output (layers, stages); used by fine-tuning
        strategies that treat depths differently. One block by default."""
        return [self]


def stack_tensors(examples: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(examples)


# Config keys that make a backbone download or read its original weights.
_ORIGINAL_WEIGHTS = {"pretrained": False, "weights": None, "weights_file": None}


def without_original_weights(config: dict[str, Any]) -> dict[str, Any]:
    """The backbone's config for rebuilding it when trained weights come from elsewhere (a
    checkpoint, a saved model): no hub download, no original weights file."""
    return {**config, **{k: v for k, v in _ORIGINAL_WEIGHTS.items() if k in config}}
