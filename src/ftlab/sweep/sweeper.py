"""ftlab's Hydra sweeper on Optuna 5: ask a trial, launch its job through Hydra's launcher, tell
the result. The job reaches its trial through the storage (not memory), so pruning works with
any launcher and several worker processes can share one study.

Selected with `hydra/sweeper=ftlab_optuna` (the `hparams_search/*` presets do it).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from ftlab.builders import RELAUNCH_MESSAGE, relaunches_script
from ftlab.errors import FtlabError
from ftlab.filelock import exclusive
from ftlab.sweep import report
from ftlab.sweep.algorithms import PRUNER_ATTR, build_pruner, build_sampler
from ftlab.sweep.space import SearchSpace, as_override, parse_space
from ftlab.sweep.storage import default_storage_url, lock_path, make_storage
from ftlab.sweep.trial_link import TRIAL_KEY

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
INTERRUPTED = (
    "interrupted"  # user attr of trials stopped by Ctrl-C: they do not count toward n_trials
)


@contextlib.contextmanager
def _heartbeats(storage: Any, trial_ids: list[int]) -> Iterator[None]:
    """Keep the trials' heartbeats fresh while their jobs run: a worker that dies stops beating
    and its trials are failed (and retried) by the next worker that starts."""
    if (
        not isinstance(storage, optuna.storages.RDBStorage)
        or storage.get_heartbeat_interval() is None
    ):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            for trial_id in trial_ids:
                storage.record_heartbeat(trial_id)
            if stop.wait(storage.get_heartbeat_interval()):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        n_trials: int = 20,
        direction: str | None = None,
        study_name: str | None = None,
        storage: str | None = None,
        n_jobs: int = 1,
        max_failure_rate: float = 0.5,
        sampler: dict[str, Any] | None = None,
        pruner: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        conditional_params: dict[str, dict[str, str]] | None = None,
    ) -> None:
        super().__init__()
        self.n_trials, self.direction, self.study_name = n_trials, direction, study_name
        self.storage_url, self.n_jobs, self.max_failure_rate = (
            storage,
            max(1, n_jobs),
            max_failure_rate,
        )
        self.sampler_settings = dict(sampler or {})
        self.pruner_settings = dict(pruner or {})
        self.params = dict(params or {})
        self.conditional_params = {k: dict(v) for k, v in (conditional_params or {}).items()}
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None
        self._exhausted = False  # the sampler has nothing left to propose (grid)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ------------------------------------------------------------ the sweep
    def sweep(self, arguments: list[str]) -> Any:
        try:
            return self._sweep(arguments)
        except FtlabError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    def _sweep(self, arguments: list[str]) -> list[Any]:
        assert self.config is not None
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        if relaunches_script(self.config.trainer.strategy):
            raise FtlabError(RELAUNCH_MESSAGE)
        fixed, swept = self._split_arguments(arguments)
        space = parse_space({**self.params, **swept}, self.conditional_params)
        if not space.params:
            raise FtlabError(
                "hydra.sweeper.params is empty: give a search space (e.g. hparams_search=lr_optimizer)"
            )
        url = str(self.storage_url or default_storage_url())
        with exclusive(lock_path(url)):  # the first of several workers creates the tables alone
            storage = make_storage(url)
        name = self.study_name or self._default_study_name()
        direction = self.direction or (
            "maximize" if self.config.monitor.mode == "max" else "minimize"
        )
        study = optuna.create_study(
            study_name=name, storage=storage, direction=direction, load_if_exists=True
        )
        optuna.storages.fail_stale_trials(study)
        study.sampler = build_sampler(
            self.sampler_settings, seed_offset=len(study.trials), space=space
        )
        study.pruner = build_pruner(self.pruner_settings)
        study.set_user_attr(PRUNER_ATTR, self.pruner_settings)  # jobs prune with the same rule
        parent = self._parent_run(study, space, url, direction)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        print(f"Study '{name}' in {url}: {len(study.trials)} trials so far, target {self.n_trials}")

        results: list[Any] = []
        status = "FINISHED"
        try:
            while not self._exhausted and (batch := self._ask(study, url, space)):
                results.append(self._run_batch(study, storage, batch, fixed, url, parent))
                self._check_failure_rate(study)
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C reaches here as Lightning's sys.exit(1)
            status = "KILLED"
            raise
        except BaseException:
            status = "FAILED"
            raise
        finally:
            self._finish(study, fixed, sweep_dir, parent, status)
        return results

    def _split_arguments(self, arguments: list[str]) -> tuple[list[str], dict[str, str]]:
        """Command-line sweeps (`optimizer.lr=interval(...)`) join the space; the rest is fixed."""
        parser = OverridesParser.create(
            config_loader=self.hydra_context.config_loader if self.hydra_context else None
        )
        fixed, swept = [], {}
        for argument, override in zip(arguments, parser.parse_overrides(arguments), strict=True):
            if override.is_sweep_override():
                swept[override.get_key_element()] = argument.split("=", 1)[1]
            else:
                fixed.append(argument)
        return fixed, swept

    def _default_study_name(self) -> str:
        choices = self.config.hydra.runtime.choices
        preset = choices.get("hparams_search") or "sweep"
        return f"{preset}-{self.config.experiment_name}"

    def _ask(
        self, study: optuna.Study, url: str, space: SearchSpace
    ) -> list[tuple[Any, dict[str, Any]]]:
        with exclusive(lock_path(url)):
            started = sum(
                not t.user_attrs.get(INTERRUPTED) for t in study.get_trials(deepcopy=False)
            )
            count = min(self.n_jobs, self.n_trials - started)
            batch = []
            for _ in range(max(0, count)):
                trial = study.ask()
                batch.append((trial, space.sample(trial)))
            return batch

    def _run_batch(self, study, storage, batch, fixed, url, parent) -> Any:
        jobs = []
        for trial, sampled in batch:
            link = [
                f"+{TRIAL_KEY}.study={study.study_name}",
                f"+{TRIAL_KEY}.storage='{url}'",
                f"+{TRIAL_KEY}.trial_id={trial._trial_id}",
                f"+{TRIAL_KEY}.number={trial.number}",
            ]
            if parent is not None:
                link.append(f"+{TRIAL_KEY}.parent_run_id={parent.run_id}")
            jobs.append([*fixed, *[as_override(k, v) for k, v in sampled.items()], *link])
        self.validate_batch_is_legal(jobs)
        try:
            with _heartbeats(storage, [trial._trial_id for trial, _ in batch]):
                returns = self.launcher.launch(jobs, initial_job_idx=batch[0][0].number)
        except (KeyboardInterrupt, SystemExit):
            for trial, _ in batch:  # interrupted, not failed: a resumed sweep does not count them
                trial.set_user_attr(INTERRUPTED, True)
                study.tell(trial, state=TrialState.FAIL)
            print(
                f"Interrupted: rerun the same command to resume study '{study.study_name}'.",
                flush=True,
            )
            raise
        for (trial, sampled), job in zip(batch, returns, strict=True):
            state, value = self._tell(study, trial, job)
            best = (
                study.best_value
                if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
                else None
            )
            done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
            print(
                report.trial_line(done, self.n_trials, trial, state, value, best, sampled),
                flush=True,
            )
            if parent is not None:
                parent.trial_finished(study, trial, state)
        return returns

    def _tell(self, study: optuna.Study, trial: Any, job: Any) -> tuple[str, float | None]:
        state, value = self._judge(trial, job)
        try:
            if state == "COMPLETE":
                study.tell(trial, value)
            else:
                study.tell(trial, state=TrialState[state])
        except RuntimeError as err:
            # The grid sampler calls study.stop() once the grid is exhausted, which only works
            # inside study.optimize; the trial is recorded all the same.
            if "Study.stop" not in str(err):
                raise
            self._exhausted = True
        return state, value

    def _judge(self, trial: Any, job: Any) -> tuple[str, float | None]:
        """COMPLETE with the value, PRUNED, or FAIL (job raised, or the value is NaN/inf)."""
        if job.status != JobStatus.COMPLETED:
            error = job._return_value
            trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:500])
            return "FAIL", None
        result = job.return_value or {}
        value = result.get("value") if isinstance(result, dict) else result
        if isinstance(result, dict) and result.get("pruned_at_epoch") is not None:
            return "PRUNED", value
        if value is None or not math.isfinite(float(value)):
            trial.set_user_attr("error", f"objective is {value}")
            return "FAIL", None
        return "COMPLETE", float(value)

    def _check_failure_rate(self, study: optuna.Study) -> None:
        finished = [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED]
        failed = [t for t in finished if t.state == TrialState.FAIL]
        if len(finished) >= 3 and len(failed) / len(finished) > self.max_failure_rate:
            last = failed[-1].user_attrs.get("error", "")
            raise FtlabError(
                f"{len(failed)} of {len(finished)} trials failed, over hydra.sweeper.max_failure_rate="
                f"{self.max_failure_rate}; last error: {last}"
            )

    # ------------------------------------------------------------ tracking and the end
    def _parent_run(self, study: optuna.Study, space: SearchSpace, url: str, direction: str) -> Any:
        if not self.config.logger.get("enabled"):
            return None
        from ftlab.sweep.parent_run import ParentRun

        settings = {
            "study_name": study.study_name,
            "storage": url,
            "direction": direction,
            "n_trials": self.n_trials,
            "optimized_metric": str(self.config.optimized_metric),
            "sampler": json.dumps(self.sampler_settings, sort_keys=True),
            "pruner": json.dumps(self.pruner_settings, sort_keys=True),
            **{f"space.{k}": v for k, v in space.describe().items()},
        }
        return ParentRun.open(self.config, study.study_name, settings)

    def _finish(self, study, fixed, sweep_dir: Path, parent: Any, status: str) -> None:
        complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        files = [report.trials_table(study, sweep_dir / "trials.csv")]
        if complete:
            report.print_top_trials(study)
            best = study.best_trial
            best_overrides = [as_override(k, v) for k, v in best.params.items()]
            best_yaml = sweep_dir / "best_config.yaml"
            best_yaml.write_text(
                OmegaConf.to_yaml(
                    {"value": best.value, "trial": best.number, "overrides": best_overrides}
                )
            )
            files.append(best_yaml)
            print(f"Best: trial {best.number}, value {best.value:.5g}; saved {best_yaml}")
            retrain = [
                o
                for o in fixed
                if not o.startswith(("hparams_search=", "hydra.sweeper.", "hydra/sweeper="))
            ]
            print(f"Retrain it: {report.retrain_command(retrain, best_overrides)}")
        if parent is not None:
            with tempfile.TemporaryDirectory() as scratch:
                files += report.write_plots(study, Path(scratch) / "plots")
                parent.finish(files, status)
