"""A backbone taken from the checkpoint of an earlier ftlab run (e.g. digits_pretrain).

ftlab checkpoints carry the backbone's config next to the weights, so the architecture is rebuilt
from the checkpoint alone; the file is read with `weights_only=True`, and only the backbone classes in
`ftlab.models.registry` may be named in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ftlab.errors import FtlabError
from ftlab.models.backbones.base import Backbone, without_original_weights
from ftlab.models.weights import load_weights

CHECKPOINT_KEY = "ftlab"  # where ftlab stores its own facts inside a Lightning checkpoint


def read_checkpoint(path: str | Path, key: str = "model.backbone.path") -> dict[str, Any]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FtlabError(f"{key}: no such checkpoint {path}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        raise FtlabError(
            f"{key}: {path} is not a PyTorch checkpoint (neither a zip archive nor a pickle); "
            "give the .ckpt file an ftlab run wrote under checkpoints/"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - corrupt or foreign files alike
        raise FtlabError(f"{key}: cannot read {path} ({str(err).splitlines()[0][:160]})") from None
    if CHECKPOINT_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise FtlabError(f"{key}: {path} is not an ftlab checkpoint (no backbone config inside)")
    return checkpoint


def backbone_from_checkpoint(path: str) -> Backbone:
    """Rebuild the backbone saved in an ftlab checkpoint and load its trained weights."""
    from ftlab.models.registry import BACKBONES, build_registered

    checkpoint = read_checkpoint(path)
    config = dict(checkpoint[CHECKPOINT_KEY]["backbone"])
    backbone = build_registered(
        without_original_weights(config), BACKBONES, f"model.backbone.path: {path}"
    )
    state = {
        name.removeprefix("backbone."): tensor
        for name, tensor in checkpoint["state_dict"].items()
        if name.startswith("backbone.")
    }
    load_weights(backbone, state, f"model.backbone.path {path}")
    backbone.source_config = checkpoint[CHECKPOINT_KEY]["backbone"]
    return backbone
