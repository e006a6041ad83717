"""The classes a saved model (a model folder's `model.json`, an ftlab checkpoint) may name.

Those files travel through shared stores, so what they name is looked up in a fixed table of
ftlab's own backbone and head classes, by exact name. Nothing else is imported or called, and
their arguments may not switch a safety off or name further callables.
"""

from __future__ import annotations

import importlib
from typing import Any

from ftlab.errors import FtlabError

# Exact names as ftlab writes them -> (module, class). Module names here are ftlab's, never a file's.
BACKBONES = {
    "ftlab.models.backbones.hf.HFTextBackbone": ("ftlab.models.backbones.hf", "HFTextBackbone"),
    "ftlab.models.backbones.timm.TimmBackbone": ("ftlab.models.backbones.timm", "TimmBackbone"),
    "ftlab.models.backbones.torchvision.TorchvisionBackbone": (
        "ftlab.models.backbones.torchvision",
        "TorchvisionBackbone",
    ),
    "ftlab.models.backbones.digits_cnn.DigitsCNN": (
        "ftlab.models.backbones.digits_cnn",
        "DigitsCNN",
    ),
}
HEADS = {
    "ftlab.models.heads.LinearHead": ("ftlab.models.heads", "LinearHead"),
    "ftlab.models.heads.MLPHead": ("ftlab.models.heads", "MLPHead"),
}


def build_registered(
    config: dict[str, Any], table: dict[str, tuple[str, str]], source: str, **extra: Any
) -> Any:
    """`table[config["_target_"]](**arguments)`; FtlabError naming `source` for anything else."""
    from ftlab.config.trust import check_safe_settings, targets

    target = str(config.get("_target_", ""))
    if target not in table:
        known = ", ".join(sorted(name.rsplit(".", 1)[-1] for name in table))
        raise FtlabError(f"{source} names '{target}', which is not an ftlab class ({known})")
    arguments = {k: v for k, v in config.items() if k not in ("_target_", "_partial_")}
    nested = targets(arguments)
    if nested:
        key, value = nested[0]
        raise FtlabError(f"{source}: {key} names '{value}'; a saved model may not name callables")
    try:
        check_safe_settings(arguments)
    except FtlabError as err:
        raise FtlabError(f"{source}: {err}") from None
    module_name, class_name = table[target]
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**arguments, **extra)
