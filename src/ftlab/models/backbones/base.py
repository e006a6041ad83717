"""What every backbone offers the rest of ftlab."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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
    # The recipe of the backbone this one was rebuilt from (a checkpoint, a logged model): what a
    # model fine-tuned from it records, so it rebuilds without the file it came from.
    source_config: dict[str, Any] | None = None

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


@runtime_checkable
class SavesFiles(Protocol):
    """A backbone that needs files beside its weights to be rebuilt (a tokenizer, a model config)."""

    def save_files(self, directory: Path, reference: str) -> dict[str, Any]:
        """Write them into `directory`; return the config changes that point the backbone at
        them (`reference` is how the saved config names `directory`)."""
        ...


@runtime_checkable
class SupportsLora(Protocol):
    """A backbone that can carry LoRA adapters (`finetune=lora`)."""

    @property
    def has_lora(self) -> bool: ...

    def add_lora(
        self, rank: int, alpha: float, dropout: float, target_modules: list[str] | None
    ) -> None: ...

    def merge_lora(self) -> None: ...
