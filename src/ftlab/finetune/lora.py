"""`finetune=lora`: low-rank adapters (peft) in a Hugging Face transformer; the head trains fully.

The adapters are part of the backbone (`HFTextBackbone.add_lora`) and of its recorded config, so a
checkpoint of a LoRA run rebuilds with its adapters. The logged model is the merged backbone by
default (`export: merged`): a plain encoder whose weights include the adapters, which loads and
runs like any full fine-tune. `export: adapters` logs base weights + adapters and the LoRA config
instead (smaller deltas to inspect; rebuilding needs peft).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from torch import nn

from ftlab.errors import FtlabError
from ftlab.finetune.strategies import Strategy
from ftlab.models.backbones.base import SupportsLora

if TYPE_CHECKING:
    from ftlab.models.module import FineTuneModule

EXPORTS = ("merged", "adapters")


class Lora(Strategy):
    """Adapters of rank `rank` (scaled by `alpha / rank`) on `target_modules` (None: peft's
    default for the architecture); everything else in the backbone stays frozen. The encoder
    stays in train mode, so its dropout still regularizes (no BatchNorm in transformers)."""

    def __init__(
        self,
        name: str = "lora",
        rank: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.1,
        target_modules: list[str] | None = None,
        export: str = "merged",
        layer_decay: float = 1.0,
        no_decay_bias_norm: bool = True,
    ) -> None:
        if export not in EXPORTS:
            raise FtlabError(f"finetune.export must be one of {', '.join(EXPORTS)} (got {export})")
        super().__init__(name, layer_decay, no_decay_bias_norm)
        self.lora = {
            "rank": int(rank),
            "alpha": float(alpha),
            "dropout": float(dropout),
            "target_modules": list(target_modules) if target_modules else None,
        }
        self.export = export

    def setup(self, model: FineTuneModule) -> None:
        backbone = model.backbone
        if not isinstance(backbone, SupportsLora):
            raise FtlabError(
                f"finetune=lora needs a Hugging Face transformer backbone (model=minilm, hf or "
                f"tiny_bert), not {type(backbone).__name__}: use finetune=full or linear_probe"
            )
        if not backbone.has_lora:  # a backbone rebuilt from a LoRA checkpoint has them already
            backbone.add_lora(**self.lora)
        super().setup(model)

    def recorded_config(self, backbone_config: dict[str, Any]) -> dict[str, Any]:
        """Checkpoints record the adapters, so a LoRA run's checkpoint rebuilds with them."""
        return {**backbone_config, "lora": self.lora}

    def trains(self, name: str, param: nn.Parameter) -> bool:
        return "lora_" in name

    def frozen_modules(self, model: FineTuneModule) -> list[nn.Module]:
        return []

    def export_backbone(self, model: FineTuneModule) -> tuple[nn.Module, dict[str, Any]]:
        if self.export == "adapters":
            return model.backbone, self.recorded_config(model.backbone_config)
        merged = copy.deepcopy(model.backbone)
        merged.merge_lora()
        return merged, {k: v for k, v in model.backbone_config.items() if k != "lora"}
