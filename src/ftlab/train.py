"""`ftlab train`: one fine-tuning run, read top to bottom as its story.

Run as `python -m ftlab.train [overrides]` (what `ftlab train` execs), so Lightning's DDP launcher
can re-execute the very same command line for each extra rank.
"""

from __future__ import annotations

import os
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ftlab import __version__
from ftlab.config.checks import check_config
from ftlab.config.locate import config_dir
from ftlab.config.setup import prepare_hydra
from ftlab.errors import FtlabError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
DDP_RUN_ID_VARIABLE = "FTLAB_RUN_ID"  # rank 0's run id, inherited by the ranks Lightning launches


def train(cfg: DictConfig, multirun: bool = False) -> dict[str, float]:
    """Fine-tune as configured; return the final metrics (test, else validation)."""
    import lightning.pytorch as L
    from lightning.pytorch.utilities import rank_zero_only

    from ftlab import builders
    from ftlab.console import print_config, quiet_lightning

    # Every input is checked and every object built before a tracked run exists:
    # bad input fails here with one line and leaves nothing behind in MLflow.
    check_config(cfg)
    quiet_lightning()
    is_rank_zero = rank_zero_only.rank == 0
    if is_rank_zero:
        print_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = builders.build_datamodule(cfg)
    model = builders.build_model(cfg, datamodule)
    tracking = bool(cfg.logger.get("enabled"))
    trainer = builders.build_trainer(
        cfg, builders.build_callbacks(cfg, with_logger=tracking), multirun
    )
    if not tracking:
        return _fit_and_test(cfg, trainer, model, datamodule)

    from ftlab.tracking.logger import MlflowRunLogger
    from ftlab.tracking.run import TrackedRun
    from ftlab.tracking.store import resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(cfg.logger.get("tracking_uri"), cfg.paths.root_dir)
    flush_every = cfg.logger.get("flush_every", 200)
    if not is_rank_zero:
        # Only rank 0 owns and writes the run; the ranks Lightning launched get its id from the
        # environment they inherited, so their (silent) logger matches rank 0's.
        run_id = os.environ.get(DDP_RUN_ID_VARIABLE, "")
        trainer.loggers = [MlflowRunLogger(tracking_uri, run_id, flush_every)]
        return _fit_and_test(cfg, trainer, model, datamodule)

    run_name = _run_name(cfg)
    with TrackedRun(
        tracking_uri, cfg.experiment_name, run_name, _tags(cfg), _command_line()
    ) as run:
        os.environ[DDP_RUN_ID_VARIABLE] = run.run_id
        run.log_params(_flatten(OmegaConf.to_container(cfg, resolve=True)))
        data_facts = {f"data.size.{split}": size for split, size in datamodule.split_sizes.items()}
        run.log_params({"data.fingerprint": datamodule.fingerprint, **data_facts})
        _log_config_files(run, cfg)
        trainer.loggers = [MlflowRunLogger(tracking_uri, run.run_id, flush_every)]
        try:
            metrics = _fit_and_test(cfg, trainer, model, datamodule)
        except SystemExit:
            if trainer.interrupted:
                run.mark_interrupted()
            raise
        _print_ui_hint(run)
    return metrics


def _fit_and_test(cfg: DictConfig, trainer: Any, model: Any, datamodule: Any) -> dict[str, float]:
    from ftlab.console import print_results

    trainer.fit(model, datamodule=datamodule)
    checkpoint = trainer.checkpoint_callback
    has_best = checkpoint is not None and bool(checkpoint.best_model_path)
    if cfg.get("test", True):
        trainer.test(
            model, datamodule=datamodule, ckpt_path="best" if has_best else None, verbose=False
        )
    metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("test/", "val/"))
    }
    for logger in trainer.loggers:
        logger.finalize("success")
    if trainer.is_global_zero:
        shown = {k: v for k, v in metrics.items() if k.startswith("test/")} or metrics
        print_results("test metrics (best checkpoint)" if has_best else "final metrics", shown)
    return metrics


def _run_name(cfg: DictConfig) -> str:
    if cfg.get("run_name"):
        return str(cfg.run_name)
    optimizer = _choice("optimizer") or str(cfg.optimizer._target_).rsplit(".", 1)[-1].lower()
    return f"{cfg.model.name}-{cfg.data.name}-{optimizer}-lr{cfg.optimizer.lr:g}-{uuid.uuid4().hex[:6]}"


def _tags(cfg: DictConfig) -> dict[str, str]:
    tags = {
        "ftlab.version": __version__,
        "ftlab.seed": str(cfg.seed),
        "ftlab.model": str(cfg.model.name),
        "ftlab.data": str(cfg.data.name),
        "ftlab.finetune": str(cfg.finetune.name),
        "ftlab.experiment": _choice("experiment") or "",
        "ftlab.output_dir": str(cfg.paths.output_dir),
    }
    optimizer = _choice("optimizer")
    if optimizer:
        tags["ftlab.optimizer"] = optimizer
    return tags


def _choice(group: str) -> str | None:
    if not HydraConfig.initialized():
        return None
    choice = HydraConfig.get().runtime.choices.get(group)
    return str(choice) if choice is not None else None


def _command_line() -> str:
    return "ftlab train " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): tree}


def _log_config_files(run: Any, cfg: DictConfig) -> None:
    run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
    hydra_dir = Path(cfg.paths.output_dir) / ".hydra"
    if hydra_dir.is_dir():
        run.log_artifact(hydra_dir, ".hydra")


def _print_ui_hint(run: Any) -> None:
    print(
        f"\nRun {run.run_name} ({run.run_id}) is in {run.tracking_uri}\n"
        f"Open it: ftlab ui, then http://127.0.0.1:5000/#/experiments/{run.experiment_id}/runs?workflowType=machine_learning"
    )


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


prepare_hydra()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    multirun = _is_multirun()
    try:
        metrics = train(cfg, multirun=multirun)
    except FtlabError as err:
        if multirun:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    return metrics.get(str(cfg.monitor.metric).replace("val/", "test/")) if metrics else None


if __name__ == "__main__":
    main()
