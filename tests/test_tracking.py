"""What a run records, checked through MlflowClient against a real `mlflow server` and the local
SQLite store, after running `ftlab train` as a user types it."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import (
    FTLAB,
    TINY_DIGITS_RUN,
    TINY_TEXT,
    all_runs,
    cli_env,
    local_store,
    run_ftlab,
    small_disk,
)

LONG_NOTE = "a long note that must survive in full; " * 10  # ~390 characters, over Lightning's 250
SECRET_ENV = {"FTLAB_TEST_API_KEY": "sk-test-0123456789abcdef"}


def server_env(url: str, **extra: str) -> dict[str, str]:
    return {**cli_env(), "MLFLOW_TRACKING_URI": url, **extra}


def init_dirty_git_repo(path: Path) -> None:
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "start"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *command], cwd=path, check=True
        )
    (path / "notes.txt").write_text("changed\n")


@pytest.fixture(scope="module")
def server_run(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory):
    """One tiny tracked run against the server, with a long param and two secrets in the config."""
    workdir = tmp_path_factory.mktemp("server_run")
    (workdir / "notes.txt").write_text("original\n")
    init_dirty_git_repo(workdir)
    result = run_ftlab(
        "train", *TINY_TEXT,
        f"+notes='{LONG_NOTE}'",
        "+hub.token=hf_abcdefghijklmnop",
        "+service.url=${oc.env:FTLAB_TEST_API_KEY}",
        "logger.register_as=tiny_vader",
        "logger.system_metrics_interval=1",
        "hydra.run.dir=out",
        cwd=workdir, env=server_env(mlflow_server, **SECRET_ENV),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(mlflow_server)
    (run,) = all_runs(mlflow_server)
    return client, run, result


def test_params_are_complete_full_length_and_redacted(server_run) -> None:
    client, run, _ = server_run
    params = run.data.params
    assert params["notes"] == LONG_NOTE
    assert params["hub.token"] == "***redacted***"
    assert params["service.url"] == "***redacted***"
    assert len(params) > 80 and params["optimizer._target_"] == "torch.optim.AdamW"
    assert not any("functools.partial" in v or " object at 0x" in v for v in params.values())
    config = client.download_artifacts(run.info.run_id, "config.yaml")
    text = Path(config).read_text()
    assert "hf_abcdefghijklmnop" not in text and SECRET_ENV["FTLAB_TEST_API_KEY"] not in text
    overrides = Path(
        client.download_artifacts(run.info.run_id, ".hydra/overrides.yaml")
    ).read_text()
    assert "hf_abcdefghijklmnop" not in overrides and "***redacted***" in overrides
    assert "hf_abcdefghijklmnop" not in (
        client.get_run(run.info.run_id).data.tags.get("mlflow.note.content") or ""
    )


def test_identity_tags_and_name(server_run) -> None:
    _, run, _ = server_run
    tags = run.data.tags
    assert run.info.run_name.startswith("tiny_bert-vader-adamw-lr0.0001-")
    assert (
        tags["ftlab.model"] == "tiny_bert"
        and tags["ftlab.optimizer"] == "adamw"
        and tags["ftlab.seed"] == "42"
    )
    assert (
        len(tags["git.commit"]) == 40
        and tags["git.branch"] == "main"
        and tags["git.dirty"] == "true"
    )
    assert tags["device.type"] == "cpu" and tags["device.count"] == "1" and tags["host"]
    assert tags["mlflow.note.content"].startswith("ftlab train model=tiny_bert")


def test_artifacts(server_run) -> None:
    client, run, _ = server_run

    def listing(path: str | None = None) -> set[str]:
        return {a.path for a in client.list_artifacts(run.info.run_id, path)}

    assert {
        "config.yaml",
        ".hydra",
        "environment",
        "data",
        "checkpoints",
        "test_report",
    } <= listing()
    assert {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"} <= listing(".hydra")
    assert {"environment/requirements.txt", "environment/git_diff.patch"} <= listing("environment")
    assert {"test_report/predicted_vs_true.png", "test_report/error_summary.json"} <= listing(
        "test_report"
    )
    assert "checkpoints/best.ckpt" in listing("checkpoints")
    requirements = Path(
        client.download_artifacts(run.info.run_id, "environment/requirements.txt")
    ).read_text()
    assert "torch==" in requirements and "mlflow==" in requirements
    diff = Path(
        client.download_artifacts(run.info.run_id, "environment/git_diff.patch")
    ).read_text()
    assert "+changed" in diff


def test_metrics_on_the_optimizer_step_axis(server_run) -> None:
    client, run, _ = server_run
    metrics = run.data.metrics
    for key in (
        "train/loss",
        "val/loss",
        "test/mse",
        "test/pearson",
        "lr/backbone",
        "lr/head.no_decay",
        "perf/samples_per_s",
    ):
        assert key in metrics, key
    assert any(key.startswith("system/") for key in metrics)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert steps == sorted(set(steps)) and steps[0] > 0
    lr_steps = [m.step for m in client.get_metric_history(run.info.run_id, "lr/backbone")]
    assert set(steps) - {steps[-1]} <= set(lr_steps), "the lr is logged at every logging step"
    assert lr_steps == sorted(set(lr_steps)) and lr_steps[0] == 0


def test_logged_model_predicts_on_raw_strings(server_run, mlflow_server: str) -> None:
    _, run, _ = server_run
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model(run.data.tags["ftlab.model_uri"])
    predictions = model.predict(["wonderful", "horrible", "table"])
    assert list(predictions.columns) == ["prediction"] and len(predictions) == 3
    assert predictions["prediction"].notna().all()
    assert model.metadata.signature is not None


def test_registration_creates_a_version(server_run) -> None:
    client, run, result = server_run
    versions = client.search_model_versions("name='tiny_vader'")
    assert [v.version for v in versions] == ["1"]
    assert "Registered: tiny_vader version 1" in result.stdout


def test_the_model_lives_in_its_runs_experiment_with_its_final_metrics(
    server_run, mlflow_server: str
) -> None:
    client, run, _ = server_run
    mlflow.set_tracking_uri(mlflow_server)
    model_id = run.data.tags["ftlab.model_uri"].removeprefix("models:/")
    logged = mlflow.get_logged_model(model_id)
    assert logged.experiment_id == run.info.experiment_id
    assert logged.name == "tiny_vader"  # the registered name (else the run's name)
    linked = {m.key for m in logged.metrics or []}
    assert {"test/loss", "test/mse"} <= linked, linked
    assert not any(key.startswith(("system/", "lr/")) for key in linked)


def _model_uris(run) -> dict[str, str]:
    return {
        "runs": f"runs:/{run.info.run_id}/model",
        "logged": run.data.tags["ftlab.model_uri"],
        "registered": "models:/tiny_vader/1",
    }


@pytest.mark.parametrize("kind", ["runs", "logged", "registered"])
def test_every_model_uri_loads_and_fine_tunes(
    kind: str, server_run, mlflow_server: str, tmp_path: Path
) -> None:
    _, run, _ = server_run
    uri = _model_uris(run)[kind]
    mlflow.set_tracking_uri(mlflow_server)
    predictions = mlflow.pyfunc.load_model(uri).predict(["wonderful", "horrible"])
    assert predictions["prediction"].notna().all() and len(predictions) == 2
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    log_model = kind == "runs"  # once: the new model is saved after its source files are gone
    result = run_ftlab(
        "train", "model=from_mlflow", f"model.backbone.uri={uri}", "data.max_samples=120",
        "trainer.max_epochs=1", f"logger.log_model={str(log_model).lower()}", "hydra.run.dir=out",
        cwd=tmp_path, env={**server_env(mlflow_server), "TMPDIR": str(scratch)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    newest = max(all_runs(mlflow_server), key=lambda r: r.info.start_time)
    assert newest.info.status == "FINISHED" and newest.data.tags["ftlab.backbone_source"] == uri
    # The downloaded source model is removed once read: runs must not fill the temp folder.
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("ftlab-")]
    if log_model:
        tuned = mlflow.pyfunc.load_model(newest.data.tags["ftlab.model_uri"])
        assert tuned.predict(["wonderful", "horrible"])["prediction"].notna().all()


# 2 inodes: the download's folder cannot be made; 3: it can, and MLflow's own download fails.
@pytest.mark.parametrize("inodes", [2, 3])
def test_a_full_temp_folder_is_named_not_taken_for_a_missing_model(
    inodes: int, server_run, mlflow_server: str, tmp_path: Path
) -> None:
    _, run, _ = server_run
    uri = _model_uris(run)["runs"]
    with small_disk(tmp_path / "small", f"size=1m,nr_inodes={inodes}") as small:
        result = run_ftlab(
            "train", "model=from_mlflow", f"model.backbone.uri={uri}", "hydra.run.dir=out",
            cwd=tmp_path, env={**server_env(mlflow_server), "TMPDIR": str(small)},
        )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: no space left on the disk of {small}: free some space there"
    ), result.stderr[-3000:]


def test_mlflow_serves_the_runs_model(server_run, mlflow_server: str, tmp_path: Path) -> None:
    import json
    import sys
    import urllib.request

    from conftest import free_port, stop_process_group

    _, run, _ = server_run
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{run.info.run_id}/model",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=server_env(mlflow_server), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "the model server died"
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations",
                    data=json.dumps({"inputs": ["wonderful", "horrible"]}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    answer = json.load(response)
                break
            except OSError:
                time.sleep(1)
    finally:
        stop_process_group(server)
    assert len(answer["predictions"]) == 2 and "prediction" in answer["predictions"][0]


def test_missing_model_uri_is_a_clear_error(mlflow_server: str, tmp_path: Path) -> None:
    before = len(all_runs(mlflow_server))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = run_ftlab(
        "train", "model=from_mlflow", "model.backbone.uri=runs:/0123456789abcdef/model", "hydra.run.dir=out",
        cwd=tmp_path, env={**server_env(mlflow_server), "TMPDIR": str(scratch)},
    )  # fmt: skip
    assert (
        result.returncode == 2
        and "model.backbone.uri: no MLflow model at runs:/0123456789abcdef/model" in result.stderr
    )
    assert len(all_runs(mlflow_server)) == before
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("ftlab-")]


def test_unreachable_server_fails_fast_naming_the_uri(tmp_path: Path) -> None:
    # MLflow's client alone would retry for minutes; the timeout turns such a hang into a failure.
    result = run_ftlab(
        "train",
        *TINY_TEXT,
        "hydra.run.dir=out",
        cwd=tmp_path,
        env=server_env("http://127.0.0.1:9"),
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: MLflow tracking server http://127.0.0.1:9 is unreachable")
    )
    assert not (tmp_path / "out" / "checkpoints").exists(), (
        "training started before the server was checked"
    )


def test_failure_ends_failed_with_traceback(workdir: Path) -> None:
    result = run_ftlab(
        "train",
        *TINY_DIGITS_RUN,
        "trainer.val_check_interval=1000",
        "hydra.run.dir=out",
        cwd=workdir,
    )
    assert result.returncode != 0
    (run,) = all_runs(local_store(workdir))
    assert run.info.status == "FAILED"
    traceback = MlflowClient(local_store(workdir)).download_artifacts(
        run.info.run_id, "error/traceback.txt"
    )
    assert "val_check_interval" in Path(traceback).read_text()


# Where a run's writes meet a full disk. Hydra writes the folder, .hydra/ and its three files and
# train.log before the run starts: with 8 inodes (the mount's root is one) the spool's folder is
# the first write after the run is created; with 9 its run record fits, and the reporter thread's
# metrics file is next. 1 MB holds a run's small files but not a CNN of width 96's checkpoint.
FULL_DISKS = {
    "checkpoint": ("size=1m", ["model.backbone.width=96"], "out"),
    "run start": ("size=1m,nr_inodes=8", [], "out/mlflow_spool"),
    "metric spool": ("size=1m,nr_inodes=9", [], "out/mlflow_spool"),
}


@pytest.mark.parametrize("where", list(FULL_DISKS))
def test_a_full_disk_fails_the_run_with_one_line(where: str, workdir: Path) -> None:
    options, overrides, folder = FULL_DISKS[where]
    with small_disk(workdir / "small", options) as small:
        result = run_ftlab(
            "train", *TINY_DIGITS_RUN, *overrides, f"hydra.run.dir={small}/out", cwd=workdir
        )
        checkpoints = sorted(p.name for p in (small / "out").rglob("*.ckpt*"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: no space left on the disk of {small}/{folder}: free some space there, or give "
        "the run a folder on another disk (hydra.run.dir=..., a sweep's hydra.sweep.dir=...)"
    )
    (run,) = all_runs(local_store(workdir))
    assert run.info.status == "FAILED"  # not left RUNNING when the run's own records fail
    # No half-written checkpoint is left taking up the space.
    assert not [name for name in checkpoints if name.endswith(".partial")]


def test_a_spool_on_a_full_disk_still_ends_the_run_and_its_reporter(tmp_path: Path) -> None:
    from ftlab.tracking.run import TrackedRun

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with small_disk(tmp_path / "small", "size=64k") as small:
        run = TrackedRun(store, "disk", "full", small / "mlflow_spool")
        with pytest.raises(OSError, match="No space left"), run:
            run.start_reporting(None)
            (small / "mlflow_spool" / "metrics.jsonl").touch()
            with contextlib.suppress(OSError), open(small / "filler", "wb", buffering=0) as filler:
                while True:  # the disk fills up while the run trains
                    filler.write(b"\0" * 4096)
            run.spool.append([("train/loss", 1.0, 0, 0)])
    assert run.calls._reporter is None, "the reporter thread was left running"
    assert MlflowClient(store).get_run(run.run_id).info.status == "FAILED"


def test_a_run_the_disk_stopped_resumes_once_there_is_room(workdir: Path) -> None:
    # 6 MB holds epoch 1's checkpoints (3.1 + 1.0 MB) but not epoch 2's next to them.
    with small_disk(workdir / "small", "size=6m") as small:
        stopped = run_ftlab(
            "train", *TINY_DIGITS_RUN, "model.backbone.width=96", f"hydra.run.dir={small}/out",
            cwd=workdir,
        )  # fmt: skip
        (run,) = all_runs(local_store(workdir))
        assert stopped.returncode == 2 and run.info.status == "FAILED", stopped.stderr[-3000:]
        assert stopped.stderr.strip().splitlines()[-1] == (
            f"error: no space left on the disk of {small}/out: free some space there, then "
            f"continue the run from its last checkpoint: ftlab resume {run.info.run_id}"
        )
        subprocess.run(["mount", "-o", "remount,size=40m", str(small)], check=True)
        resumed = run_ftlab("resume", run.info.run_id, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run,) = all_runs(local_store(workdir))
    assert run.info.status == "FINISHED" and "test/acc" in run.data.metrics  # fit and test ran


def test_a_nan_test_loss_ends_failed_without_a_model(workdir: Path) -> None:
    """One step at an absurd lr ends the fit inside its first epoch, before any validation could
    show the divergence; the test pass shows it, and the run fails instead of logging a model."""
    result = run_ftlab(
        "train", *TINY_DIGITS_RUN, "optimizer=sgd", "optimizer.lr=1e30", "scheduler=none",
        "trainer.max_steps=1", "hydra.run.dir=out", cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: test/loss is nan")
    assert "Model:" not in result.stdout
    (run,) = all_runs(local_store(workdir))
    assert run.info.status == "FAILED"
    assert not mlflow.MlflowClient(local_store(workdir)).search_logged_models(
        [run.info.experiment_id]
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_interrupted_run_ends_killed(workdir: Path, signum: int) -> None:
    args = [
        "experiment=digits_scratch",
        "trainer.max_epochs=500",
        "hydra.run.dir=out",
        "logger.log_model=false",
    ]
    process = subprocess.Popen(
        [FTLAB, "train", *args],
        cwd=workdir,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (workdir / "out" / "checkpoints" / "last.ckpt").exists():  # training is under way
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()[
                -2000:
            ]
            time.sleep(0.5)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    (run,) = all_runs(local_store(workdir))
    assert run.info.status == "KILLED", output[-2000:]
    # A checkpoint was saved at the stop, kept with the run, and the way back is printed.
    assert f"ftlab resume {run.info.run_id}" in output
    kept = MlflowClient(local_store(workdir)).download_artifacts(
        run.info.run_id, "checkpoints/last.ckpt"
    )
    state = torch.load(kept, map_location="cpu", weights_only=True)
    assert state["global_step"] > 0 and state["optimizer_states"]


@pytest.mark.parametrize("hook", ["on_train_end", "on_test_start"])
def test_a_stop_signal_after_the_last_epoch_is_not_lost(workdir: Path, hook: str) -> None:
    """Found by a review: a SIGTERM during the fit's end hooks (its last save included) was
    recorded and then forgotten, so the run tested, logged its model and ended FINISHED; one
    during the test pass printed a bare traceback and no way to resume."""
    env = {**cli_env(), "PYTHONPATH": str(Path(__file__).parent / "apps")}
    result = run_ftlab(
        "train", *TINY_DIGITS_RUN, "hydra.run.dir=out",
        f"+callbacks.signal_at={{_target_: signal_at.SignalAt, hook: {hook}}}",
        cwd=workdir, env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    (run,) = all_runs(local_store(workdir))
    assert run.info.status == "KILLED"
    assert f"ftlab resume {run.info.run_id}" in result.stdout
    assert "Model:" not in result.stdout


def test_runs_and_compare_commands(workdir: Path) -> None:
    for lr in ("0.001", "0.01"):
        result = run_ftlab(
            "train",
            *TINY_DIGITS_RUN,
            f"optimizer.lr={lr}",
            "logger.log_model=false",
            f"hydra.run.dir=out{lr}",
            cwd=workdir,
        )
        assert result.returncode == 0, result.stderr[-2000:]
    listing = run_ftlab("runs", "--sort", "test/acc", cwd=workdir)
    assert listing.returncode == 0 and "2 runs" in listing.stdout and "test/acc" in listing.stdout
    names = [r.info.run_name for r in all_runs(local_store(workdir))]
    compared = run_ftlab("compare", *names, cwd=workdir)
    assert compared.returncode == 0
    assert (
        "optimizer.lr" in compared.stdout
        and "0.001" in compared.stdout
        and "0.01" in compared.stdout
    )
    assert "test/acc" in compared.stdout
    unknown = run_ftlab("compare", names[0], "no-such-run", cwd=workdir)
    assert unknown.returncode == 2 and "run 'no-such-run': no run" in unknown.stderr
    frame = pd.DataFrame([r.data.metrics for r in all_runs(local_store(workdir))])
    assert frame["test/acc"].notna().all()


def test_logged_image_model_predicts_on_arrays(logged_digits_model: tuple[str, str]) -> None:
    from sklearn.datasets import load_digits

    model_uri, tracking_uri = logged_digits_model
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    images = (load_digits().images[:6] / 16.0).astype("float32")[:, None]  # (N, 1, 8, 8) in [0, 1]
    predictions = model.predict(images)
    assert list(predictions.columns) == ["label", *[f"prob_{d}" for d in range(10)]]
    assert predictions.filter(like="prob_").sum(axis=1).round(5).eq(1).all()
    assert set(predictions["label"]) <= {str(d) for d in range(10)}
    # The same images as people load them: (N, 8, 8) floats, (N, 8, 8, 1) uint8 pixels.
    flat = model.predict(images[:, 0])
    pixels = model.predict((images[:, 0, :, :, None] * 255).round().astype("uint8"))
    assert list(flat["label"]) == list(predictions["label"]) == list(pixels["label"])
    with pytest.raises(Exception, match=r"takes images as .*got an array of shape \(6, 3, 8, 8\)"):
        model.predict(images.repeat(3, axis=1))
    # models:/m-ID/FILE reads as a registered model's version: download the model folder.
    requirements = (
        Path(mlflow.artifacts.download_artifacts(model_uri)) / "requirements.txt"
    ).read_text()
    assert "torch==" in requirements
    assert "transformers" not in requirements and "timm" not in requirements


def test_deleted_experiment_is_a_clear_error(workdir: Path) -> None:
    store = local_store(workdir)
    (workdir / "mlruns").mkdir()
    client = MlflowClient(store)
    client.delete_experiment(client.create_experiment("digits_scratch"))
    result = run_ftlab("train", *TINY_DIGITS_RUN, "hydra.run.dir=out", cwd=workdir)
    assert result.returncode == 2
    assert (
        "experiment 'digits_scratch' is deleted" in result.stderr
        and "mlflow experiments restore" in result.stderr
    )
    assert all_runs(store) == []


def test_the_reporter_sends_once_per_interval_unless_someone_waits(tmp_path: Path) -> None:
    """While training, metrics go out at most every SEND_INTERVAL_S (each send is Python that
    the training thread waits for, through the GIL); `drain`, which a run's end calls, does not
    wait for the interval."""
    from ftlab.tracking.reporter import SEND_INTERVAL_S, RunReporter
    from ftlab.tracking.spool import MetricSpool

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("reporting")).info.run_id
    spool = MetricSpool(tmp_path / "spool")
    spool.append([("train/loss", 1.0, 0, 0)])
    spool.commit()
    reporter = RunReporter(uri, run_id, spool, heartbeat_s=None).start()
    try:
        deadline = time.monotonic() + 60
        while spool.pending() and time.monotonic() < deadline:  # the first send: at once
            time.sleep(0.05)
        assert not spool.pending()
        spool.append([("train/loss", 0.5, 0, 1)])
        spool.commit()
        time.sleep(1.0)
        assert spool.pending(), f"sent again within {SEND_INTERVAL_S} s"
        assert reporter.drain(SEND_INTERVAL_S / 2), "drain waited for the send interval"
    finally:
        reporter.close(30)
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [0, 1]


TRAINING_PROBE = '''
import json, os, sys
import lightning.pytorch as L
import psutil

class Probe(L.Callback):
    """Notes, at the end of fitting, whether this (the training) process has loaded MLflow."""

    def __init__(self, out):
        self.out = out

    def on_train_end(self, trainer, pl_module):
        with open(self.out, "w") as file:
            rss_mb = psutil.Process().memory_info().rss / 2**20
            json.dump({"mlflow_loaded": "mlflow" in sys.modules, "rss_mb": rss_mb}, file)
'''


def test_a_new_run_leaves_mlflow_to_its_helper_process(workdir: Path) -> None:
    """`ftlab train` makes a new run's MLflow calls through its helper process (loaded while
    torch loads): the training process never imports MLflow when no model is logged, and yet the
    run holds everything (params, metrics, system metrics of the training process, the status),
    and the helper is gone when the command returns."""
    import json

    import psutil

    (workdir / "training_probe.py").write_text(TRAINING_PROBE)
    out = workdir / "probe.json"
    env = {**cli_env(), "PYTHONPATH": str(workdir)}
    result = run_ftlab(
        "train", *TINY_DIGITS_RUN, "trainer.max_epochs=1", "logger.log_model=false",
        "logger.system_metrics_interval=1", "hydra.run.dir=out",
        f"+callbacks.probe={{_target_: training_probe.Probe, out: '{out}'}}",
        cwd=workdir, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(out.read_text())
    assert probe["mlflow_loaded"] is False
    (run,) = all_runs(local_store(workdir))
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer.lr"] and "data.fingerprint" in run.data.params
    assert {"train/loss", "val/loss", "test/loss"} <= set(run.data.metrics)
    # The helper samples the training process (its own memory is a fraction of that).
    client = MlflowClient(local_store(workdir))
    history = client.get_metric_history(run.info.run_id, "system/process_memory_rss_megabytes")
    assert max(m.value for m in history) > 0.8 * probe["rss_mb"], (history, probe)
    left = [
        p for p in psutil.process_iter(["cmdline"])
        if "ftlab.tracking.helper" in " ".join(p.info["cmdline"] or []) and _cwd(p) == workdir
    ]  # fmt: skip
    assert left == []


def _cwd(process) -> Path | None:
    import psutil

    try:
        return Path(process.cwd())
    except psutil.Error:
        return None


def test_a_call_cut_short_by_a_signal_leaves_the_helper_in_step(tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM raises in the training process while it waits for the helper's answer;
    the helper still answers. That late answer must not be taken for the next call's, or the run
    could not be ended KILLED."""
    from ftlab.tracking.helper import HelperCalls
    from ftlab.tracking.spool import MetricSpool

    class Cut(Exception):
        pass

    def cut(*_: object) -> None:
        raise Cut

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    spool = MetricSpool(tmp_path / "spool")
    spool.append([("train/loss", 1.0, 0, 0)])
    spool.commit()
    helper = HelperCalls(uri)
    previous = signal.signal(signal.SIGALRM, cut)
    try:
        run_id = helper.create_run("signals", "cut", {})["run_id"]
        # The store refuses these sends (no such run), so drain waits out its timeout.
        helper.start_reporting("f" * 32, str(spool.directory), None, 0, 0, False)
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(Cut):
            helper.drain(3.0)
        outcome = helper.stop_reporting(0.1)  # its own answer, not drain's late one
        assert outcome["sent"] is False and "f" * 32 in outcome["last_error"], outcome
        assert helper.last_metric_steps(run_id) == {}
        helper.set_terminated(run_id, "KILLED")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        helper.shutdown()
    assert MlflowClient(uri).get_run(run_id).info.status == "KILLED"


