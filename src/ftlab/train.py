"""`ftlab train`: one fine-tuning run, read top to bottom as its story.

Run as `python -m ftlab.train [overrides]` (what `ftlab train` execs), so Lightning's DDP launcher
can re-execute the very same command line for each extra rank.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ftlab.allocator import keep_freed_memory
from ftlab.collector import collector_paused, collector_skips_what_exists, import_for_trials
from ftlab.config.checks import check_config
from ftlab.config.locate import config_dir
from ftlab.config.setup import prepare_hydra
from ftlab.errors import FtlabError, causes, disk_full, no_room
from ftlab.names import (
    CHECKPOINTS_DIR,
    LAST_CHECKPOINT,
    OBJECTIVE_ERROR,
    PRUNED_AT,
    TAG_GLOBAL_BATCH,
    TAG_NUM_NODES,
    TAG_PRUNED_AT,
    TAG_REPRODUCE_TOKEN,
    TAG_REPRODUCES,
    TAG_TRIAL_STATE,
    TAG_WORLD_SIZE,
    TRIAL_KEY,
)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# MLflow's client retries a dead server for minutes by default; ftlab's reporter thread retries
# metrics itself, so the calls left on the training side give up sooner.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
DDP_RUN_ID_VARIABLE = "FTLAB_RUN_ID"  # rank 0's run id, inherited by the ranks Lightning launches


def train(cfg: DictConfig, multirun: bool = False) -> dict[str, Any]:
    """Fine-tune as configured. Returns the objective for sweeps (`value`: best monitored score,
    `pruned_at_epoch`) and the final `metrics`."""
    # The collector stays off while the run imports and builds; fitting turns it back on, and so
    # does the end of the run however it ends, since a sweep worker goes on to its next trial.
    with collector_paused():
        if multirun:  # this process may run job after job: its imports are frozen for good
            import_for_trials()
        return _train(cfg, multirun)


def _train(cfg: DictConfig, multirun: bool) -> dict[str, Any]:
    from ftlab.reproduce.handoff import reproduce_request, resume_request

    resume, reproduce = resume_request(), reproduce_request()
    # MLflow loads in a helper process meanwhile, on another core; it creates the run when asked.
    with _tracking_helper(cfg, resume or reproduce) as helper:
        # Every input the config alone can tell about is checked first, in seconds: bad input
        # fails with one line and leaves nothing behind.
        _check_inputs(cfg, multirun, resume or reproduce)
        tracking_uri = _tracking_store(cfg)
        # Heavy imports only once the cheap checks passed.
        import lightning.pytorch as L

        from ftlab.console import file_log, quiet_lightning

        quiet_lightning()
        file_log()
        run_name = _announce(cfg, tracking_uri)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        # Data before the model: a missing or unreadable file fails before a backbone loads.
        datamodule = _setup_data(cfg)
        # The model after the data: the head's width and the loss follow the data's task and classes.
        model = _setup_model(cfg, datamodule)
        # The trainer last: the schedule inside it is sized from the data's length.
        trainer = _setup_trainer(cfg, multirun, tracking=tracking_uri is not None)
        checkpoint = resume.checkpoint if resume else None
        if tracking_uri is None:
            return _fit_and_test(cfg, trainer, model, datamodule, checkpoint)
        if trainer.global_rank != 0:
            if helper is not None:
                helper.shutdown()
            return _fit_and_test_silently(cfg, trainer, model, datamodule, checkpoint)
        # The tracked run exists only from here: everything it records was already built.
        tracked = _tracked_run(cfg, tracking_uri, run_name, resume, reproduce, datamodule, helper)
        with tracked as (run, logger):
            trainer.loggers = [logger]
            _record_topology(run, trainer, cfg)
            try:
                result = _fit_and_test(cfg, trainer, model, datamodule, checkpoint)
                _record_results(cfg, run, trainer, model, datamodule)
            except (SystemExit, KeyboardInterrupt):  # Lightning turns a stop inside fit into exit
                _offer_resume_if_stopped(run, trainer)
                raise
        return result


# ------------------------------------------------------------------ 1. checks
def _check_inputs(cfg: DictConfig, multirun: bool, stored: Any) -> None:
    """Config-only checks: values, unknown keys, files, loss vs data, devices, DDP in sweeps;
    for a config from a store (reproduce, resume), no secret of this machine in its values."""
    from ftlab.config.overrides import repeated_keys
    from ftlab.redact import redact_text

    if HydraConfig.initialized() and not _relaunched_rank() and not cfg.get(TRIAL_KEY):
        for line in repeated_keys(list(HydraConfig.get().overrides.task)):
            print(f"warning: {redact_text(line)}", file=sys.stderr)
    check_config(cfg)
    if multirun:
        from ftlab.config.checks import RELAUNCH_MESSAGE, relaunches_script

        if relaunches_script(cfg.trainer.strategy):
            raise FtlabError(RELAUNCH_MESSAGE)
    if stored is not None and stored.store_checks:
        from ftlab.config.trust import (
            check_resolved_folders,
            check_resolved_secrets,
            guard_environment,
        )

        guard_environment(stored.allowed_env)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        check_resolved_secrets(resolved, stored.allowed_env)
        check_resolved_folders(resolved)


def _tracking_store(cfg: DictConfig) -> str | None:
    """The tracking URI when the run is tracked, once its server answers (None: untracked)."""
    if not cfg.logger.get("enabled"):
        return None
    from ftlab.tracking.run import check_reachable
    from ftlab.tracking.store import check_store_location, resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(cfg.logger.get("tracking_uri"), cfg.paths.root_dir)
    check_store_location(tracking_uri)
    check_reachable(tracking_uri)
    return tracking_uri


def _tracking_uri(cfg: DictConfig) -> str | None:
    """Where the config says the run is tracked, before any check (None where that cannot be
    told yet: `_tracking_store` says why, in its turn)."""
    from ftlab.tracking.store import resolve_tracking_uri

    try:
        return resolve_tracking_uri(cfg.logger.get("tracking_uri"), cfg.paths.root_dir)
    except Exception:  # noqa: BLE001 - reported by the checks
        return None


@contextlib.contextmanager
def _tracking_helper(cfg: DictConfig, stored: Any) -> Iterator[Any]:
    """ftlab's tracking helper process (tracking/helper.py), for a new run in a process that has
    not loaded MLflow: it imports MLflow and opens the store (2-4 s) while this process checks the
    config, imports torch and builds; it creates nothing until asked. None where MLflow costs
    little or nothing more in this process: a sweep's trials (their worker loaded it for its first
    trial), resumed and reproduced runs (they read the stored run here, after their config's
    checks), DDP ranks that record nothing, untracked runs."""
    wanted = (
        cfg.logger.get("enabled")
        and stored is None
        and not cfg.get(TRIAL_KEY)
        and not _started_as_other_rank()
        and "mlflow" not in sys.modules
    )
    tracking_uri = _tracking_uri(cfg) if wanted else None
    if tracking_uri is None:
        yield None
        return
    from ftlab.tracking.helper import HelperCalls

    helper = HelperCalls(tracking_uri)
    try:
        yield helper
    finally:
        helper.shutdown()


# ------------------------------------------------------------------ 2. the parts
def _announce(cfg: DictConfig, tracking_uri: str | None) -> str | None:
    """A few lines on what runs where (the full config: `ftlab train --cfg job`); also redacts
    the config files Hydra wrote, before anything else reads them. Returns the run's name."""
    from ftlab.console import print_header
    from ftlab.redact import redact_yaml_files

    output_dir = Path(cfg.paths.output_dir)
    if _relaunched_rank():
        return None
    redact_yaml_files(output_dir / ".hydra")
    name = None
    if tracking_uri is not None:
        from ftlab.tracking.record import run_name

        name = run_name(cfg, _choices().get("optimizer"))
    if not cfg.get(TRIAL_KEY):  # a sweep prints one line per trial instead
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        print_header(cfg, _choices(), overrides, name, output_dir)
    return name


