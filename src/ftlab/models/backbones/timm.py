"""Image backbones from timm by name; weights from the hub (online) or a local file."""

from __future__ import annotations

import difflib

import torch
from torch import nn

from ftlab.errors import FtlabError, require
from ftlab.models.backbones.base import Backbone
from ftlab.models.weights import load_weights, read_state_dict


class TimmBackbone(Backbone):
    modality = "image"

    def __init__(
        self,
        name: str,
        pretrained: bool = False,
        weights_file: str | None = None,
        drop_path_rate: float = 0.0,
    ) -> None:
        require(
            0 <= drop_path_rate < 1, "model.backbone.drop_path_rate", "in [0, 1)", drop_path_rate
        )
        super().__init__()
        import timm

        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise FtlabError(f"model.backbone.name: timm has no model '{name}'{hint}")
        try:
            self.model = timm.create_model(
                name, pretrained=pretrained, num_classes=0, drop_path_rate=drop_path_rate
            )
        except Exception as err:  # noqa: BLE001 - hub failures come in many types
            raise FtlabError(
                f"model.backbone.pretrained: cannot fetch '{name}' weights ({str(err).splitlines()[0][:160]}); "
                "offline, pass model.backbone.weights_file=PATH"
            ) from None
        if weights_file:
            load_weights(
                self.model,
                read_state_dict(weights_file),
                f"model.backbone.weights_file {weights_file}",
            )
        self.out_features = int(self.model.num_features)
        data_config = timm.data.resolve_data_config({}, model=self.model)
        self.normalization = (list(data_config["mean"]), list(data_config["std"]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def block_modules(self) -> list[nn.Module]:
        """Transformer blocks (ViT), stages (ConvNeXt, EfficientNet...) or ResNet's layer1-4; the
        stem and final norm are placed around them by `ftlab.finetune.depths`."""
        blocks = getattr(self.model, "blocks", None) or getattr(self.model, "stages", None)
        if blocks is not None:
            return list(blocks)
        layers = [getattr(self.model, f"layer{i}", None) for i in range(1, 5)]
        if all(isinstance(layer, nn.Module) for layer in layers):
            return layers
        return [self.model]
