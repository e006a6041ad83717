"""Stop a run whose loss is no longer a number, so it ends FAILED instead of FINISHED with NaNs.

A diverged run (an lr of 1e6, an inf in the data) otherwise trains on, logs NaN metrics and a NaN
"model", and ends FINISHED with exit 0: garbage that looks fine.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as L
import torch

from ftlab.errors import FtlabError


class NonFiniteLoss(L.Callback):
    """Fails the run at the first non-finite training loss (or after `max_nonfinite_steps` of
    them; each such step is skipped, no parameter sees its gradients), when a validation or test
    loss is non-finite, and when training leaves a non-finite weight.

    Cost: one device-to-host sync per micro-batch to read the loss's finiteness (free on CPU; on a
    GPU Lightning's progress bar reads the loss every step anyway).
    """

    def __init__(self, max_nonfinite_steps: int = 0) -> None:
        if max_nonfinite_steps < 0:
            raise FtlabError(
                f"callbacks.nonfinite_loss.max_nonfinite_steps must be >= 0 (got {max_nonfinite_steps})"
            )
        self.max_nonfinite_steps = max_nonfinite_steps
        self.nonfinite_steps = 0
        self._step_finite = True
        self._last_value = 0.0

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        finite = bool(torch.isfinite(loss.detach()).all())
        if not finite:
            self._last_value = float(loss.detach().float().reshape(-1)[0])
        self._step_finite = self._step_finite and finite

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        finite = self._step_finite
        if trainer.world_size > 1:  # every rank skips or stops together
            finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
        self._step_finite = True
        if finite:
            return
        self.nonfinite_steps += 1
        if self.nonfinite_steps > self.max_nonfinite_steps:
            raise FtlabError(_diverged(trainer, pl_module, "train/loss", self._last_value))
        optimizer.zero_grad(set_to_none=True)  # skip: parameters without gradients stay as they are

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/loss")
        if trainer.sanity_checking or value is None or math.isfinite(float(value)):
            return
        raise FtlabError(_diverged(trainer, pl_module, "val/loss", float(value)))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The fit's last optimizer step has no loss after it to show a divergence (nor does a fit
        whose validation never ran): the weights it leaves show it."""
        for name, parameter in pl_module.named_parameters():
            weights = parameter.detach()
            nonfinite = weights[~torch.isfinite(weights)]
            if nonfinite.numel():
                value = float(nonfinite.reshape(-1)[0])
                raise FtlabError(_diverged(trainer, pl_module, f"weight {name}", value))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("test/loss")
        if value is None or math.isfinite(float(value)):
            return
        raise FtlabError(_diverged(trainer, pl_module, "test/loss", float(value)))

    def state_dict(self) -> dict[str, Any]:
        return {"nonfinite_steps": self.nonfinite_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.nonfinite_steps = int(state_dict.get("nonfinite_steps", 0))


def _diverged(trainer: L.Trainer, pl_module: L.LightningModule, metric: str, value: float) -> str:
    lrs = sorted({group["lr"] for opt in trainer.optimizers for group in opt.param_groups})
    lr_text = f"{lrs[-1]:.3g}" if lrs else "?"
    return (
        f"{metric} is {value} at step {trainer.global_step} (epoch {trainer.current_epoch + 1}): "
        f"training diverged. Likely causes: a learning rate too high (largest group lr {lr_text}; "
        "lower optimizer.lr or set trainer.gradient_clip_val) or non-finite values in the data"
    )
