"""A fine-tuned model as a self-contained folder: weights, the recipe to rebuild it, and a
predictor that takes raw inputs (strings or image arrays).

Layout: `model.json` (backbone and head configs, task, class names, normalization),
`weights.safetensors` (no pickle), and `backbone/` with files the backbone needs to be rebuilt
without the hub or the package it came from (a tokenizer and model config for text models).
The MLflow model, a later run's backbone and `ftlab` itself all read this one format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ftlab.errors import FtlabError
from ftlab.models.backbones.base import SavesFiles, without_original_weights
from ftlab.models.registry import BACKBONES, HEADS, build_registered
from ftlab.models.weights import load_weights
from ftlab.names import REGRESSION

FORMAT_VERSION = 1
RELATIVE = "@model_dir/"  # config values that name a file inside the folder


@dataclass
class ModelRecipe:
    backbone: dict[str, Any]
    head: dict[str, Any]
    task: str
    class_names: list[str]
    modality: str
    normalization: list[list[float]] | None


def save_model_dir(
    backbone: nn.Module,
    head: nn.Module,
    backbone_config: dict[str, Any],
    head_config: dict[str, Any],
    task: str,
    class_names: list[str],
    directory: str | Path,
) -> Path:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    portable = dict(backbone_config)
    if isinstance(backbone, SavesFiles):
        portable.update(backbone.save_files(directory / "backbone", RELATIVE + "backbone"))
    recipe = ModelRecipe(
        backbone=portable,
        head=dict(head_config),
        task=task,
        class_names=list(class_names),
        modality=backbone.modality,
        normalization=[list(v) for v in backbone.normalization] if backbone.normalization else None,
    )
    (directory / "model.json").write_text(
        json.dumps({"format": FORMAT_VERSION, **recipe.__dict__}, indent=2)
    )
    tensors = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    tensors.update({f"head.{k}": v for k, v in head.state_dict().items()})
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
        str(directory / "weights.safetensors"),
    )
    return directory


def read_recipe(directory: str | Path) -> ModelRecipe:
    path = Path(directory) / "model.json"
    if not path.is_file():
        raise FtlabError(f"{directory} is not an ftlab model (no model.json)")
    raw = json.loads(path.read_text())
    if raw.pop("format", None) != FORMAT_VERSION:
        raise FtlabError(f"{path}: unknown ftlab model format")
    return ModelRecipe(**raw)


def _absolute(value: Any, directory: Path) -> Any:
    if isinstance(value, str) and value.startswith(RELATIVE):
        return str(directory / value.removeprefix(RELATIVE))
    if isinstance(value, dict):
        return {k: _absolute(v, directory) for k, v in value.items()}
    return value


def load_backbone(
    directory: str | Path, source: str | None = None
) -> tuple[nn.Module, ModelRecipe]:
    """Rebuild the backbone with its fine-tuned weights (for a later run's `model.backbone`);
    `source` names where the folder came from in error messages."""
    from safetensors.torch import load_file

    directory = Path(directory)
    recipe = read_recipe(directory)
    config = without_original_weights(_absolute(recipe.backbone, directory))
    backbone = build_registered(config, BACKBONES, source or f"{directory}/model.json backbone")
    state = load_file(str(directory / "weights.safetensors"))
    own = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    load_weights(backbone, own, f"{directory}/weights.safetensors")
    # Saving this backbone again (a model fine-tuned from it) writes the original recipe.
    backbone.source_config = recipe.backbone
    return backbone, recipe


class Predictor:
    """Raw inputs in, labelled predictions out; what the logged MLflow model runs."""

    def __init__(self, directory: str | Path) -> None:
        from safetensors.torch import load_file

        self.backbone, self.recipe = load_backbone(directory)
        head_config = dict(self.recipe.head)
        self.head = build_registered(head_config, HEADS, f"{directory}/model.json head")
        state = load_file(str(Path(directory) / "weights.safetensors"))
        self.head.load_state_dict(
            {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
        )
        self.backbone.eval(), self.head.eval()
        self.preprocess = self.backbone.preprocessor()

    def _inputs(self, examples: Any) -> list[Any]:
        import pandas as pd

        if isinstance(examples, pd.DataFrame):
            examples = examples.iloc[:, 0].tolist()
        elif isinstance(examples, pd.Series):
            examples = examples.tolist()
        if self.recipe.modality == "text":
            return [
                str(e)
                for e in (examples.tolist() if isinstance(examples, np.ndarray) else examples)
            ]
        images = self._image_batch(np.asarray(examples))
        if self.recipe.normalization:
            mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in self.recipe.normalization)
            images = (images - mean) / std
        return list(images)

    def _image_batch(self, array: np.ndarray) -> torch.Tensor:
        """(N, C, H, W) floats in [0, 1] from what people load: (N, H, W) for one-channel models,
        (N, C, H, W), or (N, H, W, C) as PIL/NumPy give it; uint8 pixels are scaled to [0, 1]."""
        channels = len(self.recipe.normalization[0]) if self.recipe.normalization else None
        if array.ndim == 3 and channels in (1, None):
            array = array[:, None]
        elif (
            array.ndim == 4
            and channels
            and array.shape[1] != channels
            and array.shape[-1] == channels
        ):
            array = array.transpose(0, 3, 1, 2)
        if array.ndim != 4 or (channels and array.shape[1] != channels):
            expected = "(N, H, W) or " if channels in (1, None) else ""
            raise FtlabError(
                f"this model takes images as {expected}(N, {channels or 'C'}, H, W) or "
                f"(N, H, W, {channels or 'C'}); got an array of shape {tuple(array.shape)}"
            )
        scale = 255.0 if array.dtype == np.uint8 else 1.0
        return torch.as_tensor(array.astype(np.float32) / scale)

    @torch.no_grad()
    def outputs(self, examples: Any, batch_size: int = 256) -> torch.Tensor:
        inputs = self._inputs(examples)
        chunks = [
            self.head(self.backbone(self.preprocess(inputs[start : start + batch_size])))
            for start in range(0, len(inputs), batch_size)
        ]
        return torch.cat(chunks) if chunks else torch.empty(0)

    def predict(self, examples: Any):
        """Regression: a `prediction` column. Classification: `label` plus `prob_<class>` columns."""
        import pandas as pd

        outputs = self.outputs(examples)
        if self.recipe.task == REGRESSION:
            return pd.DataFrame({"prediction": outputs.squeeze(-1).float().numpy()})
        if outputs.shape[-1] == 1:  # one logit for two classes
            positive = outputs.squeeze(-1).sigmoid()
            probabilities = torch.stack([1 - positive, positive], dim=-1)
        else:
            probabilities = outputs.softmax(-1)
        names = self.recipe.class_names
        frame = pd.DataFrame({"label": [names[i] for i in probabilities.argmax(-1).tolist()]})
        for index, name in enumerate(names):
            frame[f"prob_{name}"] = probabilities[:, index].numpy()
        return frame