def _setup_data(cfg: DictConfig) -> Any:
    from ftlab import builders

    return builders.build_datamodule(cfg)


def _setup_model(cfg: DictConfig, datamodule: Any) -> Any:
    from ftlab import builders

    return builders.build_model(cfg, datamodule)


def _setup_trainer(cfg: DictConfig, multirun: bool, tracking: bool) -> Any:
    from ftlab import builders

    callbacks = builders.build_callbacks(cfg, with_logger=tracking)
    pruning = _trial_pruning(cfg)
    return builders.build_trainer(cfg, callbacks + ([pruning] if pruning else []), multirun)


def _trial_pruning(cfg: DictConfig) -> Any:
    """In a sweep job, the callback that reports to the Optuna trial and stops when pruned."""
    trial = cfg.get(TRIAL_KEY)
    names = _objective_names(cfg)
    if not trial or len(names) > 1:  # Optuna prunes single-objective studies only
        return None
    from ftlab.sweep.trial_link import TrialPruning

    return TrialPruning.from_link(trial, names[0])


# ------------------------------------------------------------------ 3. the tracked run
@contextlib.contextmanager
def _tracked_run(
    cfg: DictConfig,
    tracking_uri: str,
    name: str | None,
    resume: Any,
    reproduce: Any,
    data: Any,
    helper: Any,
) -> Iterator[tuple[Any, Any]]:
    """The MLflow run (a new one, or the one being resumed) with its start recorded, and the
    Lightning logger that writes into it; leaving the block ends the run with its status."""
    from ftlab.console import file_log
    from ftlab.tracking.logger import MlflowRunLogger
    from ftlab.tracking.record import command_line, run_tags
    from ftlab.tracking.run import TrackedRun
    from ftlab.tracking.spool import SPOOL_DIR

    tags = run_tags(cfg, _choices())
    if reproduce:
        tags.update({TAG_REPRODUCES: reproduce.run_id, TAG_REPRODUCE_TOKEN: reproduce.token})
    # A reproduction is compared with its original before the new run exists.
    differences = _announce_differences(cfg, tracking_uri, reproduce, data)
    with TrackedRun(
        tracking_uri, str(cfg.experiment_name), name or "", Path(cfg.paths.output_dir) / SPOOL_DIR,
        tags, command_line(), resume_run_id=resume.run_id if resume else None,
        send_timeout_s=float(cfg.logger.get("send_timeout_s", 120)), calls=helper,
    ) as run:  # fmt: skip
        os.environ[DDP_RUN_ID_VARIABLE] = str(run.run_id)
        file_log().info("run %s (%s) in %s", run.run_id, run.run_name, cfg.experiment_name)
        if cfg.get(TRIAL_KEY):
            from ftlab.sweep.trial_link import record_trial_run

            record_trial_run(cfg[TRIAL_KEY], str(run.run_id))
        logged_steps = _record_start(cfg, run, resume, data)
        if differences is not None:
            from ftlab.reproduce.run_side import record_differences

            record_differences(run, differences)
        interval = cfg.logger.get("system_metrics_interval", 10)
        run.start_reporting(
            interval if cfg.logger.get("system_metrics", True) else None, _trains_on_cuda(cfg)
        )
        yield run, MlflowRunLogger(run.spool, str(run.run_id), logged_steps)


