"""Loading weight files safely: safetensors, or torch files with `weights_only=True` (no pickle
code runs), with errors that name the tensors that do not fit."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ftlab.errors import FtlabError


def read_state_dict(
    path: str | Path, key: str = "model.backbone.weights_file"
) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a torch file (a bare state dict or one under
    'state_dict' / 'model'); `key` names the config key in error messages."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FtlabError(f"{key}: no such file {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise FtlabError(
            f"{key}: cannot read weights from {path}: {str(err).splitlines()[0][:200]}"
        ) from None
    for nested in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(nested), dict):
            loaded = loaded[nested]
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise FtlabError(f"{key}: {path} holds no state dict of tensors")
    return loaded


def load_weights(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    ignore_missing: tuple[str, ...] = (),
) -> None:
    """Copy `state` into `module`, refusing shape mismatches and missing tensors by name.

    Extra tensors in the file (a classifier the backbone dropped) are ignored; `ignore_missing`
    lists name prefixes the file may lack.
    """
    own = module.state_dict()
    mismatched = [
        f"{name} (file {tuple(state[name].shape)} vs model {tuple(tensor.shape)})"
        for name, tensor in own.items()
        if name in state and state[name].shape != tensor.shape
    ]
    missing = [name for name in own if name not in state and not name.startswith(ignore_missing)]
    if mismatched or missing:
        problems = (["shape mismatch: " + ", ".join(mismatched[:3])] if mismatched else []) + (
            [
                f"missing: {', '.join(missing[:3])}"
                + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else "")
            ]
            if missing
            else []
        )
        raise FtlabError(f"{source} does not fit the backbone: {'; '.join(problems)}")
    module.load_state_dict({name: state[name] for name in own if name in state}, strict=False)


def state_sha256(module: nn.Module) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order: two modules hash
    equal exactly when their weights and buffers are bitwise equal."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
