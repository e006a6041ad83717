"""Asynchronous trials (`hydra.sweeper.workers=N`): N worker processes, each taking the next trial
the moment its last one ends, so a slow trial never holds the others back (Hydra's launchers run
trials in batches that wait for their slowest).

Each worker is a loky process pool of one (loky is joblib's engine: it pickles Hydra's task
function with cloudpickle and keeps the process between trials, so imports and CUDA start once per
worker, not once per trial). A worker owns one device: its own GPU (`CUDA_VISIBLE_DEVICES`, set
before CUDA starts) or, on CPU, an equal share of the cores (torch threads = cores / workers).
Each trial runs exactly as Hydra's launchers run a job: the sweep config composed with the trial's
overrides, its own output folder, `.hydra/` files and log.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from typing import Any


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
    import torch  # the sweeper's own process never starts CUDA: it only counts

    return [str(i) for i in range(torch.cuda.device_count())]


class WorkerPool:
    def __init__(self, workers: int, devices: Any, job: dict[str, Any]) -> None:
        from joblib.externals.loky import ProcessPoolExecutor

        self.slots = worker_devices(workers, devices)
        self.job = job  # hydra_context, task_function, config, singleton_state
        self.executors = [
            ProcessPoolExecutor(
                max_workers=1, initializer=_pin, initargs=(s["device"], s["threads"])
            )
            for s in self.slots
        ]
        self.busy: dict[Future, int] = {}

    def free_worker(self) -> int | None:
        taken = set(self.busy.values())
        return next((i for i in range(len(self.executors)) if i not in taken), None)

    def submit(self, worker: int, index: int, overrides: list[str]) -> Future:
        future = self.executors[worker].submit(run_trial_job, index, overrides, **self.job)
        self.busy[future] = worker
        return future

    def release(self, future: Future) -> None:
        self.busy.pop(future, None)

    def shutdown(self, kill: bool = False) -> None:
        """Stop the workers: after their trials, or at once (Ctrl-C: the trials are marked
        interrupted and run again on resume)."""
        for executor in self.executors:
            executor.shutdown(wait=not kill, kill_workers=kill)


def _pin(device: str | None, threads: int | None) -> None:
    """The worker's device, before anything in it touches CUDA or sizes a thread pool."""
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
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
