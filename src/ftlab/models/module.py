"""The LightningModule: backbone -> head, trained with the task's loss and metrics.

It owns no policy of its own: the fine-tuning strategy says what trains and in which param
groups, the optimizer config says how, the schedule spec says how the lr moves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import lightning.pytorch as L
import torch
from torch import nn
from torch.optim import Optimizer

from ftlab.errors import FtlabError
from ftlab.models.backbones.base import Backbone
from ftlab.models.backbones.checkpoint import CHECKPOINT_KEY
from ftlab.models.losses import TaskLoss
from ftlab.models.metrics import ChunkedUpdates, task_metrics
from ftlab.names import REGRESSION

_PENDING_TRAIN_METRICS = "pending_train_metrics"


class FinetuneStrategy(Protocol):
    """What the module asks of a fine-tuning strategy (`ftlab.finetune.strategies.Strategy`):
    which parameters train when, in which param groups, and what a saved model is made of."""

    def setup(self, model: Any) -> None: ...
    def frozen_modules(self, model: Any) -> list[nn.Module]: ...
    def param_groups(self, model: Any, lr: float) -> list[dict[str, Any]]: ...
    def needs_phase_schedule(self, model: Any) -> bool: ...
    def phase_schedule(self, optimizer: Optimizer, schedule: Any, steps_per_epoch: int) -> Any: ...
    def apply_phase(self, model: Any, epoch: int) -> None: ...
    def trained_parameter_count(self, model: Any) -> int: ...
    def export_backbone(self, model: Any) -> tuple[nn.Module, dict[str, Any]]: ...
    def recorded_config(self, backbone_config: dict[str, Any]) -> dict[str, Any]: ...
    def phase(self) -> dict[str, Any]: ...


class FineTuneModule(L.LightningModule):
    def __init__(
        self,
        backbone: Backbone,
        head: nn.Module,
        loss: TaskLoss,
        optimizer: Callable[..., Optimizer],
        strategy: FinetuneStrategy,
        schedule: Any | None = None,
        num_classes: int | None = None,
        backbone_config: dict[str, Any] | None = None,
        head_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.backbone, self.head, self.loss = backbone, head, loss
        self.optimizer_factory, self.schedule = optimizer, schedule
        self.strategy = strategy
        self.task, self.num_classes = loss.task, num_classes
        # The recipes that rebuild backbone and head from files (checkpoints, the MLflow model).
        self.backbone_config = backbone_config or {}
        self.head_config = head_config or {}
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_metrics": task_metrics(
                    self.task, num_classes, f"{stage}/", persistent=stage == "train"
                )
                for stage in ("train", "val", "test")
            }
        )
        # Per-step predictions reach the metrics in chunks (see ChunkedUpdates).
        self.metric_updates = {
            stage: ChunkedUpdates(self.metrics[f"{stage}_metrics"])
            for stage in ("train", "val", "test")
        }
        self.strategy.setup(self)
        # Pretrained models often load in eval mode and Lightning keeps modes as it finds them:
        # start in train mode (frozen parts stay in eval, see `train`).
        self.train()

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.head(self.backbone(inputs))

    def train(self, mode: bool = True) -> FineTuneModule:
        """Frozen parts stay in eval mode however often Lightning switches modes."""
        super().train(mode)
        for module in self.strategy.frozen_modules(self):
            module.eval()
        return self

    # ------------------------------------------------------------ steps
    def _shared_step(self, batch: tuple[Any, torch.Tensor], stage: str) -> torch.Tensor:
        inputs, targets = batch
        outputs = self(inputs)
        loss = self.loss(outputs, targets)
        predictions = self.loss.predict(outputs.detach())
        self.metric_updates[stage].add(
            predictions.float() if self.task == REGRESSION else predictions.argmax(-1), targets
        )
        on_step = stage == "train"
        if on_step and not self._logs_this_step():
            return loss
        # Epoch-level losses are averaged over all ranks so every rank checkpoints and stops alike.
        self.log(
            f"{stage}/loss",
            loss,
            on_step=on_step,
            on_epoch=not on_step,
            prog_bar=True,
            batch_size=len(targets),
            sync_dist=not on_step,
        )
        return loss

    def _logs_this_step(self) -> bool:
        """Whether Lightning hands this training step's metrics to the loggers. A step loss logged
        on any other step is never written, and `self.log` costs about a millisecond of Python per
        call (5% of a digits CNN step); Lightning's own predicate, so the logged steps stay the
        same."""
        connector = getattr(self.trainer, "_logger_connector", None)
        if connector is None:  # a Lightning without it: log every step, as before
            return True
        return bool(connector.should_update_logs or self.trainer.fast_dev_run)

    def training_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def _log_epoch_metrics(self, stage: str) -> None:
        # compute() syncs across DDP ranks: one reduction per epoch, not per step.
        self.metric_updates[stage].flush()
        metrics = self.metrics[f"{stage}_metrics"]
        self.log_dict(metrics.compute(), prog_bar=stage != "train")
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    # ------------------------------------------------------------ optimization
    def configure_optimizers(self) -> Any:
        base_lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        if base_lr is None:  # a strategy scales every group from the head's lr: it must be known
            raise FtlabError(
                "optimizer.lr is required (the head's learning rate); set optimizer.lr=VALUE"
            )
        # The strategy builds every group once, frozen ones included (see finetune/strategies.py).
        groups = self.strategy.param_groups(self, base_lr)
        optimizer = self.optimizer_factory(groups)
        needs_phases = self.strategy.needs_phase_schedule(self)
        if self.schedule is None and not needs_phases:
            return optimizer
        # The schedule is sized from the real number of optimizer steps, known only now.
        total_steps = int(self.trainer.estimated_stepping_batches)
        schedule = self.schedule.build(optimizer, total_steps) if self.schedule else None
        if not needs_phases:
            return {"optimizer": optimizer, "lr_scheduler": schedule}
        steps_per_epoch = math.ceil(
            self.trainer.num_training_batches / self.trainer.accumulate_grad_batches
        )
        # Groups that start late get their warm-up on top of whatever the schedule says.
        phased = self.strategy.phase_schedule(optimizer, schedule, steps_per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": phased, "interval": "step"}}

    def on_train_epoch_start(self) -> None:
        """The phase (what is frozen) is a function of the epoch: re-applied at every epoch start,
        a resumed run is in the same phase as the run it resumes."""
        self.strategy.apply_phase(self, self.current_epoch)

    def trained_parameter_count(self) -> int:
        """Parameters that train at some point of the run: what the optimizer holds."""
        return self.strategy.trained_parameter_count(self)

    def exported_backbone(self) -> tuple[nn.Module, dict[str, Any]]:
        """The backbone (and its config) the saved model is made of: LoRA's adapters merged."""
        return self.strategy.export_backbone(self)

    # ------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the backbone's config so a later run can rebuild it from this file alone, and
        the fine-tuning phase for people reading the file (resume re-derives it from the epoch)."""
        checkpoint[CHECKPOINT_KEY] = {
            "backbone": self.strategy.recorded_config(self.backbone_config),
            "task": self.task,
            "num_classes": self.num_classes,
            "finetune_phase": self.strategy.phase(),
            # The train predictions not yet in the metrics' state: a run resumed from here
            # updates its metrics in the same chunks as one that never stopped.
            _PENDING_TRAIN_METRICS: self.metric_updates["train"].pending(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        pending = checkpoint.get(CHECKPOINT_KEY, {}).get(_PENDING_TRAIN_METRICS, [])
        self.metric_updates["train"].restore(pending)
