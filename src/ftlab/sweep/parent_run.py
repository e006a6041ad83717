"""The MLflow parent run of a study: one per study, found again on resume. It holds the search
space and settings, the best value so far, and at the end the plots and the trials table; each
trial's run is its child."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig

from ftlab.names import (
    TAG_BEST_TRIAL,
    TAG_STUDY,
    TAG_SWEEP_PARENT,
    TAG_TRIAL_NUMBER,
    TAG_TRIAL_STATE,
)
from ftlab.tracking.calls import ensure_experiment
from ftlab.tracking.store import prepare_local_store, resolve_tracking_uri
from ftlab.tracking.ui import ui_runs_link


class ParentRun:
    def __init__(self, client: Any, run_id: str, experiment_id: str = "") -> None:
        self.client, self.run_id, self.experiment_id = client, run_id, experiment_id
        self._closed: set[int] = set()  # trial numbers whose orphaned runs were closed

    @property
    def link(self) -> str:
        """Where to see the trials side by side (the MLflow UI's runs table, `ftlab ui`)."""
        return ui_runs_link(self.experiment_id)

    @classmethod
    def open(cls, config: DictConfig, study_name: str, settings: dict[str, Any]) -> ParentRun:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = resolve_tracking_uri(config.logger.get("tracking_uri"), config.paths.root_dir)
        prepare_local_store(uri)
        client = MlflowClient(uri)
        experiment_id = ensure_experiment(client, uri, str(config.experiment_name))
        query = f"tags.`{TAG_STUDY}` = '{study_name}' and tags.`{TAG_SWEEP_PARENT}` = 'true'"
        existing = client.search_runs([experiment_id], filter_string=query, max_results=1)
        if existing:
            run_id = existing[0].info.run_id
            client.update_run(run_id, status="RUNNING")  # the same parent again on resume
            return cls(client, run_id, experiment_id)
        tags = {
            TAG_STUDY: study_name,
            TAG_SWEEP_PARENT: "true",
            "mlflow.note.content": f"Optuna study {study_name}",
        }
        run = client.create_run(experiment_id, run_name=f"sweep-{study_name}", tags=tags)
        params = [Param(k, str(v)[:6000]) for k, v in settings.items()]
        for start in range(0, len(params), 100):
            client.log_batch(run.info.run_id, params=params[start : start + 100])
        return cls(client, run.info.run_id, experiment_id)

    def trial_finished(self, study: optuna.Study, trial: Any, state: str) -> None:
        from mlflow.entities import Metric, RunTag

        trials = study.get_trials(deepcopy=False)
        counts = {
            s.name.lower(): sum(t.state == s for t in trials)
            for s in (
                optuna.trial.TrialState.COMPLETE,
                optuna.trial.TrialState.PRUNED,
                optuna.trial.TrialState.FAIL,
            )
        }
        metrics = [Metric(f"trials/{k}", v, 0, trial.number) for k, v in counts.items()]
        tags = []
        if len(study.directions) > 1:
            front = study.best_trials
            self.client.log_dict(
                self.run_id,
                {
                    "trials": [
                        {"trial": t.number, "values": t.values, "params": t.params} for t in front
                    ]
                },
                "best_trials.json",
            )
            metrics.append(Metric("pareto_size", len(front), 0, trial.number))
        elif any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
            best = study.best_trial
            metrics.append(Metric("best_value", best.value, 0, trial.number))
            tags.append(RunTag(TAG_BEST_TRIAL, str(best.number)))
            self.client.log_dict(
                self.run_id,
                {"trial": best.number, "value": best.value, "params": best.params},
                "best_params.json",
            )
        self.client.log_batch(self.run_id, metrics=metrics, tags=tags)
        if state == "FAIL":
            self._tag_failed_child(trial)

    def close_orphans(self, study: optuna.Study) -> None:
        """Trials failed because their worker died (no heartbeat): their MLflow runs, which
        nobody could close, end FAILED instead of staying RUNNING forever."""
        failed = {
            t.number for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.FAIL and t.number not in self._closed
        }  # fmt: skip
        if not failed:
            return
        query = f"tags.`mlflow.parentRunId` = '{self.run_id}' and attributes.status = 'RUNNING'"
        for child in self.client.search_runs([self.experiment_id], filter_string=query):
            number = child.data.tags.get(TAG_TRIAL_NUMBER)
            if number is not None and int(number) in failed:
                self.client.set_tag(child.info.run_id, TAG_TRIAL_STATE, "FAIL")
                self.client.set_terminated(child.info.run_id, status="FAILED")
        self._closed |= failed

    def _tag_failed_child(self, trial: Any) -> None:
        """A job that crashed could not tag its own run; the parent marks it."""
        run = self.client.get_run(self.run_id)
        query = f"tags.`mlflow.parentRunId` = '{self.run_id}' and tags.`{TAG_TRIAL_NUMBER}` = '{trial.number}'"
        for child in self.client.search_runs([run.info.experiment_id], filter_string=query):
            self.client.set_tag(child.info.run_id, TAG_TRIAL_STATE, "FAIL")

    def finish(self, files: list[Path], status: str) -> None:
        for path in files:
            self.client.log_artifact(self.run_id, str(path), "sweep")
        self.client.set_terminated(self.run_id, status=status)
