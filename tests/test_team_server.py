"""A team's tracking server as `ftlab server` starts it, for real: PostgreSQL for runs and users,
proxied artifacts, MLflow's basic-auth app. Two users, one of whom may only read the other's
experiment; runs, a sweep and a reproduction through the server; credentials nowhere they should
not be."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (
    FTLAB,
    TINY_DIGITS,
    all_runs,
    cli_env,
    free_port,
    run_ftlab,
    stop_process_group,
    tempfile_dir,
)

ADMIN_PASSWORD = "admin-Pa55word-for-tests"
USERS = {"alice": "alice-Pa55word-0123", "bob": "bob-Pa55word-4567"}
DIGITS = [
    "experiment=digits_scratch",
    *TINY_DIGITS,
    "trainer.max_epochs=1",
    "logger.system_metrics=false",
]


@pytest.fixture(scope="module")
def team_server(postgres):
    """`ftlab server` on a fresh database; alice owns experiment `digits_scratch`, bob may read it."""
    from mlflow.server.auth.client import AuthServiceClient
    from mlflow.tracking import MlflowClient

    database = postgres()
    root = Path(tempfile_dir("ftlab-team-"))
    port = free_port()
    env = {**cli_env(), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
    server = subprocess.Popen(
        [FTLAB, "server", "--backend-store-uri", database, "--port", str(port),
         "--artifacts-destination", str(root / "artifacts")],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    banner = ""
    while "ready" not in banner:
        assert server.poll() is None and time.monotonic() < deadline, banner + server.stdout.read()
        banner += server.stdout.readline()
    # The server logs every request: keep reading, or a full pipe stops it mid-request.
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(server.stdout), daemon=True).start()
    os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
    try:
        admin = AuthServiceClient(url)
        for user, password in USERS.items():
            admin.create_user(user, password)
        os.environ.update(MLFLOW_TRACKING_USERNAME="alice", MLFLOW_TRACKING_PASSWORD=USERS["alice"])
        experiment = MlflowClient(url).create_experiment("digits_scratch")
        os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
        admin.grant_user_permission("bob", "experiment", experiment, "READ")
    finally:
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(key, None)
    yield url, database, banner
    server.send_signal(signal.SIGTERM)  # `ftlab server` stops its MLflow server too
    try:
        server.wait(timeout=60)
    finally:
        stop_process_group(server)
        shutil.rmtree(root, ignore_errors=True)


def as_user(url: str, user: str, password: str | None = None) -> dict[str, str]:
    return {
        **cli_env(),
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": password or USERS[user],
    }


def _admin_runs(url: str) -> list:
    os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
    try:
        return all_runs(url)
    finally:
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(key, None)


def test_the_server_keeps_the_database_password_to_itself(team_server) -> None:
    _, database, banner = team_server
    password = database.split(":")[2].split("@")[0]
    assert password not in banner and "logins required" in banner


def test_a_run_a_sweep_and_a_reproduction_through_the_team_server(
    team_server, workdir: Path
) -> None:
    url, _, _ = team_server
    env = as_user(url, "alice")
    trained = run_ftlab("train", *DIGITS, "hydra.run.dir=out", cwd=workdir, env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run,) = [
        r
        for r in _admin_runs(url)
        if r.data.tags.get("ftlab.output_dir", "").startswith(str(workdir))
    ]
    assert run.info.status == "FINISHED" and "ftlab.model_uri" in run.data.tags
    swept = run_ftlab(
        "train",
        "hparams_search=lr_optimizer",
        *DIGITS,
        "hydra.sweeper.n_trials=2",
        cwd=workdir,
        env=env,
    )
    assert swept.returncode == 0, swept.stderr[-3000:]
    again = run_ftlab("reproduce", run.info.run_id, "--check", cwd=workdir, env=env)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    texts = [
        trained.stdout + trained.stderr,
        swept.stdout + swept.stderr,
        again.stdout + again.stderr,
    ]
    for r in _admin_runs(url):
        texts.append(json.dumps([r.data.params, r.data.tags]))
    texts += [
        p.read_text()
        for p in workdir.rglob("*")
        if p.is_file() and p.suffix in (".yaml", ".log", ".json")
    ]
    assert not any(USERS["alice"] in text for text in texts), "alice's password leaked"


def test_a_reader_cannot_write_and_nothing_is_left(team_server, workdir: Path) -> None:
    url, _, _ = team_server
    before = len(_admin_runs(url))
    result = run_ftlab("train", *DIGITS, cwd=workdir, env=as_user(url, "bob"))
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "refused bob" in last and "digits_scratch" in last
    assert "Traceback" not in result.stderr
    assert len(_admin_runs(url)) == before


def test_a_wrong_password_is_one_line_before_anything_is_built(team_server, workdir: Path) -> None:
    url, _, _ = team_server
    result = run_ftlab("train", *DIGITS, cwd=workdir, env=as_user(url, "alice", "not-her-password"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "refused the login (HTTP 401)" in last and "not-her-password" not in result.stderr
    assert not (workdir / "outputs").exists()


def test_a_cluster_sweep_on_the_team_server_and_postgres(
    team_server, postgres, workdir: Path
) -> None:
    """Trials as jobs of hydra-submitit-launcher (submitit_local stands in for SLURM), the study on
    PostgreSQL, the runs on the team server: the study reaches n_trials, one MLflow parent."""
    import optuna

    url, _, _ = team_server
    storage = postgres()
    result = run_ftlab(
        "train", "hparams_search=lr_optimizer", *DIGITS, "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
        f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=cluster",
        cwd=workdir, env=as_user(url, "alice"), timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    trials = optuna.load_study(study_name="cluster", storage=storage).trials
    assert len(trials) == 2 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    runs = [r for r in _admin_runs(url) if r.data.tags.get("ftlab.study") == "cluster"]
    assert len([r for r in runs if r.data.tags.get("ftlab.sweep_parent") == "true"]) == 1
    assert len([r for r in runs if "mlflow.parentRunId" in r.data.tags]) == 2
