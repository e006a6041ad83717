"""Asynchronous trials (`hydra.sweeper.workers=N`): N worker processes, each taking the next trial
the moment its last one ends, so a slow trial never holds the others back (Hydra's launchers run
trials in batches that wait for their slowest).

Each worker is a loky process pool of one (loky is joblib's engine: it pickles Hydra's task
function with cloudpickle and keeps the process between trials, so imports and CUDA start once per
worker, not once per trial). A worker owns one device: its own GPU (`CUDA_VISIBLE_DEVICES`, set
before CUDA starts) or, on CPU, an equal share of the cores (torch threads = cores / workers).
Each trial runs exactly as Hydra's launchers run a job: the sweep config composed with the trial's
overrides, its own output folder, `.hydra/` files and log.

The sweep's own process never imports torch or Lightning: for ftlab's app the workers start
importing them the moment the pool exists, and the first worker checks the job config (the check
reads the targets' signatures, so it needs those imports too) while the others warm up. Idle
workers are killed at the end rather than asked to exit: every file and run a trial writes is
closed before its result comes back, and an interpreter holding torch and Lightning takes seconds
to tear itself down.
"""

from __future__ import annotations

import glob
import os
import sys
from concurrent.futures import Future
from typing import Any

from ftlab.collector import import_for_life, import_for_trials


def worker_devices(workers: int, devices: Any) -> list[dict[str, Any]]:
    """One {device, threads} per worker: the GPUs given (or all visible), else CPU shares."""
    gpus = [str(d) for d in devices] if devices else _visible_gpus()
    if gpus:
        return [{"device": gpus[i % len(gpus)], "threads": None} for i in range(workers)]
    threads = max(1, (os.cpu_count() or 1) // workers)
    return [{"device": None, "threads": threads} for _ in range(workers)]


def _visible_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip()]
    if sys.platform == "linux" and not glob.glob("/dev/nvidia[0-9]*"):
        return []  # no NVIDIA device nodes: no GPU to count, and no need to import torch here
    import torch  # the sweeper's own process never starts CUDA: it only counts

    return [str(i) for i in range(torch.cuda.device_count())]


class WorkerPool:
    def __init__(self, workers: int, devices: Any, job: dict[str, Any], warm_up: bool) -> None:
        from joblib.externals.loky import ProcessPoolExecutor

        self.slots = worker_devices(workers, devices)
        self.job = job  # hydra_context, task_function, config, singleton_state
        self.executors = [
            ProcessPoolExecutor(
                max_workers=1, initializer=_pin, initargs=(s["device"], s["threads"])
            )
            for s in self.slots
        ]
        for executor in self.executors:  # start the processes (and ftlab's imports) now
            executor.submit(import_for_trials if warm_up else _start)
        self.busy: dict[Future, int] = {}

    def call(self, function: Any, *args: Any) -> Any:
        """`function(*args)` in the first worker; its result, or its exception raised here."""
        return self.executors[0].submit(function, *args).result()

    def free_worker(self) -> int | None:
        taken = set(self.busy.values())
        return next((i for i in range(len(self.executors)) if i not in taken), None)

    def submit(self, worker: int, index: int, overrides: list[str]) -> Future:
        future = self.executors[worker].submit(run_trial_job, index, overrides, **self.job)
        self.busy[future] = worker
        return future

    def release(self, future: Future) -> None:
        self.busy.pop(future, None)

    def close(self) -> None:
        """Stop the workers at once: idle ones have nothing left to write, and the trials of busy
        ones (Ctrl-C, a failed sweep) are marked interrupted by the sweeper and run again on
        resume."""
        for executor in self.executors:
            executor.shutdown(wait=False, kill_workers=True)


def _start() -> None:
    """Nothing: submitting it starts the worker process."""


def _pin(device: str | None, threads: int | None) -> None:
    """The worker's device, before anything in it touches CUDA or sizes a thread pool."""
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import_for_life("torch")
        import torch

        torch.set_num_threads(threads)


def run_trial_job(
    index: int,
    overrides: list[str],
    hydra_context: Any,
    task_function: Any,
    config: Any,
    singleton_state: Any,
) -> Any:
    """One trial in a worker, as Hydra's launchers run a job; returns Hydra's JobReturn."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job, setup_globals
    from omegaconf import open_dict

    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{index}"
        sweep_config.hydra.job.num = index
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
