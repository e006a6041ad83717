"""The job's side of a sweep: find its trial through the storage, report the monitored metric
every validation, and stop early when the pruner says so."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L

from ftlab.names import MLFLOW_RUN_ATTR, PRUNED_AT, STORAGE_VARIABLE, TRIAL_KEY

__all__ = ["TrialPruning", "record_trial_run"]


class TrialPruning(L.Callback):
    """Reports `monitor` to the trial after each validation; on a prune verdict every rank stops.

    The trial is loaded lazily on rank 0 from the storage, so the callback pickles cleanly into
    spawned DDP workers."""

    def __init__(self, study: str, storage: str, trial_id: int, monitor: str) -> None:
        self.study, self.storage, self.trial_id, self.monitor = study, storage, trial_id, monitor
        self.pruned_at_epoch: int | None = None
        self._trial: Any = None

    @classmethod
    def from_link(cls, link: Any, monitor: Any) -> TrialPruning:
        """From the `optuna_trial` block the sweeper put into the job's config (the storage URL
        comes from the environment the sweeper set)."""
        import os

        storage = link.get("storage") or os.environ.get(STORAGE_VARIABLE)
        if not storage:
            from ftlab.errors import FtlabError

            raise FtlabError(
                f"{TRIAL_KEY}: this job belongs to a sweep, but {STORAGE_VARIABLE} (the study's "
                "storage) is not set; run it through the sweeper"
            )
        return cls(str(link.study), str(storage), int(link.trial_id), str(monitor))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_trial": None}

    def _load_trial(self) -> Any:
        if self._trial is None:
            import warnings

            import optuna

            from ftlab.sweep.algorithms import PRUNER_ATTR, build_pruner
            from ftlab.sweep.storage import make_storage

            warnings.filterwarnings("ignore", message=".*Heartbeat of storage is supposed.*")
            study = optuna.load_study(study_name=self.study, storage=make_storage(self.storage))
            # A loaded study has Optuna's default pruner: use the one the sweep was configured with.
            study.pruner = build_pruner(study.user_attrs.get(PRUNER_ATTR, {}))
            self._trial = optuna.trial.Trial(study, self.trial_id)
        return self._trial

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        prune = False
        if trainer.is_global_zero:
            trial = self._load_trial()
            trial.report(float(trainer.callback_metrics[self.monitor]), step=trainer.current_epoch)
            prune = trial.should_prune()
        if trainer.strategy.broadcast(prune):
            self.pruned_at_epoch = trainer.current_epoch
            trainer.should_stop = True
            if trainer.is_global_zero:
                # Recorded in the storage too: a spawned rank's callback state never reaches the
                # process that launched it.
                self._load_trial().set_user_attr(PRUNED_AT, self.pruned_at_epoch)

    def pruned_epoch(self) -> int | None:
        """The epoch this trial was pruned at, or None; asks the storage when this process did
        not train (DDP spawn)."""
        if self.pruned_at_epoch is not None:
            return self.pruned_at_epoch
        return self._load_trial().user_attrs.get(PRUNED_AT)


def record_trial_run(link: Any, run_id: str) -> None:
    """Put the job's MLflow run id on its trial (user attr `mlflow_run_id`), so a point in
    optuna-dashboard leads to the run in the MLflow UI."""
    import os
    import warnings

    from ftlab.sweep.storage import make_storage

    storage_url = link.get("storage") or os.environ.get(STORAGE_VARIABLE)
    if not storage_url:
        return
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage is supposed.*")
    make_storage(str(storage_url)).set_trial_user_attr(int(link.trial_id), MLFLOW_RUN_ATTR, run_id)
