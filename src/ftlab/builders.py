"""Turn the composed config into objects: data module, model, callbacks, trainer.

Each builder checks what only it can check (a GPU that is not there, a loss that does not fit the
data) and raises FtlabError naming the key, before any run is created.
"""

from __future__ import annotations

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ftlab.config.checks import RELAUNCH_MESSAGE, relaunches_script
from ftlab.data.base import SplitDataModule
from ftlab.errors import FtlabError
from ftlab.models.module import FineTuneModule

# Callbacks that only make sense with a logger.
_LOGGER_CALLBACKS = {"learning_rates", "throughput"}


def build_datamodule(cfg: DictConfig) -> SplitDataModule:
    """Instantiate and load the data now, so a missing file fails before anything else."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule


def build_model(cfg: DictConfig, datamodule: SplitDataModule) -> FineTuneModule:
    # The loss decides how many outputs the head needs for this data.
    loss = instantiate(cfg.loss)
    loss.check_fits(datamodule.task, datamodule.num_classes)
    backbone = instantiate(cfg.model.backbone)
    datamodule.bind_inputs(backbone.preprocessor(), backbone.modality, backbone.normalization)
    head_config = {
        k: v
        for k, v in OmegaConf.to_container(cfg.model.head, resolve=True).items()
        if k != "_partial_"
    }
    head_config.update(
        in_features=backbone.out_features, out_features=loss.num_outputs(datamodule.num_classes)
    )
    head = instantiate(head_config)
    scheduler_cfg = cfg.get("scheduler")
    backbone_config = backbone.source_config or OmegaConf.to_container(
        cfg.model.backbone, resolve=True
    )
    return FineTuneModule(
        backbone=backbone,
        head=head,
        loss=loss,
        optimizer=instantiate(cfg.optimizer),
        schedule=instantiate(scheduler_cfg) if scheduler_cfg else None,
        strategy=instantiate(cfg.finetune),
        num_classes=datamodule.num_classes,
        backbone_config=backbone_config,
        head_config=head_config,
    )


def build_callbacks(cfg: DictConfig, with_logger: bool) -> list[L.Callback]:
    callbacks = []
    for name, callback_cfg in (cfg.get("callbacks") or {}).items():
        if callback_cfg is None or (name in _LOGGER_CALLBACKS and not with_logger):
            continue
        callbacks.append(instantiate(callback_cfg))
    return callbacks


def build_trainer(
    cfg: DictConfig, callbacks: list[L.Callback], multirun: bool = False
) -> L.Trainer:
    accelerator = str(cfg.trainer.accelerator)
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise FtlabError(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible: use trainer=cpu"
        )
    if multirun and relaunches_script(cfg.trainer.strategy):
        raise FtlabError(RELAUNCH_MESSAGE)  # checked before, as config; the builder holds too
    from ftlab.callbacks.checkpoints import AtomicCheckpointIO, ConfinedCheckpointPaths
    from ftlab.callbacks.progress import EpochProgressBar, EpochSummary

    callbacks = [*callbacks, EpochSummary(), ConfinedCheckpointPaths()]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(EpochProgressBar())
    lightning_keys = [k for k in cfg.trainer if k != "compile"]  # compile is applied by train
    return instantiate(
        OmegaConf.masked_copy(cfg.trainer, lightning_keys),
        callbacks=callbacks,
        logger=False,
        default_root_dir=cfg.paths.output_dir,
        plugins=[AtomicCheckpointIO()],
    )
