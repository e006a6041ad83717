"""`ftlab reproduce` and `ftlab resume` through the CLI, on tiny models and real local stores."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

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
    refused,
    run_ftlab,
    small_disk,
    store_run,
    tiny_config,
)
from ftlab.callbacks import checkpoints
from ftlab.callbacks.checkpoints import AtomicCheckpointIO, _snapshot, remove_stale_partials
from ftlab.config.setup import compose_train
from ftlab.data.sampling import EpochShuffle

NO_SYSTEM_METRICS = "logger.system_metrics=false"


def _only_run(workdir: Path):
    (run,) = all_runs(local_store(workdir))
    return run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished tiny digits run: (its project directory, its run id)."""
    workdir = tmp_path_factory.mktemp("finished")
    result = run_ftlab(
        "train", *TINY_DIGITS_RUN, NO_SYSTEM_METRICS, "hydra.run.dir=out", cwd=workdir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, _only_run(workdir).info.run_id


def test_reproduce_check_gives_equal_metrics_and_weights(finished_run) -> None:
    workdir, run_id = finished_run
    result = run_ftlab("reproduce", run_id, "--check", cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "REPRODUCED" in result.stdout
    client = MlflowClient(local_store(workdir))
    (new,) = client.search_runs(
        [client.get_run(run_id).info.experiment_id],
        filter_string=f"tags.`ftlab.reproduces` = '{run_id}'",
    )
    original = client.get_run(run_id)
    assert new.info.status == "FINISHED"
    assert new.data.metrics["test/loss"] == original.data.metrics["test/loss"]
    assert new.data.tags["ftlab.weights_sha256"] == original.data.tags["ftlab.weights_sha256"]
    assert new.data.tags["ftlab.reproduce.differences"] == "none"


def test_rerun_from_the_saved_config_files_alone(finished_run) -> None:
    """`ftlab train --config-path <output dir>/.hydra --config-name config`, no store needed."""
    workdir, run_id = finished_run
    result = run_ftlab(
        "train",
        "--config-path",
        str(workdir / "out" / ".hydra"),
        "--config-name",
        "config",
        "logger.enabled=false",  # groups cannot be swapped here: the file is the whole config
        "hydra.run.dir=again",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "again" / "checkpoints" / "best.ckpt").is_file()
    original = MlflowClient(local_store(workdir)).get_run(run_id).data.metrics["test/loss"]
    assert f"{original:.4f}" in result.stdout  # the results table shows the same test loss


def test_changed_data_fails_the_check_and_names_the_fingerprint(
    workdir: Path, vader_csv: Path
) -> None:
    data = workdir / "words.csv"
    shutil.copy(vader_csv, data)
    args = ["data=csv", f"data.path={data}", "data.text_column=word", "loss=cross_entropy"]
    trained = run_ftlab("train", *TINY_TEXT, *args, NO_SYSTEM_METRICS, cwd=workdir)
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_id = _only_run(workdir).info.run_id
    lines = data.read_text().splitlines()
    flipped = [
        line.replace(",positive,", ",negative,") if i % 3 == 0 else line
        for i, line in enumerate(lines)
    ]
    data.write_text("\n".join(flipped) + "\n")
    result = run_ftlab("reproduce", run_id, "--check", cwd=workdir)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "data fingerprint" in result.stdout
    assert "DIFFERENT" in result.stdout


def test_sigkilled_run_resumes_into_the_same_run_and_matches_an_uninterrupted_one(
    workdir: Path,
) -> None:
    args = [
        "experiment=digits_scratch",
        "data.max_samples=600",
        "model.backbone.width=8",
        "trainer.max_epochs=4",
        "trainer.log_every_n_steps=1",
        "callbacks.last_checkpoint.every_n_steps=3",  # 7 steps per epoch: most saves mid-epoch
        "logger.log_model=false",
        NO_SYSTEM_METRICS,
        "hydra.run.dir=out",
    ]
    last = workdir / "out" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen([FTLAB, "train", *args], cwd=workdir, env=cli_env())
    try:
        deadline = time.monotonic() + 180
        while True:  # kill -9 after a mid-epoch save in epoch 1+: no handler, no clean-up runs
            assert process.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline
            if last.is_file():
                step = torch.load(last, weights_only=True)["global_step"]
                if step > 7 and step % 7:
                    break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    killed = _only_run(workdir)
    assert killed.info.status == "RUNNING"  # nobody could close it
    # What a kill in the middle of a save leaves: the killed process's half-written file.
    half_written = last.with_name(f".last.ckpt.{socket.gethostname()}.{process.pid}.partial")
    half_written.write_bytes(b"PK" + bytes(1000))

    resumed = run_ftlab("resume", killed.info.run_id, cwd=workdir)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert not half_written.exists(), "the killed process's temporary file was left behind"
    run = _only_run(workdir)  # the same run, no new one
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["ftlab.resume_count"] == "1"

    # An uninterrupted run of the same config: `reproduce --check` compares it with the resumed one.
    check = run_ftlab("reproduce", run.info.run_id, "--check", cwd=workdir)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    client = MlflowClient(local_store(workdir))
    uninterrupted = next(
        r for r in all_runs(local_store(workdir)) if r.info.run_id != run.info.run_id
    )
    for key in ("train/loss", "val/loss"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        reference = [m.step for m in client.get_metric_history(uninterrupted.info.run_id, key)]
        assert steps == sorted(set(steps)), f"{key}: duplicate or unordered steps {steps}"
        assert steps == reference, (
            f"{key}: {sorted(set(steps) ^ set(reference))} differ from an uninterrupted run"
        )


@pytest.mark.parametrize(
    "case",
    ["unknown_run", "no_config", "finished", "checkpoint_gone", "newer_keys"],
)
def test_bad_input_is_one_line_and_creates_nothing(workdir: Path, case: str) -> None:
    config = tiny_config()
    if case == "unknown_run":
        store_run(workdir, config)
        message = refused(workdir, "resume", "0123456789abcdef0123456789abcdef")
        assert "no run with that id or name" in message
    elif case == "no_config":
        run_id = store_run(workdir, None)
        message = refused(workdir, "reproduce", run_id)
        assert "has no logged config" in message
    elif case == "finished":
        run_id = store_run(workdir, config)
        message = refused(workdir, "resume", run_id)
        assert "is FINISHED: nothing to resume" in message
    elif case == "checkpoint_gone":
        run_id = store_run(
            workdir, config, status="KILLED", **{"ftlab.output_dir": str(workdir / "gone")}
        )
        message = refused(workdir, "resume", run_id)
        assert "no last checkpoint" in message and "gone" in message
    else:
        config["trainer"]["new_knob"] = 3
        run_id = store_run(workdir, config, **{"ftlab.version": "9.0.0"})
        message = refused(workdir, "reproduce", run_id)
        assert "trainer.new_knob" in message and "9.0.0" in message


def test_reproduce_with_a_full_temp_folder_names_the_disk(finished_run, tmp_path: Path) -> None:
    workdir, run_id = finished_run
    before = len(all_runs(local_store(workdir)))  # other tests reproduce this run too
    with small_disk(tmp_path / "small", "size=1m,nr_inodes=2") as small:  # one folder, no file
        result = run_ftlab(
            "reproduce", run_id, cwd=workdir, env={**cli_env(), "TMPDIR": str(small)}
        )
    assert result.returncode == 2, result.stderr[-3000:]
    # Not "run ... has no logged config": the artifact is there, the disk to fetch it to is full.
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: no space left on the disk of {small}: free some space there"
    ), result.stderr[-3000:]
    assert len(all_runs(local_store(workdir))) == before  # no new run


def test_a_sweep_trial_reproduces(workdir: Path) -> None:
    sweep = run_ftlab(
        "train",
        "-m",
        *TINY_DIGITS_RUN,
        NO_SYSTEM_METRICS,
        "logger.log_model=false",
        "hparams_search=lr_optimizer",
        "hydra.sweeper.n_trials=1",
        cwd=workdir,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    (trial,) = [r for r in all_runs(local_store(workdir)) if "ftlab.trial_number" in r.data.tags]
    result = run_ftlab("reproduce", trial.info.run_id, "--check", cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# ------------------------------------------------------------------ units
def test_data_order_depends_on_seed_and_epoch_only() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        sampler = EpochShuffle(50, seed, torch.Generator())
        torch.manual_seed(epoch * 7)  # the global RNG must not matter
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(1, 3) == order(1, 3)
    assert order(1, 3) != order(1, 4) and order(1, 3) != order(2, 3)
    assert sorted(order(1, 3)) == list(range(50))


NEEDS_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=NEEDS_GPU)])
def test_a_checkpoint_copy_is_in_host_memory_and_apart_from_training(device: str) -> None:
    """What the background writer gets: every tensor copied into host memory (on a GPU a clone
    would hold a second training state there), so the next steps' in-place updates leave it
    alone; containers and their kinds kept, plain values shared."""
    weights = torch.ones(4, device=device)
    moments = {"exp_avg": torch.zeros(4, device=device), "step": torch.tensor(3.0, device=device)}
    checkpoint = {"state_dict": {"w": weights}, "optimizer_states": [moments], "epoch": 1}
    copy = _snapshot(checkpoint)
    weights.add_(1)
    moments["exp_avg"].add_(1)
    tensors = [copy["state_dict"]["w"], *copy["optimizer_states"][0].values()]
    assert all(t.device.type == "cpu" for t in tensors)
    assert copy["state_dict"]["w"].tolist() == [1.0] * 4
    assert copy["optimizer_states"][0]["exp_avg"].tolist() == [0.0] * 4
    assert isinstance(copy["optimizer_states"], list) and copy["epoch"] == 1


class _Unsaveable:
    """A checkpoint value whose pickling fails (once `after` is set, when given)."""

    def __init__(self, after: threading.Event | None = None) -> None:
        self.after = after

    def __reduce__(self):
        if self.after is not None:
            self.after.wait(30)
        raise RuntimeError("killed mid-save")


@pytest.mark.parametrize("write_host_state_now", [True, False], ids=["cpu", "gpu path"])
def test_a_failed_save_leaves_the_previous_checkpoint_whole(
    tmp_path: Path, write_host_state_now: bool
) -> None:
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO(write_host_state_now=write_host_state_now)
    io.save_checkpoint({"step": torch.tensor(1)}, target)
    io.wait()
    with pytest.raises(RuntimeError, match="killed mid-save"):
        io.save_checkpoint({"step": torch.tensor(2), "bad": _Unsaveable()}, target)
        io.wait()  # on the GPU path the write runs in the background: its failure comes out here
    io.teardown()  # raised once: nothing left to raise at the end of fit
    assert torch.load(target, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_failed_rename_in_the_background_is_raised_once_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU path's background half (fsync, rename) fails: the next save of that file raises
    it, once, before writing; the checkpoint before it stays whole and no temporary file stays."""
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": torch.tensor(1)}, target)
    io.wait()
    real_replace, failures = os.replace, []

    def failing_once(source: Any, destination: Any) -> None:
        if not failures:
            failures.append(source)
            raise OSError("disk full")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", failing_once)
    io.save_checkpoint({"step": torch.tensor(2)}, target)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": torch.tensor(3)}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert torch.load(target, weights_only=True)["step"] == 1
    io.save_checkpoint({"step": torch.tensor(4)}, target)
    io.teardown()
    assert torch.load(target, weights_only=True)["step"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


class _RecordsItsWriter:
    """A checkpoint value that records which thread pickled it."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def __reduce__(self):
        self.threads.append(threading.current_thread().name)
        return (int, (0,))


def test_a_host_memory_save_is_written_at_once_and_renamed_after_its_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """State in host memory (training on the CPU): the save returns with the file written from
    the state as it was, holding no copy; the fsync runs in the background, and only after it
    does the name move to the new file."""
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": torch.tensor(1)}, target)
    io.wait()
    fsync_started, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    fsync_threads = []

    def slow_fsync(descriptor: int) -> None:
        fsync_threads.append(threading.current_thread().name)
        fsync_started.set()
        release.wait(30)
        real_fsync(descriptor)

    def no_copy(value: Any) -> Any:
        raise AssertionError("the training state was copied")

    monkeypatch.setattr(os, "fsync", slow_fsync)
    monkeypatch.setattr(checkpoints, "_snapshot", no_copy)
    weights, written_by = torch.zeros(3), _RecordsItsWriter()
    io.save_checkpoint({"step": torch.tensor(2), "w": weights, "by": written_by}, target)
    weights.add_(1)  # the next optimizer step, in place
    fsync_started.wait(10)
    name_before_fsync = torch.load(target, weights_only=True)["step"].item()
    release.set()
    io.teardown()
    assert written_by.threads == [threading.current_thread().name], "not written at once"
    assert fsync_threads and fsync_threads[0].startswith("ftlab-checkpoint"), fsync_threads
    assert name_before_fsync == 1, "renamed before its data was on disk"
    with torch.serialization.safe_globals([int]):  # what the recorder pickles as
        saved = torch.load(target, weights_only=True)
    assert saved["step"] == 2 and saved["w"].tolist() == [0.0, 0.0, 0.0]
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_save_reaches_the_disk_as_data_then_name_then_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's data is fsynced before the rename, and the folder after it: only then is the new
    name itself durable, before a later removal of the previous best could reach the disk first."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def ours(path: str) -> bool:  # other threads of this process may write elsewhere meanwhile
        return Path(path).resolve().is_relative_to(tmp_path.resolve())

    def recording_fsync(descriptor: int) -> None:
        if ours(os.readlink(f"/proc/self/fd/{descriptor}")):
            is_folder = stat.S_ISDIR(os.fstat(descriptor).st_mode)
            events.append("fsync folder" if is_folder else "fsync file")
        real_fsync(descriptor)

    def recording_replace(source: Any, destination: Any) -> None:
        if ours(str(destination)):
            events.append(f"rename to {Path(destination).name}")
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": torch.tensor(1)}, tmp_path / "last.ckpt")
    io.wait()
    with io.last_of_fit():
        io.save_checkpoint({"step": torch.tensor(2)}, tmp_path / "best.ckpt")
    io.teardown()
    once = ["fsync file", "rename to {}", "fsync folder"]
    assert events == [e.format("last.ckpt") for e in once] + [e.format("best.ckpt") for e in once]


@NEEDS_GPU
def test_a_gpu_state_is_copied_to_the_host_and_written_in_the_background(tmp_path: Path) -> None:
    """State on an accelerator: the save returns before the write (done by the writer thread),
    and the file holds the state as it was at the save, not after the next in-place step."""
    moments, written_by = torch.zeros(3, device="cuda"), _RecordsItsWriter()
    io = AtomicCheckpointIO()
    io.save_checkpoint(
        {"optimizer_states": [{"exp_avg": moments}], "by": written_by}, tmp_path / "last.ckpt"
    )
    moments.add_(1)
    io.teardown()
    with torch.serialization.safe_globals([int]):
        saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["optimizer_states"][0]["exp_avg"].tolist() == [0.0, 0.0, 0.0]
    assert written_by.threads[0].startswith("ftlab-checkpoint"), written_by.threads


def test_stale_partial_files_of_dead_processes_on_this_host_are_removed(tmp_path: Path) -> None:
    """Only a temporary file whose writer is gone is removed: not this process's, not a running
    process's, not one another host wrote, and never a checkpoint."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    host = socket.gethostname()
    names = {
        "dead": f".last.ckpt.{host}.{gone.pid}.partial",
        "running": f".last.ckpt.{host}.{running.pid}.partial",
        "this process": f".best.ckpt.{host}.{os.getpid()}.partial",
        "other host": f".last.ckpt.elsewhere.{gone.pid}.partial",
        "checkpoint": "last.ckpt",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    try:
        removed = remove_stale_partials(tmp_path)
    finally:
        running.kill()
        running.wait()
    assert [p.name for p in removed] == [names["dead"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        name for kind, name in names.items() if kind != "dead"
    )
    assert remove_stale_partials(tmp_path / "no such folder") == []


class _WaitsToBeWritten:
    """A checkpoint value whose pickling blocks until `release` is set: a write in progress."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def __reduce__(self):
        self.release.wait(30)
        return (int, (0,))


def test_a_failed_write_is_raised_after_the_work_queued_behind_it_finished(
    tmp_path: Path,
) -> None:
    """The GPU path: a failed background write comes out of `wait()` only once the saves queued
    behind it are written, so nothing still runs behind the error."""
    fail, release = threading.Event(), threading.Event()
    io = AtomicCheckpointIO(write_host_state_now=False)
    io.save_checkpoint({"bad": _Unsaveable(after=fail)}, tmp_path / "best.ckpt")
    io.save_checkpoint(
        {"step": torch.tensor(1), "slow": _WaitsToBeWritten(release)}, tmp_path / "last.ckpt"
    )
    threading.Timer(0.3, fail.set).start()
    threading.Timer(0.6, release.set).start()
    with pytest.raises(RuntimeError, match="killed mid-save"):
        io.wait()
    written_when_raised = [p.name for p in tmp_path.iterdir()]
    io.teardown()
    assert written_when_raised == ["last.ckpt"]


def test_checkpoint_writes_queue_in_order_without_waiting_for_each_other(tmp_path: Path) -> None:
    """An epoch's best and last checkpoints: the second save returns while the first is still
    being written, and a removal queued after them happens after them."""
    release = threading.Event()
    io = AtomicCheckpointIO(write_host_state_now=False)  # the path of state on a GPU
    io.save_checkpoint(
        {"step": torch.tensor(1), "slow": _WaitsToBeWritten(release)}, tmp_path / "best.ckpt"
    )
    io.save_checkpoint({"step": torch.tensor(1)}, tmp_path / "last.ckpt")
    io.remove_checkpoint(tmp_path / "best.ckpt")
    written_before_release = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".ckpt")
    release.set()
    io.teardown()
    assert written_before_release == [], "a save waited for the write before it"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["step"] == 1


def test_a_queued_removal_holds_no_checkpoint_copy(tmp_path: Path) -> None:
    """At most `IN_FLIGHT` checkpoint copies wait in memory to be written; a removal queued
    behind a write holds none, so the next save does not wait for that write, and the one after
    it, with two copies held, does."""
    release = threading.Event()
    io = AtomicCheckpointIO(write_host_state_now=False)  # the path of state on a GPU
    assert io.IN_FLIGHT == 2
    io.save_checkpoint(
        {"step": torch.tensor(1), "slow": _WaitsToBeWritten(release)}, tmp_path / "best.ckpt"
    )
    io.remove_checkpoint(tmp_path / "old-best.ckpt")
    returned = []

    def save(name: str) -> None:
        io.save_checkpoint({"step": torch.tensor(2)}, tmp_path / name)
        returned.append(name)

    second = threading.Thread(target=save, args=("last.ckpt",))
    second.start()
    second.join(timeout=10)
    third = threading.Thread(target=save, args=("later.ckpt",))
    third.start()
    third.join(timeout=1)
    returned_before_release = list(returned)
    release.set()
    second.join(timeout=30)
    third.join(timeout=30)
    io.teardown()
    assert returned_before_release == ["last.ckpt"], "a removal counted as a copy held"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt", "later.ckpt"]


def test_the_last_save_of_a_fit_is_written_at_once_after_earlier_writes_of_its_file(
    tmp_path: Path,
) -> None:
    """Inside `last_of_fit()` a save returns with its file written, beside a write of another
    file still in progress, and after an earlier queued write of the same file."""
    release = threading.Event()
    io = AtomicCheckpointIO(write_host_state_now=False)  # the path of state on a GPU
    io.save_checkpoint(
        {"step": torch.tensor(1), "slow": _WaitsToBeWritten(release)}, tmp_path / "best.ckpt"
    )
    with io.last_of_fit():
        io.save_checkpoint({"step": torch.tensor(1)}, tmp_path / "last.ckpt")
    written_beside_a_slow_write = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".ckpt")
    release.set()
    io.wait()

    second_release = threading.Event()
    io.save_checkpoint(
        {"step": torch.tensor(2), "slow": _WaitsToBeWritten(second_release)},
        tmp_path / "last.ckpt",
    )
    returned = threading.Event()

    def save_last_of_fit() -> None:
        with io.last_of_fit():
            io.save_checkpoint({"step": torch.tensor(3)}, tmp_path / "last.ckpt")
        returned.set()

    saver = threading.Thread(target=save_last_of_fit)
    saver.start()
    returned_before_the_earlier_write = returned.wait(1)
    second_release.set()
    saver.join(timeout=30)
    io.teardown()
    assert written_beside_a_slow_write == ["last.ckpt"]
    assert not returned_before_the_earlier_write, "did not wait for the earlier write of its file"
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["step"] == 3


