"""What people see in the terminal: a short header, the results table, and less noise."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

from omegaconf import DictConfig

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


def file_log() -> logging.Logger:
    """`ftlab.train`: what goes to the run's train.log (Hydra's file handler) and not to the
    terminal, which has the progress bar and the tables: the run's id, epoch summaries, results."""
    log = logging.getLogger("ftlab.train")
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if files:
        log.propagate = False
        log.setLevel(logging.INFO)
        for handler in files:
            if handler not in log.handlers:
                log.addHandler(handler)
                _say_once_when_unwritable(handler)
    return log


def _say_once_when_unwritable(handler: logging.FileHandler) -> None:
    """On a full disk every log line fails to reach train.log, and Python prints a traceback for
    each: one line says it instead (other logging errors are reported as Python does)."""
    report = handler.handleError
    said: list[bool] = []

    def handle_error(record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            report(record)
        elif not said:
            said.append(True)
            print(f"warning: cannot write {handler.baseFilename} ({error})", file=sys.stderr)

    handler.handleError = handle_error


def print_header(
    cfg: DictConfig,
    choices: dict[str, str],
    overrides: list[str],
    run_name: str | None,
    output_dir: Path,
) -> None:
    """What runs, where, in a few lines; the whole config is `ftlab train --cfg job`."""
    from ftlab.redact import redact_text

    shown = ("experiment", "data", "model", "loss", "optimizer", "scheduler", "trainer", "finetune")
    groups = " ".join(f"{g}={choices[g]}" for g in shown if choices.get(g))
    lines = [
        f"ftlab train: {cfg.get('experiment_name')}" + (f" / run {run_name}" if run_name else "")
    ]
    lines.append(f"  {groups}")
    if overrides:
        lines.append("  overrides: " + " ".join(redact_text(o) for o in overrides))
    lines.append(f"  outputs: {output_dir}   (full config: ftlab train --cfg job ...)")
    print("\n".join(lines), flush=True)


def print_results(title: str, metrics: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        table.add_row(key, f"{metrics[key]:.4f}")
    Console().print(table)
