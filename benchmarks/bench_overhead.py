"""Overhead against plain PyTorch: the same fine-tune as `ftlab train` (MLflow logging, system
metrics, checkpointing and ftlab's callbacks on, as users run it) and as a hand-written loop
(plain_loop.py: same data, initial weights, seed, batch, steps, optimizer, schedule and
deterministic settings; validation and a best/last checkpoint each epoch).

Each side runs in its own process (peak memory is per process), alternating, several rounds.
Figures: median step time after warm-up (steps that hold an epoch end's validation and checkpoint
left out) and its ratio; fit wall time (all steps, validations and checkpoints); peak memory (RSS
on CPU, max allocated on CUDA); losses of the first steps (same batches and dropout masks: equal
up to float rounding) and the mean of the last tenth of steps. The run's test pass and model
logging come after the last step and are turned off here (`test=false logger.log_model=false`).
Run: .venv/bin/python benchmarks/bench_overhead.py [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import summary, write_results

BENCH_DIR = Path(__file__).resolve().parent
FTLAB = str(Path(sys.executable).parent / "ftlab")
WARMUP = 10
MODELS = {  # name: (overrides, steps, quick steps)
    # The default run (MiniLM on VADER, batch 32) on 2,000 words: 50 steps per epoch.
    "minilm": (["data.max_samples=2000"], 100, 50),
    "digits_cnn": (["experiment=digits_scratch"], 300, 60),  # 20 steps per epoch
}
# Steps end at an epoch's end, so each run ends with the validation and checkpoint users get.
# Early stopping is off: the plain loop always runs every step, and a side that stopped early
# would compare its last tenth of losses with steps the other side trained later.
AFTER_FIT_OFF = ["test=false", "logger.log_model=false", "callbacks.early_stopping=null"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(BENCH_DIR), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def run_side(side: str, overrides: list[str], steps: int, workdir: Path) -> dict:
    out = workdir / f"{side}.json"
    out.unlink(missing_ok=True)
    overrides = [*overrides, f"trainer.max_steps={steps}", *AFTER_FIT_OFF]
    if side == "ftlab":
        step_log = f"+callbacks.step_log={{_target_: step_log.StepLog, out: '{out}'}}"
        command = [FTLAB, "train", *overrides, step_log]
    else:
        plain = str(BENCH_DIR / "plain_loop.py")
        command = [sys.executable, plain, "--steps", str(steps), "--out", str(out), *overrides]
    done = subprocess.run(command, cwd=workdir, env=_env(), capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    record = json.loads(out.read_text())
    if len(record["losses"]) != steps:
        raise SystemExit(f"{side} trained {len(record['losses'])} of {steps} steps: not comparable")
    return record


def step_times(record: dict) -> list[float]:
    """Intervals between step ends after warm-up, without those holding an epoch end."""
    ends, epoch_ends = record["step_ends"], set(record["epoch_ends"])
    return [
        ends[i] - ends[i - 1]
        for i in range(max(1, WARMUP), len(ends))
        if i not in epoch_ends  # step i+1 started after epoch i's validation and checkpoint
    ]


def compare(records: dict[str, list[dict]]) -> dict:
    figures: dict[str, dict] = {}
    for side, runs in records.items():
        losses = [run["losses"] for run in runs]
        tail = max(1, len(losses[0]) // 10)
        figures[side] = {
            "step_s": summary([t for run in runs for t in step_times(run)]),
            "fit_s": statistics.median(run["fit_s"] for run in runs),
            "peak_memory_mb": statistics.median(run["peak_memory_mb"] for run in runs),
            "first_losses": losses[0][:5],
            "last_tenth_mean_loss": statistics.mean(
                statistics.mean(loss[-tail:]) for loss in losses
            ),
        }
    ftlab, plain = figures["ftlab"], figures["plain"]
    figures["ratio"] = {
        "step": ftlab["step_s"]["median"] / plain["step_s"]["median"],
        "fit": ftlab["fit_s"] / plain["fit_s"],
        "peak_memory": ftlab["peak_memory_mb"] / plain["peak_memory_mb"],
        "first_losses_max_abs_diff": max(
            abs(a - b) for a, b in zip(ftlab["first_losses"], plain["first_losses"], strict=True)
        ),
        "last_tenth_loss_rel_diff": ftlab["last_tenth_mean_loss"] / plain["last_tenth_mean_loss"]
        - 1,
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round, few steps")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    results, sizes = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            overrides, steps, quick_steps = MODELS[name]
            steps = quick_steps if args.quick else steps
            sizes[name] = {"overrides": overrides, "steps": steps, "rounds": rounds}
            records: dict[str, list[dict]] = {"ftlab": [], "plain": []}
            for round_number in range(rounds):
                # Alternate which side goes first, so drifts in machine load hit both alike.
                order = ["ftlab", "plain"] if round_number % 2 == 0 else ["plain", "ftlab"]
                for side in order:
                    records[side].append(run_side(side, overrides, steps, Path(scratch)))
            results[name] = compare(records)
    _print(results)
    path = write_results(
        "overhead",
        {"quick": args.quick, "warmup_steps": WARMUP, "sizes": sizes, "results": results},
    )
    print(f"written: {path}")


def _print(results: dict) -> None:
    print(
        f"{'model':<11} {'side':<6} {'step ms':>8} {'p10-p90 ms':>14} {'fit s':>7} {'peak MB':>8} {'last-10% loss':>14}"
    )
    for name, figures in results.items():
        for side in ("ftlab", "plain"):
            f = figures[side]
            step = f["step_s"]
            spread = f"{step['p10'] * 1e3:.1f}-{step['p90'] * 1e3:.1f}"
            print(
                f"{name:<11} {side:<6} {step['median'] * 1e3:>8.1f} {spread:>14} {f['fit_s']:>7.1f} "
                f"{f['peak_memory_mb']:>8.0f} {f['last_tenth_mean_loss']:>14.4f}"
            )
        r = figures["ratio"]
        print(
            f"{name:<11} ftlab/plain: step {r['step']:.3f}x, fit {r['fit']:.3f}x, peak memory "
            f"{r['peak_memory']:.2f}x; first 5 losses differ by <= {r['first_losses_max_abs_diff']:.1e}, "
            f"last-10% loss {r['last_tenth_loss_rel_diff']:+.1%}"
        )


if __name__ == "__main__":
    main()
