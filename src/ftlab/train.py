"""`ftlab train`: one fine-tuning run, read top to bottom as its story.

Run as `python -m ftlab.train [overrides]` (what `ftlab train` execs), so Lightning's DDP launcher
can re-execute the very same command line for each extra rank.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ftlab.config.checks import check_config
from ftlab.config.locate import config_dir
from ftlab.config.setup import prepare_hydra
from ftlab.errors import FtlabError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
DDP_RUN_ID_VARIABLE = "FTLAB_RUN_ID"  # rank 0's run id, inherited by the ranks Lightning launches


def train(cfg: DictConfig, multirun: bool = False) -> dict[str, Any]:
    """Fine-tune as configured. Returns the objective for sweeps (`value`: best monitored score,
    `pruned_at_epoch`) and the final `metrics`."""
    # Every input is checked and every object built before a tracked run exists:
    # bad input fails here with one line and leaves nothing behind in MLflow.
    check_config(cfg)
    tracking = bool(cfg.logger.get("enabled"))
    if tracking:
        from ftlab.tracking.run import check_reachable
        from ftlab.tracking.store import resolve_tracking_uri

        tracking_uri = resolve_tracking_uri(cfg.logger.get("tracking_uri"), cfg.paths.root_dir)
        check_reachable(tracking_uri)

    # Heavy imports only once the cheap checks passed.
    import lightning.pytorch as L
    from lightning.pytorch.utilities import rank_zero_only

    from ftlab import builders
    from ftlab.console import print_config, quiet_lightning
    from ftlab.reproduce.handoff import reproduce_request, resume_request

    quiet_lightning()
    resume, reproduce = resume_request(), reproduce_request()
    is_rank_zero = rank_zero_only.rank == 0
    in_sweep = bool(cfg.get("optuna_trial"))
    if is_rank_zero and not in_sweep:  # a sweep prints one line per trial instead
        print_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = builders.build_datamodule(cfg)
    model = builders.build_model(cfg, datamodule)
    callbacks = builders.build_callbacks(cfg, with_logger=tracking)
    pruning = _trial_pruning(cfg)
    trainer = builders.build_trainer(cfg, callbacks + ([pruning] if pruning else []), multirun)
    checkpoint = resume.checkpoint if resume else None
    if not tracking:
        return _fit_and_test(cfg, trainer, model, datamodule, checkpoint)

    from ftlab.tracking.logger import MlflowRunLogger
    from ftlab.tracking.run import TrackedRun

    flush_every = cfg.logger.get("flush_every", 200)
    if not is_rank_zero:
        # Only rank 0 owns and writes the run; the ranks Lightning launched get its id from the
        # environment they inherited, so their (silent) logger matches rank 0's.
        run_id = os.environ.get(DDP_RUN_ID_VARIABLE, "")
        trainer.loggers = [MlflowRunLogger(tracking_uri, run_id, flush_every)]
        return _fit_and_test(cfg, trainer, model, datamodule, checkpoint)

    from ftlab.tracking.record import command_line, record_end, record_start, run_name, run_tags

    choices = _choices()
    name = run_name(cfg, choices.get("optimizer"))
    tags = run_tags(cfg, choices)
    differences = None
    if reproduce:
        from ftlab.reproduce.run_side import announce_differences

        differences = announce_differences(reproduce, tracking_uri, cfg, datamodule)
        tags.update(
            {"ftlab.reproduces": reproduce.run_id, "ftlab.reproduce_token": reproduce.token}
        )
    with TrackedRun(
        tracking_uri,
        cfg.experiment_name,
        name,
        tags,
        command_line(),
        resume_run_id=resume.run_id if resume else None,
    ) as run:
        os.environ[DDP_RUN_ID_VARIABLE] = run.run_id
        if resume:  # config, params and environment are those logged at the run's start
            from ftlab.reproduce.run_side import record_resume

            logged_steps = record_resume(run, checkpoint)
        else:
            record_start(run, cfg, datamodule)
            logged_steps = {}
        if differences is not None:
            from ftlab.reproduce.run_side import record_differences

            record_differences(run, differences)
        trainer.loggers = [
            MlflowRunLogger(tracking_uri, run.run_id, flush_every, logged_steps=logged_steps)
        ]
        if cfg.logger.get("system_metrics", True):
            run.start_system_metrics(cfg.logger.get("system_metrics_interval", 10))
        try:
            result = _fit_and_test(cfg, trainer, model, datamodule, checkpoint)
        except SystemExit:
            if not trainer.interrupted:
                raise
            run.mark_interrupted()
            _offer_resume(run, trainer)
            # Lightning exits with code None (success) after SIGTERM; a stopped run is not one.
            raise SystemExit(1) from None
        best = _best_checkpoint(trainer)
        if pruning is not None:
            pruned_at = pruning.pruned_epoch()
            state = "PRUNED" if pruned_at is not None else "COMPLETE"
            run.set_tags({"ftlab.trial_state": state, "ftlab.pruned_at_epoch": pruned_at})
        facts = record_end(run, cfg, model, datamodule, best or None)
        if not in_sweep:
            _print_ui_hint(run, facts)
    return result


def _trial_pruning(cfg: DictConfig) -> Any:
    """In a sweep job, the callback that reports to the Optuna trial and stops when pruned."""
    trial = cfg.get("optuna_trial")
    if not trial:
        return None
    from ftlab.sweep.trial_link import TrialPruning

    return TrialPruning(
        str(trial.study), str(trial.storage), int(trial.trial_id), str(cfg.optimized_metric)
    )


def _objective(cfg: DictConfig, trainer: Any, metrics: dict[str, float]) -> dict[str, Any]:
    """What a sweep job returns: the best monitored value and whether it was pruned."""
    monitored = _monitored_checkpoint(trainer)
    score = monitored.best_model_score if monitored is not None else None
    objective = str(cfg.get("optimized_metric") or cfg.monitor.metric)
    if objective == str(cfg.monitor.metric) and score is not None:
        value = float(score)  # the best epoch's value, the one the best checkpoint holds
    else:
        value = metrics.get(objective)
    pruned_at_epoch = None
    if cfg.get("optuna_trial"):
        from ftlab.sweep.trial_link import TrialPruning

        pruning = next(c for c in trainer.callbacks if isinstance(c, TrialPruning))
        pruned_at_epoch = pruning.pruned_epoch()
    return {"value": value, "pruned_at_epoch": pruned_at_epoch, "metrics": metrics}


def _fit_and_test(
    cfg: DictConfig, trainer: Any, model: Any, datamodule: Any, checkpoint: str | None = None
) -> dict[str, Any]:
    """Fit (from `checkpoint` when resuming), then test the best checkpoint."""
    from ftlab.console import print_results

    # weights_only: a checkpoint is loaded without running any pickled code.
    trainer.fit(model, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
    best = _best_checkpoint(trainer)
    has_best = best is not None
    if cfg.get("test", True):
        trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
    metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("test/", "val/"))
    }
    for logger in trainer.loggers:
        logger.finalize("success")
    if trainer.is_global_zero and not cfg.get("optuna_trial"):
        shown = {k: v for k, v in metrics.items() if k.startswith("test/")} or metrics
        print_results("test metrics (best checkpoint)" if has_best else "final metrics", shown)
    return _objective(cfg, trainer, metrics)


def _offer_resume(run: Any, trainer: Any) -> None:
    """After a stop signal: keep the last checkpoint with the run and say how to continue."""
    from ftlab.callbacks.checkpoints import LastCheckpoint

    last = next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
    if last is None or not last.path.is_file():
        return
    try:  # beside the local file, so the run can be resumed where that folder does not exist
        run.log_artifact(last.path, "checkpoints")
    except Exception as err:  # noqa: BLE001 - the local file is still there to resume from
        print(f"warning: could not upload {last.path}: {err}", file=sys.stderr)
    print(
        f"\nStopped; checkpoint saved at step {trainer.global_step}. Resume: ftlab resume {run.run_id}"
    )


def _monitored_checkpoint(trainer: Any) -> Any:
    """The callback that keeps the best checkpoint by the monitored metric (None when dropped)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)