def _record_topology(run: Any, trainer: Any, cfg: DictConfig) -> None:
    """How many processes trained, on how many nodes, with how many examples per step: what
    reproducing the run needs (`ftlab reproduce` refuses another world size)."""
    global_batch = cfg.data.batch_size * trainer.world_size * trainer.accumulate_grad_batches
    run.set_tags(
        {
            TAG_WORLD_SIZE: trainer.world_size,
            TAG_NUM_NODES: trainer.num_nodes,
            TAG_GLOBAL_BATCH: global_batch,
        }
    )


def _announce_differences(cfg: DictConfig, tracking_uri: str, reproduce: Any, data: Any) -> Any:
    if not reproduce:
        return None
    from ftlab.reproduce.run_side import announce_differences

    return announce_differences(reproduce, tracking_uri, cfg, data)


def _record_start(cfg: DictConfig, run: Any, resume: Any, data: Any) -> dict[str, int]:
    """Params, config, environment for a new run; for a resumed one, the steps it already holds
    (config, params and environment are those logged at its start)."""
    if resume:
        from ftlab.reproduce.run_side import record_resume

        run.send_pending()  # what the interrupted process could not send comes first
        return record_resume(run, resume.checkpoint)
    from ftlab.tracking.record import record_start

    record_start(run, cfg, data)
    return {}


