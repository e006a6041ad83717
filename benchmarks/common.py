"""Helpers every benchmark shares: composing ftlab configs in-process, timing steps, the machine
description, and writing results next to the table printed for people."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as L

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def compose(overrides: list[str], output_dir: Path):
    """The config `ftlab train OVERRIDES` would run, with a fixed output directory: `loss=auto`
    replaced by the loss it stands for, as `ftlab train` does in its checks."""
    from ftlab.config.checks import choose_auto_loss
    from ftlab.config.setup import compose_train

    cfg = compose_train(overrides, output_dir)
    choose_auto_loss(cfg)
    return cfg


class StepTimer(L.Callback):
    """Wall time of every optimizer step, from one batch end to the next."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last: float | None = None

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p10": ordered[len(ordered) // 10],
        "p90": ordered[(9 * len(ordered)) // 10],
        "n": len(ordered),
    }


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write_results(name: str, results: dict[str, Any], quick: bool = False) -> Path:
    """benchmarks/results/NAME.json; quick (or dry) runs go to NAME-quick.json, never committed."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}{'-quick' if quick else ''}.json"
    path.write_text(json.dumps({"machine": machine(), **results}, indent=2) + "\n")
    return path


def timed_sweep(workdir: Path, study_name: str, overrides: list[str]) -> tuple[float, Any]:
    """`ftlab train hparams_search=lr_optimizer ... OVERRIDES` on digits in `workdir`, untracked;
    returns its wall time and the Optuna study it left."""
    import subprocess
    import sys

    import optuna

    ftlab = str(Path(sys.executable).parent / "ftlab")
    args = [
        "train", "hparams_search=lr_optimizer", "experiment=digits_scratch", "logger=none",
        f"hydra.sweeper.study_name={study_name}", *overrides,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    started = time.perf_counter()
    subprocess.run([ftlab, *args], cwd=workdir, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    storage = f"sqlite:///{workdir / 'mlruns' / 'optuna.db'}"
    return seconds, optuna.load_study(study_name=study_name, storage=storage)