def _best_checkpoint(trainer: Any) -> str | None:
    monitored = _monitored_checkpoint(trainer)
    return (monitored.best_model_path or None) if monitored is not None else None


def _choices() -> dict[str, str]:
    """The group options Hydra picked (`optimizer` -> `adamw`); {} outside a Hydra app."""
    if not HydraConfig.initialized():
        return {}
    return {str(k): str(v) for k, v in HydraConfig.get().runtime.choices.items() if v is not None}


def _print_ui_hint(run: Any, facts: dict[str, str]) -> None:
    lines = [f"\nRun {run.run_name} ({run.run_id}) is in {run.tracking_uri}"]
    if "model_uri" in facts:
        lines.append(f"Model: mlflow.pyfunc.load_model({facts['model_uri']!r}).predict(...)")
    if "registered" in facts:
        lines.append(f"Registered: {facts['registered']}")
    link = f"http://127.0.0.1:5000/#/experiments/{run.experiment_id}/runs?workflowType=machine_learning"
    lines.append(f"Open it: ftlab ui, then {link}")
    print("\n".join(lines))


def _user_error(err: BaseException | None) -> FtlabError | None:
    """The FtlabError behind `err`, also when Hydra's instantiate wrapped it."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, FtlabError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _nondeterministic_op(err: BaseException) -> FtlabError | None:
    """torch refuses an op that has no deterministic implementation when
    `trainer.deterministic=true`; say which, and how to run anyway."""
    message = str(err)
    if not isinstance(err, RuntimeError) or "deterministic implementation" not in message:
        return None
    return FtlabError(
        f"trainer.deterministic: {message.splitlines()[0]} Set trainer.deterministic=warn to run "
        "it anyway; the run is then not bitwise reproducible"
    )


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


prepare_hydra()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> Any:
    multirun = _is_multirun()
    try:
        result = train(cfg, multirun=multirun)
    except Exception as err:
        user_error = _user_error(err) or _nondeterministic_op(err)
        if user_error is None or multirun:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        sys.exit(2)
    # Sweepers read the objective from the job's return value.
    return result if multirun else result["value"]


if __name__ == "__main__":
    main()