@pytest.mark.parametrize(
    ("ends_by", "overrides", "steps_saved"),
    [
        ("max_epochs", ["trainer.max_epochs=3"], 3),
        (  # half-way through the second epoch of 4 batches
            "max_steps",
            ["trainer.max_epochs=3", "trainer.limit_train_batches=4", "trainer.max_steps=6"],
            2,
        ),
        (
            "early stopping",
            [
                "trainer.max_epochs=4",
                "callbacks.early_stopping.patience=1",
                "+callbacks.early_stopping.min_delta=1000",  # no epoch after the first improves
            ],
            2,
        ),
    ],
)
def test_only_the_fits_last_save_is_written_without_a_copy(
    tmp_path: Path, ends_by: str, overrides: list[str], steps_saved: int
) -> None:
    """However the fit ends, its last save of `last.ckpt` is the only one written at once
    (`last_of_fit`, fsync included); the ones before it leave their fsync (on a GPU, their write
    too) to the background writer, as training goes on."""
    import lightning.pytorch as L

    from ftlab import builders

    class Recording(AtomicCheckpointIO):
        def __init__(self) -> None:
            super().__init__()
            self.saves: list[tuple[str, int, bool]] = []

        def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
            self.saves.append((Path(path).name, checkpoint["global_step"], self._last_of_fit))
            super().save_checkpoint(checkpoint, path, storage_options)

    def fit(extra: list[str]) -> tuple[Recording, L.Trainer]:
        cfg = compose_train(
            [*TINY_DIGITS_RUN, "logger=none", "trainer.enable_progress_bar=false", *extra],
            output_dir=str(tmp_path / "run"),
        )
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = builders.build_datamodule(cfg)
        model = builders.build_model(cfg, datamodule)
        trainer = builders.build_trainer(cfg, builders.build_callbacks(cfg, with_logger=False))
        recording = trainer.strategy.checkpoint_io = Recording()
        trainer.fit(model, datamodule=datamodule)
        return recording, trainer

    recording, trainer = fit(overrides)
    last_saves = [(step, at_once) for name, step, at_once in recording.saves if name == "last.ckpt"]
    assert len(last_saves) == steps_saved
    assert [at_once for _, at_once in last_saves] == [False] * (steps_saved - 1) + [True]
    assert last_saves[-1][0] == trainer.global_step
    assert not any(at_once for name, _, at_once in recording.saves if name != "last.ckpt")
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == trainer.global_step


