"""`ftlab train -m` sweeps with ftlab's Optuna sweeper, through the CLI, on a tiny digits model."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from conftest import FTLAB, all_runs, cli_env, local_store, run_ftlab, small_disk

TINY = [
    "experiment=digits_scratch",
    "data.max_samples=300",
    "model.backbone.width=8",
    "trainer.max_epochs=3",
]
SWEEP = ["hparams_search=lr_optimizer", *TINY]


def study(workdir: Path, name: str = "lr_optimizer-digits_scratch") -> optuna.Study:
    return optuna.load_study(
        study_name=name, storage=f"sqlite:///{workdir / 'mlruns' / 'optuna.db'}"
    )


def parents_and_children(workdir: Path) -> tuple[list, list]:
    runs = all_runs(local_store(workdir))
    parents = [r for r in runs if r.data.tags.get("ftlab.sweep_parent") == "true"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def test_sweep_then_resume_continues_the_same_study(workdir: Path) -> None:
    first = run_ftlab("train", *SWEEP, "hydra.sweeper.n_trials=4", cwd=workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "[4/4] trial 3" in first.stdout
    retrain = next(
        line for line in first.stdout.splitlines() if line.startswith("Retrain it: ftlab train")
    )
    assert "hparams_search" not in retrain and "optimizer.lr=" in retrain
    assert len(study(workdir).trials) == 4

    parents, children = parents_and_children(workdir)
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert {c.data.tags["ftlab.trial_number"] for c in children} == {"0", "1", "2", "3"}
    assert parent.info.status == "FINISHED" and "best_value" in parent.data.metrics
    assert parent.data.params["space.optimizer.lr"].startswith("FloatDistribution(")
    artifacts = {
        a.path
        for a in MlflowClient(local_store(workdir)).list_artifacts(parent.info.run_id, "sweep")
    }
    for plot in ("optimization_history", "param_importances", "parallel_coordinate", "slice"):
        assert {f"sweep/{plot}.png", f"sweep/{plot}.html"} <= artifacts
    assert "sweep/trials.csv" in artifacts

    again = run_ftlab("train", *SWEEP, "hydra.sweeper.n_trials=6", cwd=workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = study(workdir).trials
    assert [t.number for t in trials] == list(range(6))
    proposals = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(proposals)) == 6, "a resumed sweep replayed earlier points"
    parents, children = parents_and_children(workdir)
    assert len(parents) == 1 and len(children) == 6


def test_aggressive_pruner_stops_trials_early(workdir: Path) -> None:
    # Two learning rates far apart: the slow one falls below the median after its first epoch.
    args = [
        *SWEEP, "trainer.max_epochs=6", "hydra.sweeper.n_trials=6", "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0", "optimizer=adamw", "optimizer.lr=choice(0.05,0.00001)",
        "hydra.sweeper.sampler.name=random",
    ]  # fmt: skip
    result = run_ftlab("train", *args, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    pruned = [t for t in study(workdir).trials if t.state == TrialState.PRUNED]
    assert pruned, result.stdout[-3000:]
    assert any(t.user_attrs["pruned_at_epoch"] < 5 for t in pruned)  # stopped before the end
    _, children = parents_and_children(workdir)
    client = MlflowClient(local_store(workdir))
    for child in children:
        epochs = len(client.get_metric_history(child.info.run_id, "val/loss"))
        if child.data.tags["ftlab.trial_state"] == "PRUNED":
            assert epochs == int(child.data.tags["ftlab.pruned_at_epoch"]) + 1 < 6
            assert child.info.status == "FINISHED"  # the UI's status column: the name says it
            assert child.info.run_name.endswith(f"[pruned@{epochs}]")


def test_two_workers_share_one_study_exactly(workdir: Path) -> None:
    args = [*SWEEP, "hydra.sweeper.n_trials=5"]
    workers = [
        subprocess.Popen([FTLAB, "train", *args, f"hydra.sweep.dir=multirun/worker{i}"], cwd=workdir, env=cli_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]  # fmt: skip
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs[0][-2000:] + outputs[1][-2000:]
    trials = study(workdir).trials
    assert sorted(t.number for t in trials) == list(range(5))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert all(" trial " in out for out in outputs), "one worker did no trial"


def test_nan_trial_fails_and_the_sweep_continues(workdir: Path) -> None:
    args = [
        "-m", "hydra/sweeper=ftlab_optuna", *TINY, "optimizer=sgd", "optimizer.lr=choice(0.01,1e30)",
        "hydra.sweeper.sampler.name=grid", "hydra.sweeper.n_trials=2", "monitor.metric=val/loss", "monitor.mode=min",
        "hydra.sweeper.study_name=nan_test", "logger.log_model=false",
    ]  # fmt: skip
    result = run_ftlab("train", *args, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    states = {t.params["optimizer.lr"]: t.state for t in study(workdir, "nan_test").trials}
    assert states == {0.01: TrialState.COMPLETE, 1e30: TrialState.FAIL}


def test_ddp_is_refused_in_a_sweep_and_ddp_spawn_works(workdir: Path) -> None:
    refused = run_ftlab("train", *SWEEP, "trainer=ddp_cpu", cwd=workdir)
    assert refused.returncode == 2
    assert "use trainer.strategy=ddp_spawn in sweeps" in refused.stderr.strip().splitlines()[-1]
    spawned = run_ftlab(
        "train", *SWEEP, "trainer=ddp_cpu", "trainer.strategy=ddp_spawn", "hydra.sweeper.n_trials=1",
        "hydra.sweeper.study_name=spawn", cwd=workdir,
    )  # fmt: skip
    assert spawned.returncode == 0, spawned.stderr[-3000:]
    (trial,) = study(workdir, "spawn").trials
    assert trial.state == TrialState.COMPLETE


def test_interrupted_sweep_resumes_to_the_full_count(workdir: Path) -> None:
    import signal
    import time

    args = [
        *SWEEP,
        "trainer.max_epochs=30",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.pruner.name=none",
    ]
    process = subprocess.Popen([FTLAB, "train", *args], cwd=workdir, env=cli_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not list(workdir.glob("multirun/*/*/0/checkpoints/last.ckpt")):  # trial 0 is training
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()[
                -2000:
            ]
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0 and "rerun the same command to resume" in output
    (interrupted,) = study(workdir).trials
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["interrupted"]
    parents, children = parents_and_children(workdir)
    assert parents[0].info.status == "KILLED" and children[0].info.status == "KILLED"

    resumed = run_ftlab(  # shorter trials this time: a change the study is told to accept
        "train", *SWEEP, "trainer.max_epochs=2", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.continue_changed=true", cwd=workdir,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    states = [t.state for t in study(workdir).trials]
    assert states[0] == TrialState.FAIL and len(states) == 3
    assert all(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states[1:])
    parents, _ = parents_and_children(workdir)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"


def test_sigterm_stops_a_sweep_on_workers_as_ctrl_c_does(workdir: Path) -> None:
    """Found by a review: SIGTERM (a scheduler's, `kill`) ended the sweep's process at once, its
    workers trained on as orphans and the parent run stayed RUNNING for good."""
    import signal
    import time

    import psutil

    args = [*SWEEP, "trainer.max_epochs=30", "hydra.sweeper.n_trials=4", "hydra.sweeper.workers=2",
            "hydra.sweeper.pruner.name=none"]  # fmt: skip
    process = subprocess.Popen([FTLAB, "train", *args], cwd=workdir, env=cli_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not list(workdir.glob("multirun/*/*/*/checkpoints/last.ckpt")):  # a trial trains
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()[
                -2000:
            ]
            time.sleep(0.5)
        workers = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0 and "rerun the same command to resume" in output, output[-3000:]
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"workers left running: {alive}"
    parents, _ = parents_and_children(workdir)
    assert parents[0].info.status == "KILLED"
    assert not [t for t in study(workdir).trials if t.state == TrialState.RUNNING]


def test_a_stop_right_after_a_trial_is_asked_leaves_no_trial_running(workdir: Path) -> None:
    """Found by a review: a stop between `ask` and the job's launch left the asked trial RUNNING
    for good, without a heartbeat, and a resumed sweep counted it as one of its trials."""
    env = {**cli_env(), "PYTHONPATH": str(Path(__file__).parent / "apps")}
    args = [*SWEEP, "hydra.sweeper.n_trials=3"]
    stopped = run_ftlab(
        "train", *args, "hydra.sweeper.custom_search_space=signal_at.stop_at_second_trial",
        cwd=workdir, env=env,
    )  # fmt: skip
    assert stopped.returncode != 0 and "rerun the same command to resume" in stopped.stdout
    states = {t.number: t.state for t in study(workdir).trials}
    assert states[0] in (TrialState.COMPLETE, TrialState.PRUNED)
    assert states[1] == TrialState.FAIL and study(workdir).trials[1].user_attrs["interrupted"]
    resumed = run_ftlab("train", *args, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    finished = [t for t in study(workdir).trials if t.state != TrialState.FAIL]
    assert len(finished) == 3 and not [
        t for t in study(workdir).trials if t.state == TrialState.RUNNING
    ]


def test_an_objective_no_trial_logs_is_named_in_the_error(workdir: Path) -> None:
    """Found by a review: the sweep ended with "the job returned None, not a number"."""
    result = run_ftlab(
        "train", *SWEEP, "hydra.sweeper.n_trials=2", "optimized_metric=val/bogus", "logger=none",
        cwd=workdir,
    )  # fmt: skip
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "optimized_metric val/bogus was not logged" in last and "val/loss" in last, last


# ------------------------------------------------------------------ any Hydra app, upstream-style
APP = Path(__file__).parent / "apps" / "quadratic.py"


def run_app(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run(
        [sys.executable, str(APP), "-m", *args], cwd=workdir, env=cli_env(), capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


def test_a_plain_hydra_app_sweeps_and_an_objective_of_zero_is_a_result(workdir: Path) -> None:
    """A grid over 25 integer points of (x-2)^2 + (y+1)^2: the optimum is exactly 0.0."""
    result = run_app(workdir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    trials = study(workdir, "sweep-quadratic").trials
    assert len(trials) == 25 and all(t.state == TrialState.COMPLETE for t in trials)
    zero = [t for t in trials if t.value == 0.0]
    assert [t.params for t in zero] == [{"x": 2, "y": -1}]
    results = yaml.safe_load(
        next(workdir.glob("multirun/*/*/optimization_results.yaml")).read_text()
    )
    assert results["best_value"] == 0.0 and results["best_params"] == {"x": 2, "y": -1}
    assert "Heartbeat of storage" not in result.stdout + result.stderr
    assert "optuna_trial" not in result.stdout + result.stderr


def test_a_plain_app_with_two_objectives_gets_a_pareto_front(workdir: Path) -> None:
    result = run_app(
        workdir, "objectives=2", "hydra.sweeper.direction=[minimize,minimize]",
        "hydra.sweeper.sampler.name=random", "hydra.sweeper.n_trials=8",
        "x=int(interval(0, 4))", "y=int(interval(-2, 2))",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    loaded = study(workdir, "sweep-quadratic")
    assert len(loaded.directions) == 2 and len(loaded.trials) == 8
    assert all(isinstance(t.params["x"], int) for t in loaded.trials)  # int(interval()) is int
    results = yaml.safe_load(
        next(workdir.glob("multirun/*/*/optimization_results.yaml")).read_text()
    )
    assert results["solutions"] and all(len(s["values"]) == 2 for s in results["solutions"])
    assert "Pareto front" in result.stdout


def test_a_custom_search_space_function_adds_params(workdir: Path) -> None:
    result = run_app(
        workdir, "hydra.sweeper.sampler.name=random", "hydra.sweeper.n_trials=3",
        "x=int(interval(1, 4))", "hydra.sweeper.custom_search_space=quadratic.extend_space",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for trial in study(workdir, "sweep-quadratic").trials:
        assert 0.0 <= trial.params["z"] <= max(1.0, trial.params["x"])


def test_a_sweep_whose_every_trial_failed_exits_non_zero(workdir: Path) -> None:
    result = run_app(
        workdir, "fail=true", "hydra.sweeper.n_trials=2", "hydra.sweeper.max_failure_rate=1.0"
    )
    assert result.returncode != 0
    assert "every trial of study 'sweep-quadratic' failed" in result.stderr
    assert "this trial was told to fail" in result.stderr.strip().splitlines()[-1]


def test_a_sweep_on_a_full_disk_names_it(workdir: Path) -> None:
    with small_disk(workdir / "small", "size=1m") as small:  # no room for a width-96 checkpoint
        result = run_ftlab(
            "train", *SWEEP, "model.backbone.width=96", "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={small}/multi", cwd=workdir,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: every trial of study 'lr_optimizer-digits_scratch' failed; last error: "
            f"FtlabError: no space left on the disk of {small}/multi/"
        )
    )
    assert {r.info.status for r in all_runs(local_store(workdir))} == {"FAILED"}


def test_a_study_remembers_its_space(workdir: Path) -> None:
    first = run_app(workdir, "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.name=random")
    assert first.returncode == 0, first.stderr[-2000:]
    changed = run_app(
        workdir, "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler.name=random", "x=range(5, 9)"
    )
    assert changed.returncode == 2
    last = changed.stderr.strip().splitlines()[-1]
    assert "its space was" in last and "study_name=NEW" in last and "continue_changed=true" in last
    assert len(study(workdir, "sweep-quadratic").trials) == 2  # nothing ran
    again = run_app(
        workdir, "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler.name=random", "x=range(5, 9)",
        "hydra.sweeper.continue_changed=true",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(study(workdir, "sweep-quadratic").trials) == 4


def test_a_value_fixed_on_the_command_line_wins_over_the_preset(workdir: Path) -> None:
    result = run_ftlab(
        "train", *SWEEP, "optimizer=sgd", "hydra.sweeper.n_trials=3", "logger.log_model=false",
        cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(workdir).trials
    assert all("optimizer" not in t.params and "optimizer.momentum" in t.params for t in trials)
    _, children = parents_and_children(workdir)
    assert {c.data.params["optimizer._target_"] for c in children} == {"torch.optim.SGD"}
    retrain = next(line for line in result.stdout.splitlines() if line.startswith("Retrain it:"))
    assert retrain.count("optimizer=") == 1 and "optimizer=sgd" in retrain


def test_an_ftlab_sweep_with_two_objectives_records_its_pareto_front(workdir: Path) -> None:
    result = run_ftlab(
        "train", *SWEEP, "hydra.sweeper.n_trials=3", "optimized_metric=[val/acc,val/loss]",
        "hydra.sweeper.direction=[maximize,minimize]", cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = study(workdir)
    assert loaded.metric_names == ["val/acc", "val/loss"]
    assert all(len(t.values) == 2 for t in loaded.trials)
    parents, children = parents_and_children(workdir)
    client = MlflowClient(local_store(workdir))
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert "best_trials.json" in artifacts
    assert {"sweep/pareto_front.html", "sweep/pareto_front.png"} <= {
        a.path for a in client.list_artifacts(parents[0].info.run_id, "sweep")
    }
    assert len(children) == 3