def _fit_and_test_silently(
    cfg: DictConfig, trainer: Any, model: Any, datamodule: Any, checkpoint: str | None
) -> dict[str, Any]:
    """A DDP rank other than 0: it trains in step with rank 0, whose run records everything."""
    from ftlab.tracking.logger import MlflowRunLogger

    trainer.loggers = [MlflowRunLogger(None, os.environ.get(DDP_RUN_ID_VARIABLE, ""))]
    return _fit_and_test(cfg, trainer, model, datamodule, checkpoint)


def _record_results(cfg: DictConfig, run: Any, trainer: Any, model: Any, datamodule: Any) -> None:
    from ftlab.tracking.record import record_end

    if cfg.get(TRIAL_KEY):
        pruning = _trial_pruning_callback(trainer)
        pruned_at = pruning.pruned_epoch() if pruning is not None else None
        state = "PRUNED" if pruned_at is not None else "COMPLETE"
        run.set_tags({TAG_TRIAL_STATE: state, TAG_PRUNED_AT: pruned_at})
        if pruned_at is not None:  # seen in the UI's runs table, whose status says Finished
            run.set_tags({"mlflow.runName": f"{run.run_name} [pruned@{pruned_at + 1}]"})
    facts = record_end(run, cfg, model, datamodule, _best_checkpoint(trainer))
    if not cfg.get(TRIAL_KEY):
        _print_ui_hint(run, facts)