def test_resume_mid_epoch_equals_an_uninterrupted_fit(tmp_path: Path) -> None:
    """In-process: stop after a mid-epoch step checkpoint, resume, compare weights bitwise."""
    import lightning.pytorch as L

    from ftlab import builders
    from ftlab.models.weights import state_sha256

    class StopAtStep(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if trainer.global_step == 11:  # the step-9 checkpoint is 1 batch into epoch 2
                # (saved at the start of the batch that would make step 10)
                raise KeyboardInterrupt

    def fit(out: Path, ckpt: Path | None = None, stop: bool = False):
        cfg = compose_train(
            [
                *TINY_DIGITS_RUN,
                "trainer.max_epochs=3",
                "logger=none",
                "trainer.enable_progress_bar=false",
                "callbacks.last_checkpoint.every_n_steps=3",
            ],
            output_dir=str(out),
        )
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = builders.build_datamodule(cfg)
        model = builders.build_model(cfg, datamodule)
        callbacks = builders.build_callbacks(cfg, with_logger=False)
        trainer = builders.build_trainer(cfg, callbacks + ([StopAtStep()] if stop else []))
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        except SystemExit:  # Lightning's answer to KeyboardInterrupt
            assert stop
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        return state_sha256(model), metrics

    uninterrupted = fit(tmp_path / "a")
    fit(tmp_path / "b", stop=True)
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 9
    assert fit(tmp_path / "b", ckpt=last) == uninterrupted
