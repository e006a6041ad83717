"""Image backbones from torchvision by name; weights by enum name (online) or a local file."""

from __future__ import annotations

import difflib

import torch
from torch import nn

from ftlab.errors import FtlabError
from ftlab.models.backbones.base import Backbone
from ftlab.models.weights import load_weights, read_state_dict

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _drop_classifier(model: nn.Module) -> int:
    """Replace the final Linear of the classifier with Identity; return its input width."""
    for attribute in ("fc", "classifier", "heads", "head"):
        holder = getattr(model, attribute, None)
        if isinstance(holder, nn.Linear):
            setattr(model, attribute, nn.Identity())
            return holder.in_features
        if isinstance(holder, nn.Sequential):
            for index in reversed(range(len(holder))):
                if isinstance(holder[index], nn.Linear):
                    width = holder[index].in_features
                    holder[index] = nn.Identity()
                    return width
    raise FtlabError(
        f"model.backbone.name: cannot find the classifier of {type(model).__name__} to remove"
    )


class TorchvisionBackbone(Backbone):
    modality = "image"

    def __init__(
        self, name: str, weights: str | None = None, weights_file: str | None = None
    ) -> None:
        super().__init__()
        import torchvision

        known = torchvision.models.list_models(module=torchvision.models)
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise FtlabError(
                f"model.backbone.name: torchvision has no classification model '{name}'{hint}"
            )
        try:
            self.model = torchvision.models.get_model(name, weights=weights)
        except Exception as err:  # noqa: BLE001 - bad enum names and hub failures alike
            raise FtlabError(
                f"model.backbone.weights: cannot load '{weights}' for {name} ({str(err).splitlines()[0][:160]}); "
                "offline, pass model.backbone.weights_file=PATH"
            ) from None
        self.out_features = _drop_classifier(self.model)
        if weights_file:
            load_weights(
                self.model,
                read_state_dict(weights_file),
                f"model.backbone.weights_file {weights_file}",
            )
        self.normalization = (IMAGENET_MEAN, IMAGENET_STD)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def block_modules(self) -> list[nn.Module]:
        stages = [getattr(self.model, f"layer{i}", None) for i in range(1, 5)]
        if all(stage is not None for stage in stages):
            return [nn.ModuleList([self.model.conv1, self.model.bn1]), *stages]
        features = getattr(self.model, "features", None)
        return list(features) if isinstance(features, nn.Sequential) else [self.model]