# ------------------------------------------------------------------ 4. fit and test
def _fit_and_test(
    cfg: DictConfig, trainer: Any, model: Any, datamodule: Any, checkpoint: str | None = None
) -> dict[str, Any]:
    """Fit (from `checkpoint` when resuming), then test the best checkpoint. Afterwards the model
    holds the best checkpoint's weights: what is tested, hashed and logged is the same model."""
    import torch

    from ftlab.console import print_results

    # Lightning runs a compiled module's forward and keeps the weights in `model` itself.
    runnable = torch.compile(model) if cfg.trainer.get("compile") else model
    # weights_only: a checkpoint is loaded without running any pickled code.
    with collector_skips_what_exists():  # the imports and the built run stay frozen
        trainer.fit(runnable, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
    from ftlab.callbacks.checkpoints import stop_requested

    if stop_requested(trainer):  # it came during the fit's last save or end hooks, unanswered
        from ftlab.stopping import Interrupted

        raise Interrupted("stopped by signal at the end of training")
    # Testing replaces the trainer's metrics: the last epoch's val/* are kept for the objective.
    fitted = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = _best_checkpoint(trainer)
    if cfg.get("test", True):  # testing from `best` loads its weights into the model
        trainer.test(
            runnable, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True
        )
    elif best:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict(state)
    final = {**fitted, **{k: float(v) for k, v in trainer.callback_metrics.items()}}
    metrics = {k: v for k, v in final.items() if k.startswith(("test/", "val/"))}
    for logger in trainer.loggers:
        logger.finalize("success")
    if trainer.is_global_zero:
        from ftlab.console import file_log

        file_log().info(
            "final metrics: %s", " ".join(f"{k}={v:.6g}" for k, v in sorted(metrics.items()))
        )
    if trainer.is_global_zero and not cfg.get(TRIAL_KEY):
        shown = {k: v for k, v in metrics.items() if k.startswith("test/")} or metrics
        print_results("test metrics (best checkpoint)" if best else "final metrics", shown)
    return _objective(cfg, trainer, metrics, final)


def _objective(
    cfg: DictConfig, trainer: Any, metrics: dict[str, float], final: dict[str, float]
) -> dict[str, Any]:
    """What a sweep job returns: the value of each optimized metric (the monitored one at its best
    epoch, the one the best checkpoint holds; others at the end) and whether it was pruned."""
    monitored = _monitored_checkpoint(trainer)
    score = monitored.best_model_score if monitored is not None else None
    names = _objective_names(cfg)
    values = []
    for name in names:
        if name == str(cfg.monitor.metric) and score is not None:
            values.append(float(score))
        else:
            values.append(final.get(name))
    pruning = _trial_pruning_callback(trainer)
    pruned_at_epoch = pruning.pruned_epoch() if pruning is not None else None
    value = values if len(names) > 1 else values[0]
    objective = {"value": value, PRUNED_AT: pruned_at_epoch, "metrics": metrics}
    missing = [name for name, v in zip(names, values, strict=True) if v is None]
    if missing:  # a sweep fails the trial with this instead of "returned None"
        objective[OBJECTIVE_ERROR] = (
            f"optimized_metric {', '.join(missing)} was not logged; the run's final metrics: "
            f"{', '.join(sorted(final))}"
        )
    return objective


def _objective_names(cfg: DictConfig) -> list[str]:
    """`optimized_metric`: one name, or a list of them for a multi-objective sweep."""
    metric = cfg.get("optimized_metric") or cfg.monitor.metric
    return [str(m) for m in metric] if OmegaConf.is_list(metric) else [str(metric)]


def _offer_resume_if_stopped(run: Any, trainer: Any) -> None:
    """After a stop signal: keep the last checkpoint with the run and say how to continue."""
    from ftlab.callbacks.checkpoints import LastCheckpoint
    from ftlab.stopping import STOP

    if not STOP.requested:
        return
    last = next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
    if last is None or not last.path.is_file():
        return
    try:  # beside the local file, so the run can be resumed where that folder does not exist
        run.log_artifact(last.path, CHECKPOINTS_DIR)
    except Exception as err:  # noqa: BLE001 - the local file is still there to resume from
        print(f"warning: could not upload {last.path}: {err}", file=sys.stderr)
    print(
        f"\nStopped; checkpoint saved at step {trainer.global_step}. Resume: ftlab resume {run.run_id}"
    )


# ------------------------------------------------------------------ small facts
def _monitored_checkpoint(trainer: Any) -> Any:
    """The callback that keeps the best checkpoint by the monitored metric (None when dropped)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)


def _trial_pruning_callback(trainer: Any) -> Any:
    from ftlab.sweep.trial_link import TrialPruning

    return next((c for c in trainer.callbacks if isinstance(c, TrialPruning)), None)


def _best_checkpoint(trainer: Any) -> str | None:
    monitored = _monitored_checkpoint(trainer)
    return (monitored.best_model_path or None) if monitored is not None else None


def _choices() -> dict[str, str]:
    """The group options Hydra picked (`optimizer` -> `adamw`); {} outside a Hydra app."""
    if not HydraConfig.initialized():
        return {}
    return {str(k): str(v) for k, v in HydraConfig.get().runtime.choices.items() if v is not None}


def _relaunched_rank() -> bool:
    """A rank Lightning's DDP launcher started by re-running this command line."""
    return (
        int(os.environ.get("LOCAL_RANK", "0") or 0) > 0
        or int(os.environ.get("NODE_RANK", "0") or 0) > 0
    )


def _started_as_other_rank() -> bool:
    """A process that a launcher (Lightning's, torchrun, srun) started as a rank other than 0."""

    def rank(name: str) -> int:
        value = os.environ.get(name, "")
        return int(value) if value.isdigit() else 0

    return _relaunched_rank() or any(rank(n) > 0 for n in ("RANK", "GROUP_RANK", "SLURM_PROCID"))


def _trains_on_cuda(cfg: DictConfig) -> bool:
    """Whether the run's trainer picks CUDA GPUs (`auto` does when one is visible)."""
    accelerator = str(cfg.trainer.accelerator)
    if accelerator == "auto":
        import torch

        return torch.cuda.is_available()
    return accelerator in ("gpu", "cuda")


def _print_ui_hint(run: Any, facts: dict[str, str]) -> None:
    from ftlab.redact import redact_text

    lines = [f"\nRun {run.run_name} ({run.run_id}) is in {redact_text(run.tracking_uri)}"]
    if "model_uri" in facts:
        lines.append(f"Model: mlflow.pyfunc.load_model({facts['model_uri']!r}).predict(...)")
    if "registered" in facts:
        lines.append(f"Registered: {facts['registered']}")
    from ftlab.tracking.ui import ui_runs_link

    lines.append(f"Open it: ftlab ui, then {ui_runs_link(run.experiment_id)}")
    print("\n".join(lines))


# ------------------------------------------------------------------ the command
def _user_error(err: BaseException | None) -> FtlabError | None:
    """The FtlabError behind `err`, also when Hydra's instantiate wrapped it."""
    return next((cause for cause in causes(err) if isinstance(cause, FtlabError)), None)


def _disk_full(
    err: BaseException, cfg: DictConfig, multirun: bool, started_at: float
) -> FtlabError | None:
    """A write that found its disk full (a checkpoint, the spool, a local store's artifacts). A
    run that saved a whole last checkpoint before continues from it once there is room."""
    full = disk_full(err)
    if full is None:
        return None
    # The folder: the file is often a temporary one (torch's writer does not name it at all).
    output_dir = Path(str(cfg.paths.output_dir))
    where = Path(full.filename).parent if full.filename else output_dir
    line = no_room(full, where)
    if not where.is_relative_to(output_dir):  # the temp folder, say: another run folder won't help
        return FtlabError(line)
    run_id = os.environ.get(DDP_RUN_ID_VARIABLE)  # set once the tracked run exists
    last = output_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT
    # Only a checkpoint this process wrote: a reused folder may hold another run's.
    if run_id and not multirun and last.is_file() and last.stat().st_mtime >= started_at:
        return FtlabError(
            f"{line}, then continue the run from its last checkpoint: ftlab resume {run_id}"
        )
    return FtlabError(
        f"{line}, or give the run a folder on another disk (hydra.run.dir=..., a sweep's "
        "hydra.sweep.dir=...)"
    )


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


def _discard_unused_output_dir(cfg: DictConfig) -> None:
    """A run that failed its checks leaves no folder: remove the one Hydra made for it when it
    holds nothing but Hydra's own files."""
    import shutil

    try:
        output_dir = Path(cfg.paths.output_dir)
    except Exception:  # noqa: BLE001 - outside a Hydra run there is no such folder
        return
    if not output_dir.is_dir() or any(
        p.name not in (".hydra", "train.log") for p in output_dir.iterdir()
    ):
        return
    shutil.rmtree(output_dir, ignore_errors=True)
    for parent in (output_dir.parent, output_dir.parent.parent):
        if parent.name and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


prepare_hydra()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> Any:
    # Here, not in train(): this is the process's own entry, wherever Hydra calls it from (this
    # command, a sweep's worker, a launcher's), and a library caller keeps its malloc as it is.
    multirun = _is_multirun()
    started_at = time.time()
    try:
        keep_freed_memory()  # before the model's tensors: a step reuses what the last one freed
        result = train(cfg, multirun=multirun)
    except KeyboardInterrupt:
        if multirun:  # the sweeper ends the sweep
            raise
        print("stopped by signal", file=sys.stderr)  # what to resume, if anything, is printed
        sys.exit(1)
    except Exception as err:
        user_error = (
            _user_error(err)
            or _nondeterministic_op(err)
            or _disk_full(err, cfg, multirun, started_at)
        )
        if user_error is None or (multirun and user_error is err):
            raise
        if multirun:  # the sweeper records a trial's error: the explained one, not its wrapper
            raise user_error from err
        from ftlab.redact import redact_text

        _discard_unused_output_dir(cfg)
        print(f"error: {redact_text(str(user_error))}", file=sys.stderr)
        sys.exit(2)
    # Sweepers read the objective from the job's return value.
    return result if multirun else result["value"]


if __name__ == "__main__":
    from ftlab.config.resolvers import add_default_output_dirs

    add_default_output_dirs(sys.argv)
    try:
        main()
    finally:
        # The interpreter's exit runs one last full collection over every object (1.3 s after a
        # digits run, all of it live until the end anyway): frozen objects are skipped.
        gc.freeze()
