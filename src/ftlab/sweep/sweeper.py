"""ftlab's Hydra sweeper on Optuna 5: ask a trial, launch its job through Hydra's launcher, tell
the result. The job reaches its trial through the storage (not memory), so pruning works with
any launcher and several worker processes can share one study.

Selected with `hydra/sweeper=ftlab_optuna` (the `hparams_search/*` presets do it). Any Hydra task
function returning a number (or one number per objective) can be swept; ftlab's own `train` also
gets pruning, an MLflow parent run and a retrain command.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import optuna
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.trial import TrialState

from ftlab.errors import FtlabError
from ftlab.names import STORAGE_VARIABLE
from ftlab.redact import redact_text, redact_yaml_files
from ftlab.stopping import STOP
from ftlab.sweep import TRIAL_KEY, report
from ftlab.sweep.algorithms import PRUNER_ATTR, build_sampler, grid_size
from ftlab.sweep.job_configs import JobConfigLoader
from ftlab.sweep.outcome import Outcome, judge
from ftlab.sweep.plan import SweepPlan, make_plan
from ftlab.sweep.space import as_override
from ftlab.sweep.storage import study_lock
from ftlab.sweep.study import open_study

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
INTERRUPTED = "interrupted"  # user attr of trials stopped by Ctrl-C: they do not count
HEARTBEAT_WARNING = ".*Heartbeat of storage is supposed to be used with Study.optimize.*"


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        n_trials: int = 20,
        direction: Any = None,
        study_name: str | None = None,
        storage: str | None = None,
        n_jobs: int = 1,
        max_failure_rate: float = 0.5,
        sampler: dict[str, Any] | None = None,
        pruner: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        conditional_params: dict[str, dict[str, str]] | None = None,
        custom_search_space: str | None = None,
        continue_changed: bool = False,
        workers: int = 0,
        devices: Any = None,
        heartbeat_s: float = 30,
        grace_s: float = 90,
    ) -> None:
        super().__init__()
        self.n_trials, self.direction, self.study_name = int(n_trials), direction, study_name
        self.storage_url, self.n_jobs = storage, max(1, int(n_jobs))
        self.max_failure_rate = float(max_failure_rate)
        self.sampler_settings = dict(sampler or {})
        self.pruner_settings = dict(pruner or {})
        self.params = dict(params or {})
        self.conditional_params = {k: dict(v) for k, v in (conditional_params or {}).items()}
        self.custom_search_space = custom_search_space
        self.continue_changed = bool(continue_changed)
        self.workers, self.devices = int(workers), devices
        self.heartbeat_s, self.grace_s = float(heartbeat_s), float(grace_s)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None
        self._exhausted = False  # the sampler has nothing left to propose (grid)
        self._extend_space: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        # Trials compose through a loader that reuses each job shape's composition.
        hydra_context = HydraContext(
            JobConfigLoader(hydra_context.config_loader), hydra_context.callbacks
        )
        self.config, self.hydra_context = config, hydra_context
        self.task_function = task_function
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ------------------------------------------------------------ the sweep
    def sweep(self, arguments: list[str]) -> Any:
        _quiet_optuna()
        # SIGTERM (a scheduler, `kill`) stops a sweep as Ctrl-C does: trials in flight marked
        # interrupted, workers stopped, the parent run KILLED. Python's default would end the
        # process with none of that, the parent run and the trials left RUNNING.
        STOP.install()
        try:
            return self._sweep(arguments)
        except FtlabError as err:
            self._discard_empty_sweep_dir()
            print(f"error: {redact_text(str(err))}", file=sys.stderr)
            sys.exit(2)
        finally:
            STOP.uninstall()

    def _sweep(self, arguments: list[str]) -> list[Any]:
        assert self.config is not None
        plan = make_plan(self, self.config, arguments)
        os.environ[STORAGE_VARIABLE] = plan.storage_url  # jobs find it here, never in a param
        pool = self._start_workers(plan.is_ftlab_app) if self.workers > 0 else None
        try:
            return self._sweep_plan(plan, pool)
        finally:
            if pool is not None:
                pool.close()

    def _sweep_plan(self, plan: SweepPlan, pool: Any) -> list[Any]:
        self._check_job_config(plan, pool)  # bad input fails before a study or a parent run exists
        if self.custom_search_space:
            from hydra.utils import get_method

            self._extend_space = get_method(self.custom_search_space)
        size = grid_size(self.sampler_settings, plan.space)
        n_trials = min(self.n_trials, size) if size else self.n_trials
        study, storage = open_study(
            plan.storage_url, plan.study_name, plan.directions, plan.study_settings(),
            self.continue_changed, self.heartbeat_s, self.grace_s,
        )  # fmt: skip
        study.set_metric_names(plan.objectives)
        study.set_user_attr(PRUNER_ATTR, self.pruner_settings)  # jobs prune with the same rule
        parent = self._parent_run(study, plan)
        sweep_dir = self._sweep_dir()
        print(
            f"Study '{study.study_name}' in {redact_text(plan.storage_url)}: "
            f"{len(study.trials)} trials so far, target {n_trials}"
            + (f"; parent run {parent.run_id} ({parent.link})" if parent else ""),
            flush=True,
        )
        results: list[Any] = []
        status = "FAILED"
        try:
            if pool is not None:
                results = self._run_async(pool, study, storage, plan, parent, n_trials)
            while (
                self.workers == 0
                and not self._exhausted
                and (batch := self._ask(study, plan, n_trials, self.n_jobs, parent))
            ):
                results.append(self._run_batch(study, storage, batch, plan, parent, n_trials))
                self._check_failure_rate(study)
            status = "FINISHED"
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C reaches here as Lightning's sys.exit(1)
            status = "KILLED"
            raise
        finally:
            self._finish(study, plan, sweep_dir, parent, status, ran=bool(results))
        return results

    def _sweep_dir(self) -> Path:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        redact_yaml_files(sweep_dir / "multirun.yaml")
        return sweep_dir

    def _check_job_config(self, plan: SweepPlan, pool: Any) -> None:
        """Compose the config a trial would get (without its sampled values) and check it as
        `ftlab train` would, in a worker when there are workers (the check imports torch and
        Lightning, which this process does not need); apps that are not ftlab's are left to
        themselves."""
        if self.hydra_context is None or not plan.is_ftlab_app:
            return
        from ftlab.config.checks import RELAUNCH_MESSAGE, relaunches_script

        if relaunches_script(self.config.trainer.strategy):
            raise FtlabError(RELAUNCH_MESSAGE)
        job = self.hydra_context.config_loader.load_sweep_config(self.config, list(plan.fixed))
        with open_dict(job):
            job.pop("hydra", None)
            job.paths.output_dir = "."  # a trial's folder does not exist yet
        if pool is not None:
            pool.call(check_trial_config, job)
        else:
            check_trial_config(job)

    def _discard_empty_sweep_dir(self) -> None:
        """A sweep refused before its first trial leaves no folder behind."""
        try:
            folder = Path(self.config.hydra.sweep.dir)
        except Exception:  # noqa: BLE001 - no sweep folder configured
            return
        for path in (folder, folder.parent, folder.parent.parent):
            if path.name and path.is_dir() and not any(path.iterdir()):
                path.rmdir()

    # ------------------------------------------------------------ ask, launch, tell
    def _ask(
        self, study: optuna.Study, plan: SweepPlan, n_trials: int, limit: int, parent: Any
    ) -> list[tuple[Any, dict]]:
        """The next trials (at most `limit`), counted and asked under the study lock so workers
        sharing the study run exactly `n_trials` between them. Trials of dead workers are failed
        first (their heartbeat stopped) and come back as waiting retries, asked before new ones."""
        asked, batch = [], []  # asked: every trial ask() opened, also one a stop cut short
        try:
            with study_lock(plan.storage_url):
                optuna.storages.fail_stale_trials(study)
                trials = study.get_trials(deepcopy=False)
                waiting = sum(t.state == TrialState.WAITING for t in trials)
                room = max(0, n_trials - counted_trials(trials)) + waiting
                for index in range(min(limit, room)):
                    study.sampler = build_sampler(
                        self.sampler_settings, len(trials) + index, plan.space
                    )
                    trial = study.ask()
                    asked.append(trial)
                    sampled = plan.space.sample(trial)
                    if self._extend_space is not None:
                        self._extend_space(self.config, trial)
                        sampled.update({k: v for k, v in trial.params.items() if k not in sampled})
                    batch.append((trial, sampled))
            if parent is not None:
                parent.close_orphans(study)
        except BaseException as stop:  # an asked trial has no heartbeat yet: end it here
            self._interrupted(study, asked, announce=not isinstance(stop, Exception))
            raise
        return batch

    def _job_overrides(
        self, study: optuna.Study, trial: Any, sampled: dict, plan: SweepPlan, parent: Any
    ) -> list[str]:
        overrides = [*plan.fixed, *[as_override(k, v) for k, v in sampled.items()]]
        if plan.is_ftlab_app:  # the job's link to its trial, for pruning and tracking
            overrides += [
                f"+{TRIAL_KEY}.study={as_override('', study.study_name)[1:]}",
                f"+{TRIAL_KEY}.trial_id={trial._trial_id}",
                f"+{TRIAL_KEY}.number={trial.number}",
            ]
            if parent is not None:
                overrides.append(f"+{TRIAL_KEY}.parent_run_id={parent.run_id}")
        return overrides

    def _run_batch(self, study, storage, batch, plan, parent, n_trials) -> Any:
        try:
            jobs = [self._job_overrides(study, t, s, plan, parent) for t, s in batch]
            self._validate_new_shapes(jobs)
            with TrialHeartbeats(storage, [trial._trial_id for trial, _ in batch]):
                returns = self.launcher.launch(jobs, initial_job_idx=batch[0][0].number)
        except BaseException as stop:  # Ctrl-C, SIGTERM, or a job that cannot be composed
            trials = [trial for trial, _ in batch]
            self._interrupted(study, trials, announce=not isinstance(stop, Exception))
            raise
        for (trial, sampled), job in zip(batch, returns, strict=True):
            self._finished(
                study, trial, sampled, judge(job, len(plan.directions)), n_trials, parent
            )
        return returns

    def _start_workers(self, warm_up: bool) -> Any:
        from hydra.core.singleton import Singleton

        from ftlab.sweep.workers import WorkerPool

        job = {
            "hydra_context": self.hydra_context, "task_function": self.task_function,
            "config": self.config, "singleton_state": Singleton.get_state(),
        }  # fmt: skip
        return WorkerPool(self.workers, self.devices, job, warm_up)

    def _validate_new_shapes(self, jobs: list[list[str]]) -> None:
        """Hydra composes every job before launching it (the launcher may run elsewhere, where a
        bad override would fail late); a job shaped like one already composed, with the same
        config choices and only its numbers changed, is known to compose."""
        loader = self.hydra_context.config_loader
        new = [job for job in jobs if not loader.has_composed(self.config, job)]
        if new:
            self.validate_batch_is_legal(new)

    def _run_async(self, pool, study, storage, plan, parent, n_trials) -> list[Any]:
        """`workers` processes, each given the next trial as soon as its last one ends."""
        from concurrent.futures import FIRST_COMPLETED, wait

        running, results = {}, []
        beats = TrialHeartbeats(storage, [])
        try:
            with beats:
                while True:
                    while (worker := pool.free_worker()) is not None and not self._exhausted:
                        asked = self._ask(study, plan, n_trials, 1, parent)
                        if not asked:
                            break
                        trial, sampled = asked[0]
                        try:  # until it is in `running`, only this trial knows of it
                            overrides = self._job_overrides(study, trial, sampled, plan, parent)
                            future = pool.submit(worker, trial.number, overrides)
                        except BaseException:
                            self._interrupted(study, [trial], announce=False)
                            raise
                        running[future] = (trial, sampled)
                        beats.add(trial._trial_id)
                    if not running:
                        break
                    done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    for future in done:
                        trial, sampled = running.pop(future)
                        pool.release(future)
                        beats.remove(trial._trial_id)
                        outcome = _outcome(future, len(plan.directions))
                        self._finished(study, trial, sampled, outcome, n_trials, parent)
                        results.append(outcome)
                    self._check_failure_rate(study)
        except BaseException as stop:  # Ctrl-C, or a sweep failing while trials still run
            pool.close()
            trials = [trial for trial, _ in running.values()]
            self._interrupted(study, trials, announce=not isinstance(stop, Exception))
            raise
        return results

    def _interrupted(self, study: optuna.Study, trials: list[Any], announce: bool = True) -> None:
        for trial in trials:  # interrupted, not failed: a resumed sweep does not count them
            trial.set_user_attr(INTERRUPTED, True)
            study.tell(trial, state=TrialState.FAIL)
        if announce:
            print(
                f"Interrupted: rerun the same command to resume study '{study.study_name}'.",
                flush=True,
            )

    def _finished(
        self, study, trial, sampled, outcome: Outcome, n_trials: int, parent: Any
    ) -> None:
        self._tell(study, trial, outcome)
        done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
        print(report.trial_line(done, n_trials, trial, outcome, study, sampled), flush=True)
        if parent is not None:
            parent.trial_finished(study, trial, outcome.state)

    def _tell(self, study: optuna.Study, trial: Any, outcome: Outcome) -> None:
        if outcome.error:
            trial.set_user_attr("error", outcome.error)
        try:
            if outcome.state == "COMPLETE":
                study.tell(trial, outcome.values)
            else:
                study.tell(trial, state=TrialState[outcome.state])
        except RuntimeError as err:
            # The grid sampler calls study.stop() once the grid is exhausted, which only works
            # inside study.optimize; the trial is recorded all the same.
            if "Study.stop" not in str(err):
                raise
            self._exhausted = True

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
    def _parent_run(self, study: optuna.Study, plan: SweepPlan) -> Any:
        if not plan.is_ftlab_app or not self.config.logger.get("enabled"):
            return None
        import json

        from ftlab.sweep.parent_run import ParentRun

        settings = {
            "study_name": study.study_name,
            "storage": redact_text(plan.storage_url),
            "direction": ",".join(plan.directions),
            "n_trials": self.n_trials,
            "optimized_metric": ",".join(plan.objectives),
            "sampler": json.dumps(self.sampler_settings, sort_keys=True),
            "pruner": json.dumps(self.pruner_settings, sort_keys=True),
            **{f"space.{k}": v for k, v in plan.space.describe().items()},
        }
        return ParentRun.open(self.config, study.study_name, settings)

    def _finish(self, study, plan, sweep_dir: Path, parent: Any, status: str, ran: bool) -> None:
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        files = [report.trials_table(study, sweep_dir / "trials.csv")]
        if complete:
            files += report.summarize_best(study, plan, sweep_dir, self._retrain_overrides(plan))
        elif status == "FINISHED" and ran:
            status = "FAILED"
        if parent is not None:
            import tempfile

            with tempfile.TemporaryDirectory() as scratch:
                files += report.write_plots(study, Path(scratch) / "plots")
                parent.finish(files, status)
            print(f"Sweep parent run {parent.run_id}: {parent.link}", flush=True)
        if status == "FAILED" and ran and not complete:
            errors = [t.user_attrs.get("error") for t in trials if t.user_attrs.get("error")]
            raise FtlabError(
                f"every trial of study '{study.study_name}' failed; last error: "
                f"{errors[-1] if errors else 'none recorded'}"
            )

    def _retrain_overrides(self, plan: SweepPlan) -> list[str] | None:
        if not plan.is_ftlab_app:
            return None
        return [o for o in plan.fixed if not o.startswith(("hparams_search=", "hydra.", "hydra/"))]


def check_trial_config(job: DictConfig) -> None:
    """`ftlab train`'s checks on a trial's config, in whichever process runs them. They read the
    targets' signatures, so this is where the process first imports torch and Lightning."""
    from ftlab.allocator import opted_out
    from ftlab.collector import collector_paused, import_for_trials
    from ftlab.config.checks import check_config
    from ftlab.config.setup import prepare_hydra

    opted_out()  # a misspelt FTLAB_MALLOC would fail every trial
    prepare_hydra()  # the resolvers the config uses, in a fresh worker too
    import_for_trials()
    with collector_paused():
        check_config(job)


