"""A tracking server that goes away mid-run, and a run that dies: training never waits on the
server, nothing logged is lost, and a dead run says so."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from conftest import (
    FTLAB,
    TINY_DIGITS_RUN,
    cli_env,
    free_port,
    run_ftlab,
    start_mlflow_server,
    stop_process_group,
)

OUTAGE_S = 60


def _duration(seconds: int) -> str:
    """Lightning's DD:HH:MM:SS."""
    return f"00:00:{seconds // 60:02d}:{seconds % 60:02d}"


def spooled(run_dir: Path) -> list[tuple[str, int]]:
    lines = (run_dir / "mlflow_spool" / "metrics.jsonl").read_text().splitlines()
    return [(key, step) for key, _, _, step in map(json.loads, lines)]


def _train_then_lose_the_server(tmp_path: Path, seconds: int, *extra: str):
    """A server, a run against it lasting `seconds`, and the server killed after its first epoch.
    Returns (server root, port, project dir, the training process, the run's env)."""
    root, workdir = tmp_path / "server", tmp_path / "project"
    root.mkdir(), workdir.mkdir()
    port = free_port()
    server = start_mlflow_server(root, port)
    args = [
        *TINY_DIGITS_RUN, "trainer.max_epochs=100000", f"trainer.max_time={_duration(seconds)}",
        "callbacks.early_stopping=null", "hydra.run.dir=out", *extra,
    ]  # fmt: skip
    env = {**cli_env(), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
    training = subprocess.Popen(
        [FTLAB, "train", *args], cwd=workdir, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (workdir / "out" / "checkpoints" / "last.ckpt").exists():  # an epoch is done
            assert training.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        stop_process_group(server)
    return root, port, workdir, training, env


def test_training_goes_on_through_a_server_outage_and_loses_nothing(tmp_path: Path) -> None:
    root, port, workdir, training, _ = _train_then_lose_the_server(
        tmp_path, OUTAGE_S + 50, "logger.log_model=false", "logger.system_metrics_interval=2"
    )
    url, run_dir, server = f"http://127.0.0.1:{port}", workdir / "out", None
    try:
        before = len(spooled(run_dir))
        time.sleep(OUTAGE_S)
        during = len(spooled(run_dir))
        assert training.poll() is None, "the run finished during the outage: make it longer"
        server = start_mlflow_server(root, port)
        output, _ = training.communicate(timeout=600)
        assert training.returncode == 0, output[-3000:]
        # Training went on while the server was away: the spool grew by tens of steps.
        steps_during = {s for k, s in spooled(run_dir)[before:during] if k == "train/loss"}
        assert len(steps_during) >= 10, (
            f"training stalled: {len(steps_during)} steps in {OUTAGE_S} s"
        )
        client = MlflowClient(url)
        (run,) = client.search_runs([client.get_experiment_by_name("digits_scratch").experiment_id])
        assert run.info.status == "FINISHED"
        for key in {k for k, _ in spooled(run_dir)}:
            stored = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            trained = [s for k, s in spooled(run_dir) if k == key]
            assert stored == sorted(set(stored)), f"{key}: duplicate steps"
            assert sorted(stored) == sorted(trained), (
                f"{key}: {len(trained)} trained, {len(stored)} stored"
            )
    finally:
        if training.poll() is None:
            training.kill()
        if server is not None:
            stop_process_group(server)


def test_a_killed_run_shows_as_dead_with_the_resume_command(workdir: Path) -> None:
    args = [*TINY_DIGITS_RUN, "trainer.max_epochs=200", "hydra.run.dir=out"]
    training = subprocess.Popen(
        [FTLAB, "train", *args], cwd=workdir, env=cli_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (workdir / "out" / "checkpoints" / "last.ckpt").exists():
            assert training.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        os.kill(training.pid, signal.SIGKILL)
        training.wait()
    finally:
        if training.poll() is None:
            training.kill()
    store = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("digits_scratch").experiment_id])
    assert run.info.status == "RUNNING"
    beat = float(run.data.tags["ftlab.heartbeat"])
    assert abs(time.time() - beat) < 60  # the heartbeat was kept while it trained
    listing = run_ftlab("runs", cwd=workdir)
    assert "DEAD?" not in listing.stdout  # its heartbeat is still fresh
    client.set_tag(run.info.run_id, "ftlab.heartbeat", str(int(beat) - 600))  # ten minutes on
    listing = run_ftlab("runs", cwd=workdir)
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert "DEAD?" in listing.stdout and f"ftlab resume {run.info.run_id}" in listing.stdout


def test_a_server_that_never_comes_back_is_synced_later(tmp_path: Path) -> None:
    """The server dies after the first epoch and stays away: the run trains to the end, says in one
    line how to send the rest, and `ftlab sync` sends everything once the server is back."""
    root, port, workdir, training, env = _train_then_lose_the_server(
        tmp_path, 25, "logger.send_timeout_s=5"
    )
    url, server = f"http://127.0.0.1:{port}", None
    try:
        output, _ = training.communicate(timeout=600)
        assert training.returncode == 0, output[-3000:]
        assert "ftlab sync" in output and str(workdir / "out") in output
        server = start_mlflow_server(root, port)
        client = MlflowClient(url)
        (run,) = client.search_runs([client.get_experiment_by_name("digits_scratch").experiment_id])
        assert run.info.status == "RUNNING"  # nobody could close it yet
        synced = subprocess.run(
            [FTLAB, "sync", "out"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert synced.returncode == 0, synced.stdout[-2000:] + synced.stderr[-2000:]
        run = client.get_run(run.info.run_id)
        assert run.info.status == "FINISHED" and run.data.tags["ftlab.model_uri"].startswith(
            "models:/m-"
        )
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"checkpoints", "test_report"} <= artifacts
        for key in {k for k, _ in spooled(workdir / "out")}:
            stored = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(stored) == sorted(s for k, s in spooled(workdir / "out") if k == key), key
    finally:
        if training.poll() is None:
            training.kill()
        if server is not None:
            stop_process_group(server)
