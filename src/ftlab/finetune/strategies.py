"""The strategies selected by `finetune=...`.

One class, `Strategy`, owns everything about which parameters train, when, and at which lr; the
presets only say when each depth of the backbone starts training (`start_epochs`). From that one
answer the strategy derives, consistently:

- the param groups, built once, for every parameter that ever trains — also those still frozen —
  each with its own `lr` (head lr x `backbone_lr_ratio` x `layer_decay`^distance from the head) and
  its `start_epoch`; biases and norm weights in groups without weight decay. Every scheduler
  multiplies each group's own lr, so the ratios hold under any schedule (timm's `lr_scale` would
  only be read by timm's schedulers);
- the phase at an epoch: which depths have `requires_grad`, which modules stay in eval mode. It is
  a function of the epoch alone, re-applied at every epoch start, so a run resumed from a
  checkpoint at epoch k is in exactly the phase it had at epoch k — unlike Lightning's
  `BackboneFinetuning`, whose resume can re-freeze unfrozen layers;
- the lr warm-up of groups that start late (`PhaseSchedule`, on top of the run's schedule).

Frozen parameters stay in the optimizer: their gradients are None, so torch's optimizers (AdamW's
decoupled weight decay included) skip them entirely; `tests/test_finetune.py` checks they stay
bit-identical.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from torch import nn

from ftlab.errors import FtlabError
from ftlab.finetune.depths import Depth, backbone_depths

if TYPE_CHECKING:
    from ftlab.models.module import FineTuneModule


def freeze(module: nn.Module) -> None:
    """Truly freeze: no gradients, and norm/dropout layers in eval mode so BatchNorm running
    statistics stay as pretrained (Lightning's own freeze leaves them training)."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    module.eval()


def no_weight_decay(name: str, param: nn.Parameter) -> bool:
    """Biases and norm weights (every 1-d tensor) are not decayed: decay would pull a norm's
    scale toward 0 and a bias toward no offset, which regularizes nothing useful."""
    return param.ndim <= 1 or name.endswith(".bias")


class Strategy:
    """Full fine-tuning: every parameter trains from the first epoch at the optimizer's lr.

    `layer_decay` (< 1) lowers the lr of each backbone depth by that factor per step away from
    the head; `no_decay_bias_norm` keeps weight decay off biases and norm weights.
    """

    def __init__(
        self,
        name: str = "full",
        layer_decay: float = 1.0,
        no_decay_bias_norm: bool = True,
        backbone_lr_ratio: float = 1.0,
        warmup_epochs: float = 0.0,
    ) -> None:
        if not 0 < layer_decay <= 1:
            raise FtlabError(f"finetune.layer_decay must lie in (0, 1] (got {layer_decay})")
        if backbone_lr_ratio <= 0:
            raise FtlabError(f"finetune.backbone_lr_ratio must be > 0 (got {backbone_lr_ratio})")
        self.name, self.layer_decay = name, layer_decay
        self.no_decay_bias_norm, self.backbone_lr_ratio = no_decay_bias_norm, backbone_lr_ratio
        self.warmup_epochs = warmup_epochs
        self.epoch = 0  # the phase currently applied

    # ------------------------------------------------------------ what each preset decides
    def start_epochs(self, num_depths: int) -> list[int | None]:
        """The epoch each backbone depth (input to output) starts training; None: never."""
        return [0] * num_depths

    def trains(self, name: str, param: nn.Parameter) -> bool:
        """Whether a backbone parameter trains at all once its depth has started (LoRA: adapters
        only)."""
        return True

    # ------------------------------------------------------------ derived
    def depths(self, model: FineTuneModule) -> list[Depth]:
        """The backbone's depths, cut once per backbone (mode switches ask for them often)."""
        cached = getattr(self, "_depths", None)
        if cached is None or cached[0] is not model.backbone:
            self._depths = (model.backbone, backbone_depths(model.backbone))
        return self._depths[1]

    def setup(self, model: FineTuneModule) -> None:
        """Called once, after the model is built and before the optimizer: the first epoch's phase."""
        self.apply_phase(model, 0)

    def apply_phase(self, model: FineTuneModule, epoch: int) -> None:
        """Make exactly the depths started by `epoch` trainable, the rest frozen in eval mode."""
        self.epoch = epoch
        depths = self.depths(model)
        for depth, start in zip(depths, self.start_epochs(len(depths)), strict=True):
            started = start is not None and epoch >= start
            for name, param in depth.params.items():
                param.requires_grad_(started and self.trains(name, param))
        for param in model.head.parameters():
            param.requires_grad_(True)
        model.train(model.training)  # re-apply modes: frozen parts to eval, started ones back

    def frozen_modules(self, model: FineTuneModule) -> list[nn.Module]:
        """Modules that must stay in eval mode whenever the model is put in train mode."""
        depths = self.depths(model)
        starts = self.start_epochs(len(depths))
        frozen = [d for d, s in zip(depths, starts, strict=True) if s is None or self.epoch < s]
        if len(frozen) == len(depths):
            return [model.backbone]
        return [module for depth in frozen for module in depth.modules]

    def depth_lr_scales(self, num_depths: int) -> list[float]:
        """lr of each depth relative to the head's: the top depth is one step from the head."""
        return [
            self.backbone_lr_ratio * self.layer_decay ** (num_depths - index)
            for index in range(num_depths)
        ]

    def param_groups(self, model: FineTuneModule, lr: float) -> list[dict[str, Any]]:
        """Every parameter that ever trains, head first (at `lr`), then the backbone's depths;
        depths with the same lr and start epoch share a group."""
        groups = self._split_decay("head", dict(model.head.named_parameters()), lr, 0)
        depths = self.depths(model)
        scales, starts = self.depth_lr_scales(len(depths)), self.start_epochs(len(depths))
        keys = list(zip(scales, starts, strict=True))
        shared = len(set(keys)) == 1
        merged: dict[str, nn.Parameter] = {}
        for index, (depth, (scale, start)) in enumerate(zip(depths, keys, strict=True)):
            if start is None:
                continue
            params = {n: p for n, p in depth.params.items() if self.trains(n, p)}
            if shared:
                merged.update(params)
            else:
                groups += self._split_decay(f"backbone.{index}", params, lr * scale, start)
        if shared and merged:
            scale, start = keys[0]
            groups += self._split_decay("backbone", merged, lr * scale, start)
        return groups

    def _split_decay(
        self, name: str, params: dict[str, nn.Parameter], lr: float, start_epoch: int | None
    ) -> list[dict[str, Any]]:
        decayed = [p for n, p in params.items() if not self._skip_decay(n, p)]
        plain = [p for n, p in params.items() if self._skip_decay(n, p)]
        base = {"lr": lr, "start_epoch": start_epoch}
        groups = [{"name": name, "params": decayed, **base}] if decayed else []
        if plain:
            groups.append(
                {"name": f"{name}.no_decay", "params": plain, "weight_decay": 0.0, **base}
            )
        return groups

    def _skip_decay(self, name: str, param: nn.Parameter) -> bool:
        return self.no_decay_bias_norm and no_weight_decay(name, param)

    def needs_phase_schedule(self, model: FineTuneModule) -> bool:
        depths = self.depths(model)
        return any(s for s in self.start_epochs(len(depths)) if s is not None)

    def warmup_steps(self, steps_per_epoch: int) -> int:
        return math.ceil(self.warmup_epochs * steps_per_epoch)

    def phase_schedule(self, optimizer: Any, schedule: Any, steps_per_epoch: int) -> Any:
        """The run's schedule wrapped so late groups start at 0 and warm up (phase_schedule.py)."""
        from ftlab.finetune.phase_schedule import PhaseSchedule

        return PhaseSchedule(
            optimizer, schedule, steps_per_epoch, self.warmup_steps(steps_per_epoch)
        )

    def trained_parameter_count(self, model: FineTuneModule) -> int:
        """Parameters that train at some point of the run (what the optimizer holds)."""
        return sum(p.numel() for g in self.param_groups(model, 1.0) for p in g["params"])

    def recorded_config(self, backbone_config: dict[str, Any]) -> dict[str, Any]:
        """The backbone recipe a checkpoint records (LoRA adds its adapters)."""
        return backbone_config

    def export_backbone(self, model: FineTuneModule) -> tuple[nn.Module, dict[str, Any]]:
        """The backbone and config the logged model is saved from (LoRA merges its adapters)."""
        return model.backbone, model.backbone_config

    def phase(self) -> dict[str, Any]:
        """What a checkpoint records of the phase (for people; it is re-derived from the epoch)."""
        return {"strategy": self.name, "epoch": self.epoch}


class Full(Strategy):
    """Every parameter trains from the first epoch (with optional layer decay)."""


class LinearProbe(Strategy):
    """Only the head trains; the backbone is frozen with its norm and dropout layers in eval mode."""

    def __init__(
        self, name: str = "linear_probe", layer_decay: float = 1.0, no_decay_bias_norm: bool = True
    ) -> None:
        super().__init__(name, layer_decay, no_decay_bias_norm)

    def start_epochs(self, num_depths: int) -> list[int | None]:
        return [None] * num_depths


class Gradual(Strategy):
    """Backbone frozen for `frozen_epochs`, then unfrozen all at once (`unfreeze: all`) or depth by
    depth from the top, one more every `every_epochs` (`unfreeze: blocks`). The backbone trains at
    `backbone_lr_ratio` x the head's lr, each newly unfrozen group warmed up over `warmup_epochs`."""

    def __init__(
        self,
        name: str = "gradual",
        frozen_epochs: int = 1,
        unfreeze: str = "blocks",
        every_epochs: int = 1,
        backbone_lr_ratio: float = 0.1,
        warmup_epochs: float = 0.5,
        layer_decay: float = 1.0,
        no_decay_bias_norm: bool = True,
    ) -> None:
        if unfreeze not in ("all", "blocks"):
            raise FtlabError(f"finetune.unfreeze must be all or blocks (got {unfreeze})")
        super().__init__(name, layer_decay, no_decay_bias_norm, backbone_lr_ratio, warmup_epochs)
        self.frozen_epochs, self.unfreeze = int(frozen_epochs), str(unfreeze)
        self.every_epochs = int(every_epochs)

    def start_epochs(self, num_depths: int) -> list[int | None]:
        if self.unfreeze == "all":
            return [self.frozen_epochs] * num_depths
        return [
            self.frozen_epochs + (num_depths - 1 - index) * self.every_epochs
            for index in range(num_depths)
        ]


class LPFT(Gradual):
    """LP-FT (Kumar et al. 2022): a linear probe for `probe_epochs`, then every parameter fine-tunes
    from the probed head, so the random head's early gradients do not distort pretrained features.
    The backbone joins at `backbone_lr_ratio` x the head's lr, warmed up."""

    def __init__(
        self,
        name: str = "lp_ft",
        probe_epochs: int = 1,
        backbone_lr_ratio: float = 1.0,
        warmup_epochs: float = 0.5,
        layer_decay: float = 1.0,
        no_decay_bias_norm: bool = True,
    ) -> None:
        super().__init__(
            name,
            frozen_epochs=probe_epochs,
            unfreeze="all",
            backbone_lr_ratio=backbone_lr_ratio,
            warmup_epochs=warmup_epochs,
            layer_decay=layer_decay,
            no_decay_bias_norm=no_decay_bias_norm,
        )