def counted_trials(trials: list[Any]) -> int:
    """Trials that count toward `n_trials`: not waiting, not interrupted by Ctrl-C, and not a
    dead worker's trial that a retry replaced."""
    from optuna.storages import RetryFailedTrialCallback

    retried = {RetryFailedTrialCallback.retried_trial_number(t) for t in trials} - {None}
    return sum(
        t.state != TrialState.WAITING
        and not t.user_attrs.get(INTERRUPTED)
        and t.number not in retried
        for t in trials
    )


def _outcome(future: Any, objectives: int) -> Outcome:
    try:
        return judge(future.result(), objectives)
    except Exception as err:  # noqa: BLE001 - a worker process that died takes its trial with it
        return Outcome("FAIL", error=f"{type(err).__name__}: {err}"[:500])


class TrialHeartbeats:
    """Keeps the heartbeats of running trials fresh from a thread: a worker that dies stops
    beating, and the next worker to ask fails its trials (and retries them)."""

    def __init__(self, storage: Any, trial_ids: list[int]) -> None:
        self.storage, self.trial_ids = storage, set(trial_ids)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial_id: int) -> None:
        self.trial_ids.add(trial_id)
        if self._beating():
            self.storage.record_heartbeat(trial_id)

    def remove(self, trial_id: int) -> None:
        self.trial_ids.discard(trial_id)

    def _beating(self) -> bool:
        return (
            isinstance(self.storage, optuna.storages.RDBStorage)
            and self.storage.get_heartbeat_interval() is not None
        )

    def __enter__(self) -> TrialHeartbeats:
        if self._beating():
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        while True:
            for trial_id in list(self.trial_ids):
                self.storage.record_heartbeat(trial_id)
            if self._stop.wait(self.storage.get_heartbeat_interval()):
                return


class _HideTrialLink(logging.Filter):
    """Hydra's launchers log every job's overrides; the trial link is ftlab's plumbing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if TRIAL_KEY in str(record.msg):
            record.msg = " ".join(
                part for part in str(record.getMessage()).split(" ") if TRIAL_KEY not in part
            )
            record.args = ()
        return True


def _quiet_optuna() -> None:
    """ftlab owns the ask/tell loop: Optuna's notes about it are noise (and errors under -W error)."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=HEARTBEAT_WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("hydra._internal.core_plugins.basic_launcher", "hydra_plugins"):
        logging.getLogger(name).addFilter(_HideTrialLink())
