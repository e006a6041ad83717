"""`ftlab train -m` sweeps with ftlab's Optuna sweeper, through the CLI, on a tiny digits model."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from conftest import FTLAB, all_runs, cli_env, local_store, run_ftlab

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
    args = [
        *SWEEP, "trainer.max_epochs=6", "hydra.sweeper.n_trials=6", "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
    ]  # fmt: skip
    result = run_ftlab("train", *args, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    pruned = [t for t in study(workdir).trials if t.state == TrialState.PRUNED]
    assert pruned, result.stdout[-3000:]
    assert all(t.user_attrs["pruned_at_epoch"] < 5 for t in pruned)
    _, children = parents_and_children(workdir)
    client = MlflowClient(local_store(workdir))
    for child in children:
        epochs = len(client.get_metric_history(child.info.run_id, "val/loss"))
        if child.data.tags["ftlab.trial_state"] == "PRUNED":
            assert epochs == int(child.data.tags["ftlab.pruned_at_epoch"]) + 1 < 6
            assert child.info.status == "FINISHED"


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

    resumed = run_ftlab(
        "train", *SWEEP, "trainer.max_epochs=2", "hydra.sweeper.n_trials=2", cwd=workdir
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    states = [t.state for t in study(workdir).trials]
    assert states[0] == TrialState.FAIL and len(states) == 3
    assert all(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states[1:])
    parents, _ = parents_and_children(workdir)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