def test_a_run_outlives_its_helper_process(tmp_path: Path) -> None:
    """Should the helper die mid-run (killed, out of memory), the training process takes its
    calls over: the spool still reaches the run, and the run still ends with its status."""
    import psutil

    from ftlab.tracking.helper import HelperCalls
    from ftlab.tracking.spool import MetricSpool

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    spool = MetricSpool(tmp_path / "spool")
    spool.append([("train/loss", 1.0, 0, 0)])
    spool.commit()
    helper = HelperCalls(uri)
    try:
        run_id = helper.create_run("outlive", "r", {})["run_id"]
        helper.start_reporting(run_id, str(spool.directory), None, 0, 0, False)
        (child,) = [
            p for p in psutil.Process().children()
            if "ftlab.tracking.helper" in " ".join(p.cmdline())
        ]  # fmt: skip
        child.kill()
        child.wait(30)
        spool.append([("train/loss", 0.5, 0, 1)])
        spool.commit()
        helper.set_tags(run_id, {"ftlab.after": "yes"})
        assert helper.stop_reporting(30)["sent"] is True
        helper.set_terminated(run_id, "FINISHED")
    finally:
        helper.shutdown()
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["ftlab.after"] == "yes"
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [0, 1]


def test_test_false_evaluates_nothing_on_the_test_split(workdir: Path) -> None:
    """`test=false`: no test pass, and no test report from the exported model either (which
    would be the same evaluation by another road); the run still records its weights and ends
    FINISHED."""
    result = run_ftlab(
        "train", *TINY_DIGITS_RUN, "trainer.max_epochs=1", "test=false", "logger.log_model=false",
        "hydra.run.dir=out", cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = all_runs(local_store(workdir))
    assert run.info.status == "FINISHED" and "ftlab.weights_sha256" in run.data.tags
    assert not [k for k in run.data.metrics if k.startswith("test/")]
    artifacts = {a.path for a in MlflowClient(local_store(workdir)).list_artifacts(run.info.run_id)}
    assert "checkpoints" in artifacts and "test_report" not in artifacts
