"""Past one machine: two "nodes" on loopback, one process each, through Lightning's own cluster
environments (torchrun's, and SLURM's with srun's variables simulated). They must train as one node
with two processes does, into one MLflow run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import TINY_DIGITS_RUN, all_runs, cli_env, free_port, local_store, run_ftlab

DDP = [*TINY_DIGITS_RUN, "trainer=ddp_cpu", "logger.system_metrics=false", "logger.log_model=false"]
TWO_NODES = [*DDP, "trainer.devices=1", "trainer.num_nodes=2", "hydra.run.dir=out"]


def _losses(workdir: Path) -> list[float]:
    (run,) = all_runs(local_store(workdir))
    history = MlflowClient(local_store(workdir)).get_metric_history(run.info.run_id, "train/loss")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


@pytest.fixture(scope="module")
def one_node_two_processes(tmp_path_factory) -> list[float]:
    workdir = tmp_path_factory.mktemp("one_node")
    result = run_ftlab("train", *DDP, "hydra.run.dir=out", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return _losses(workdir)


def _start_nodes(workdir: Path, node_env) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            node_env(rank)[0],
            cwd=workdir,
            env=node_env(rank)[1],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]


def _torchrun_nodes(port: int, *module_and_args: str):
    """The command of each of two torchrun "nodes" on loopback, one process per node."""

    def node(rank: int):
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
            "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
            "-m", *module_and_args,
        ]  # fmt: skip
        return command, cli_env()

    return node


def _finish(nodes: list[subprocess.Popen]) -> None:
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert all(node.returncode == 0 for node in nodes), "\n----\n".join(o[-3000:] for o in outputs)


def _check_one_run(workdir: Path, reference: list[float]) -> str:
    (run,) = all_runs(local_store(workdir))  # rank 0 alone writes to MLflow
    assert run.info.status == "FINISHED"
    assert run.data.tags["ftlab.world_size"] == "2" and run.data.tags["ftlab.num_nodes"] == "2"
    assert run.data.tags["ftlab.global_batch_size"] == str(2 * 64)
    assert _losses(workdir) == pytest.approx(reference, rel=1e-6)
    checkpoints = sorted(p.name for p in (workdir / "out").rglob("*.ckpt"))
    assert checkpoints == ["best.ckpt", "last.ckpt"]  # written once, by rank 0
    return run.info.run_id


def test_two_torchrun_nodes_train_like_one_node_with_two_processes(
    workdir: Path, one_node_two_processes: list[float]
) -> None:
    _finish(_start_nodes(workdir, _torchrun_nodes(free_port(), "ftlab.train", *TWO_NODES)))
    run_id = _check_one_run(workdir, one_node_two_processes)
    refused = run_ftlab("reproduce", run_id, cwd=workdir)
    assert refused.returncode == 2
    last = refused.stderr.strip().splitlines()[-1]
    assert "trained on 2 nodes x 1 processes" in last and "torchrun --nnodes 2" in last


def test_two_slurm_tasks_train_like_one_node_with_two_processes(
    workdir: Path, one_node_two_processes: list[float]
) -> None:
    """srun starts one task per node with these variables; Lightning's SLURM environment reads
    them (here both "nodes" are this machine)."""
    port = free_port()

    def node(rank: int):
        env = {
            **cli_env(), "SLURM_NTASKS": "2", "SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "1",
            "SLURM_PROCID": str(rank), "SLURM_LOCALID": "0", "SLURM_NODEID": str(rank),
            "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "ftlab", "SLURM_NODELIST": "127.0.0.1",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
        }  # fmt: skip
        env.pop("LOCAL_RANK", None)
        return [sys.executable, "-m", "ftlab.train", *TWO_NODES], env

    _finish(_start_nodes(workdir, node))
    _check_one_run(workdir, one_node_two_processes)
    assert not os.environ.get("SLURM_NTASKS")  # the test's own process was left alone


def test_a_killed_two_node_run_resumes_on_two_nodes_into_the_same_run(workdir: Path) -> None:
    longer = [*TWO_NODES, "data.max_samples=600", "trainer.max_epochs=8"]
    longer += ["callbacks.last_checkpoint.every_n_steps=2"]
    last = workdir / "out" / "checkpoints" / "last.ckpt"
    nodes = _start_nodes(workdir, _torchrun_nodes(free_port(), "ftlab.train", *longer))
    try:
        deadline = time.monotonic() + 300
        while not (last.is_file() and torch.load(last, weights_only=True)["global_step"] >= 4):
            assert all(n.poll() is None for n in nodes), "training ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        for node in nodes:  # kill -9 of both nodes: torchrun's workers have their own sessions
            for process in [*psutil.Process(node.pid).children(recursive=True), node]:
                with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
            node.wait(timeout=30)
    (killed,) = all_runs(local_store(workdir))
    assert killed.info.status == "RUNNING"

    resume = _torchrun_nodes(free_port(), "ftlab", "resume", killed.info.run_id)
    _finish(_start_nodes(workdir, resume))
    (run,) = all_runs(local_store(workdir))  # the same run, on the same world size
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["ftlab.resume_count"] == "1"
    assert run.data.tags["ftlab.world_size"] == "2"
    history = MlflowClient(local_store(workdir)).get_metric_history(run.info.run_id, "val/loss")
    epochs = sorted(m.step for m in history)
    assert len(epochs) == 8 and epochs == sorted(set(epochs))  # every epoch once, none twice
