"""Sweeps as a team runs them: several workers on one study (SQLite and a real PostgreSQL), the
asynchronous worker pool, Hydra's joblib and submitit launchers, a worker killed mid-trial, the
storage password kept out of everything, optuna-dashboard on the study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import FTLAB, TINY_DIGITS, all_runs, cli_env, free_port, local_store

APP = Path(__file__).parent / "apps" / "quadratic.py"
CONTINUOUS = ["x=interval(0, 4)", "y=interval(-2, 2)", "hydra.sweeper.sampler.name=tpe"]
DIGITS_SWEEP = ["hparams_search=lr_optimizer", "experiment=digits_scratch", *TINY_DIGITS]


def app(*args: str, env: dict | None = None) -> list[str]:
    return [sys.executable, str(APP), "-m", *args]


def start(command: list[str], workdir: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=workdir, env=env or cli_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def finish(processes: list[subprocess.Popen], timeout: float = 900) -> list[str]:
    outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    assert all(p.returncode == 0 for p in processes), "\n----\n".join(o[-2500:] for o in outputs)
    return outputs


def points(study: optuna.Study) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in study.trials]


@pytest.mark.parametrize("backend, workers", [("sqlite", 2), ("postgres", 4)])
def test_workers_started_together_share_a_study_with_distinct_points(
    backend: str, workers: int, workdir: Path, request
) -> None:
    """All workers seeded alike start at the same instant on an empty database: exactly
    n_trials between them, no point proposed twice, the tables created once."""
    storage = (
        request.getfixturevalue("postgres")() if backend == "postgres"
        else f"sqlite:///{workdir / 'study.db'}"
    )  # fmt: skip
    args = [*CONTINUOUS, "hydra.sweeper.n_trials=12", f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=team"]  # fmt: skip
    runs = [start(app(*args, f"hydra.sweep.dir=w{i}"), workdir) for i in range(workers)]
    outputs = finish(runs)
    study = optuna.load_study(study_name="team", storage=storage)
    assert len(study.trials) == 12 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len(set(points(study))) == 12, "workers proposed the same point"
    assert all(" trial " in out for out in outputs), "a worker ran no trial"
    password = storage.split(":")[2].split("@")[0] if backend == "postgres" else None
    if password:
        assert not any(password in out for out in outputs)


def test_the_worker_pool_keeps_every_worker_busy(workdir: Path) -> None:
    """hydra.sweeper.workers=2: trials of unequal length; each worker takes the next trial at
    once, so the study finishes its count with both workers used."""
    result = subprocess.run(
        app(*CONTINUOUS, "hydra.sweeper.n_trials=6", "hydra.sweeper.workers=2",
            "sleep=choice(0.2, 3.0)"),
        cwd=workdir, env=cli_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    study = optuna.load_study(
        study_name="sweep-quadratic", storage=f"sqlite:///{workdir / 'mlruns' / 'optuna.db'}"
    )
    trials = study.trials
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    # Two trials ran at the same time at some point: their start..end intervals overlap.
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)), spans


SWEEP_IN_THIS_PROCESS = """
import json, runpy, sys
sys.argv = ["ftlab.train", *json.loads(sys.argv[1])]
runpy.run_module("ftlab.train", run_name="__main__", alter_sys=True)
print("LOADED", json.dumps(sorted(m for m in ("torch", "lightning") if m in sys.modules)))
"""


def test_an_ftlab_sweep_on_workers_leaves_torch_to_them(workdir: Path) -> None:
    """With workers the sweep's own process only asks and tells: torch and Lightning load in the
    workers alone (they start importing while the study opens), and the trials still train."""
    args = [*DIGITS_SWEEP, "logger=none", "hydra.sweeper.n_trials=2", "hydra.sweeper.workers=2",
            "hydra.sweeper.study_name=pool"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", SWEEP_IN_THIS_PROCESS, json.dumps(args)],
        cwd=workdir, env=cli_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    loaded = json.loads(result.stdout.split("LOADED", 1)[1])
    assert loaded == [], f"the sweep's process imported {loaded}"
    study = optuna.load_study(
        study_name="pool", storage=f"sqlite:///{workdir / 'mlruns' / 'optuna.db'}"
    )
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


@pytest.mark.parametrize(
    "parallel",
    [
        ["hydra.sweeper.workers=2"],
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"],
    ],
    ids=["worker pool", "joblib launcher"],
)
def test_trials_in_worker_processes_keep_freed_memory(parallel: list[str], workdir: Path) -> None:
    """Worker processes never run `python -m ftlab.train`; each trial still sets the malloc
    setting that `ftlab train` has (ftlab.allocator) and records it with its run."""
    result = subprocess.run(
        [FTLAB, "train", *DIGITS_SWEEP, "hydra.sweeper.n_trials=2", *parallel,
         "logger.system_metrics=false", "logger.log_model=false"],
        cwd=workdir, env=cli_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    children = [r for r in all_runs(local_store(workdir)) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2
    assert {r.data.tags.get("ftlab.malloc") for r in children} == {"keeps freed memory"}


def test_a_bad_trial_config_fails_in_a_worker_before_the_study(workdir: Path) -> None:
    """The job config is checked in the first worker (the check reads the targets' signatures):
    its error still comes back as one line, exit 2, with no study and no sweep folder."""
    result = subprocess.run(
        [FTLAB, "train", *DIGITS_SWEEP, "hydra.sweeper.workers=2", "+data.extra_option=1"],
        cwd=workdir, env=cli_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: data.extra_option is not a setting of data")
    ), result.stderr[-2000:]
    assert not (workdir / "mlruns" / "optuna.db").exists()
    assert not (workdir / "multirun").exists()


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_hydras_launchers_run_the_trials(launcher: str, workdir: Path) -> None:
    extra = (
        ["hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]
        if launcher == "joblib"
        else ["hydra.launcher.timeout_min=10"]
    )
    result = subprocess.run(
        app(*CONTINUOUS, "hydra.sweeper.n_trials=4", f"hydra/launcher={launcher}", *extra),
        cwd=workdir, env=cli_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    study = optuna.load_study(
        study_name="sweep-quadratic", storage=f"sqlite:///{workdir / 'mlruns' / 'optuna.db'}"
    )
    assert len(study.trials) == 4 and all(t.state == TrialState.COMPLETE for t in study.trials)


def test_a_team_sweep_on_postgres_keeps_its_password_and_resumes(postgres, workdir: Path) -> None:
    """Two ftlab workers on PostgreSQL: one MLflow parent, trials link to their runs, and the
    storage password appears nowhere ftlab wrote or printed."""
    storage = postgres()
    password = storage.split(":")[2].split("@")[0]
    args = [*DIGITS_SWEEP, "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage={storage}",
            "logger.system_metrics=false"]  # fmt: skip
    runs = [start([FTLAB, "train", *args, f"hydra.sweep.dir=w{i}"], workdir) for i in range(2)]
    outputs = finish(runs)
    study = optuna.load_study(study_name="lr_optimizer-digits_scratch", storage=storage)
    assert len(study.trials) == 4 and len(set(points(study))) == 4
    runs = all_runs(local_store(workdir))
    parents = [r for r in runs if r.data.tags.get("ftlab.sweep_parent") == "true"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {
        c.info.run_id for c in children
    }
    texts = [*outputs, *(json.dumps(r.data.params) + json.dumps(r.data.tags) for r in runs)]
    texts += [
        p.read_text()
        for p in workdir.rglob("*")
        if p.is_file() and p.suffix in (".yaml", ".log", ".csv")
    ]
    assert not any(password in text for text in texts), "the storage password leaked"
    again = subprocess.run(
        [FTLAB, "train", *args, "hydra.sweeper.n_trials=5"], cwd=workdir, env=cli_env(),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert (
        len(optuna.load_study(study_name="lr_optimizer-digits_scratch", storage=storage).trials)
        == 5
    )


def test_a_killed_workers_trial_is_failed_retried_and_its_run_closed(
    postgres, workdir: Path
) -> None:
    storage = postgres()
    args = [
        *DIGITS_SWEEP, "hydra.sweeper.n_trials=3", f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.heartbeat_s=1", "hydra.sweeper.grace_s=5", "hydra.sweeper.pruner.name=none",
        "trainer.max_epochs=100000", "trainer.max_time=00:00:00:20", "callbacks.early_stopping=null",
        "logger.system_metrics=false",
    ]  # fmt: skip
    doomed = start([FTLAB, "train", *args, "hydra.sweep.dir=doomed"], workdir)
    deadline = time.monotonic() + 180
    while not list(workdir.glob("doomed/*/checkpoints/last.ckpt")):  # its trial is training
        assert doomed.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    survivor = start([FTLAB, "train", *args, "hydra.sweep.dir=survivor"], workdir)
    finish([survivor])
    study = optuna.load_study(study_name="lr_optimizer-digits_scratch", storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 1 and states.count(TrialState.COMPLETE) == 3
    dead = next(t for t in study.trials if t.state == TrialState.FAIL)
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
    assert retry and retry[0].params == dead.params
    children = [r for r in all_runs(local_store(workdir)) if "mlflow.parentRunId" in r.data.tags]
    statuses = {r.data.tags["ftlab.trial_number"]: r.info.status for r in children}
    assert statuses[str(dead.number)] == "FAILED", statuses
    assert "RUNNING" not in statuses.values()


def test_optuna_dashboard_shows_the_study_with_metric_names(workdir: Path) -> None:
    result = subprocess.run(
        [FTLAB, "train", *DIGITS_SWEEP, "hydra.sweeper.n_trials=2", "logger.system_metrics=false"],
        cwd=workdir, env=cli_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    port = free_port()
    dashboard = start([FTLAB, "dashboard", "--port", str(port)], workdir)
    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None:
            assert dashboard.poll() is None, dashboard.stdout.read()  # it ended: all is read
            assert time.monotonic() < deadline, "the dashboard did not answer within 60 s"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    studies = json.load(r).get("study_summaries")  # None: not the dashboard
            except OSError:
                pass
            time.sleep(0 if studies is not None else 0.5)
    finally:
        os.killpg(dashboard.pid, signal.SIGTERM)
        dashboard.wait(timeout=30)
    (study,) = studies
    assert study["study_name"] == "lr_optimizer-digits_scratch"
    loaded = optuna.load_study(
        study_name=study["study_name"], storage=f"sqlite:///{workdir / 'mlruns' / 'optuna.db'}"
    )
    assert loaded.metric_names == ["val/acc"]
    assert all(t.user_attrs.get("mlflow_run_id") for t in loaded.trials)
