"""What people see in the terminal: the config tree, the results table, and less noise."""

from __future__ import annotations

import logging
import os
import warnings

from omegaconf import DictConfig, OmegaConf

_NOISE = ("litlogger", "litmodels", "💡 Tip", "LeafSpec", "TPU available", "HPU available")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in _NOISE)


def quiet_lightning() -> None:
    """Hide Lightning's advertising tips and known-harmless warnings, keep real messages."""
    root_handled = bool(logging.getLogger().handlers)
    for name in (
        "lightning",
        "lightning.pytorch",
        "lightning.fabric",
        "lightning.pytorch.utilities.rank_zero",
    ):
        logger = logging.getLogger(name)
        logger.addFilter(_DropNoise())
        for handler in list(logger.handlers):
            handler.addFilter(_DropNoise())
            if root_handled and type(handler) is logging.StreamHandler:
                # Hydra's root handlers already print (and write train.log): print once.
                logger.removeHandler(handler)
                logger.propagate = True
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # ftlab's data module carries the position in the epoch (SplitDataModule.state_dict).
    warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
    # ftlab keeps frozen parts in eval mode on purpose (finetune strategies).
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
    warnings.filterwarnings("ignore", message=".*on epoch level in distributed setting.*")


def print_config(cfg: DictConfig) -> None:
    from rich import print as rich_print
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    for key, value in cfg.items():
        text = (
            OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        )
        tree.add(str(key)).add(
            Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default")
        )
    rich_print(tree)


def print_results(title: str, metrics: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        table.add_row(key, f"{metrics[key]:.4f}")
    Console().print(table)
