"""Against Hugging Face Trainer: the same MiniLM-on-VADER fine-tune for the same steps as
`ftlab train` (tracking and checkpoints on, as users run it) and as `transformers.Trainer`
(hf_trainer.py: same data, initial weights, batch, lr, weight decay, cosine schedule and warm-up,
evaluation and a checkpoint each epoch; the Trainer's own defaults otherwise, without tracking).

Each side runs in its own process, alternating, several rounds. Figures: fit wall time (training
with its evaluations and checkpoints), process wall time (start-up included), final validation
loss, and the ratios ftlab / Trainer. The run's test pass and model logging come after the last
step and are turned off on the ftlab side (`test=false logger.log_model=false`).

Round k trains both sides with seed 42 + k (data order, dropout, the head's initial weights), and
the val loss compared is the mean over rounds: on this task one seed's val loss moves by about
0.04 with the seed alone, more than the sides differ, so a single seed would decide "equal
quality" by chance. Times are medians over rounds.

`ftlab train` keeps freed memory for the next step (ftlab.allocator); the Trainer runs with
glibc's defaults, as its users run it. `--same-malloc` gives the Trainer's process the same
setting (glibc's MALLOC_ variables), to show how much of the difference that setting makes.
Run: .venv/bin/python benchmarks/bench_hf_trainer.py [--rounds 3] [--quick] [--same-malloc]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_overhead import AFTER_FIT_OFF, BENCH_DIR, FTLAB, _env
from common import write_results

# MiniLM on 2,000 VADER words: 50 steps per epoch at batch 32; quick: 400 words, 10 per epoch.
FULL = (["data.max_samples=2000"], 100)
QUICK = (["data.max_samples=400"], 20)
FIRST_SEED = 42  # the default config's seed; round k uses FIRST_SEED + k on both sides
# What ftlab.allocator sets with mallopt, as the environment variables glibc reads at start-up.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**62)}


def run_side(
    side: str, overrides: list[str], steps: int, workdir: Path, same_malloc: bool = False
) -> dict:
    out = workdir / f"{side}.json"
    out.unlink(missing_ok=True)
    overrides = [*overrides, f"trainer.max_steps={steps}"]
    if side == "ftlab":
        step_log = f"+callbacks.step_log={{_target_: step_log.StepLog, out: '{out}'}}"
        command = [FTLAB, "train", *overrides, *AFTER_FIT_OFF, step_log]
    else:
        script = str(BENCH_DIR / "hf_trainer.py")
        command = [sys.executable, script, "--steps", str(steps), "--out", str(out), *overrides]
    env = _env() | (KEEP_FREED_MEMORY if same_malloc and side == "hf_trainer" else {})
    started = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    record = json.loads(out.read_text())
    ends = record["step_ends"]
    intervals = sorted(b - a for a, b in zip(ends[:-1], ends[1:], strict=True))
    steps_s = statistics.median(intervals) * len(ends)  # the fit without its epoch ends
    return {
        "process_s": wall,
        **{k: record[k] for k in ("fit_s", "val_loss", "peak_memory_mb")},
        "step_ms": 1000 * statistics.median(intervals),
        "outside_steps_s": record["fit_s"] - steps_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round, 20 steps on 400 words")
    parser.add_argument(
        "--same-malloc", action="store_true", help="the Trainer keeps freed memory as ftlab does"
    )
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    overrides, steps = QUICK if args.quick else FULL
    runs: dict[str, list[dict]] = {"ftlab": [], "hf_trainer": []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(rounds):
            order = ["ftlab", "hf_trainer"] if round_number % 2 == 0 else ["hf_trainer", "ftlab"]
            seeded = [*overrides, f"seed={FIRST_SEED + round_number}"]
            for side in order:
                runs[side].append(
                    run_side(side, seeded, steps, Path(scratch), same_malloc=args.same_malloc)
                )
    results = {
        side: {key: statistics.median(run[key] for run in records) for key in records[0]}
        | {
            "val_loss": statistics.mean(r["val_loss"] for r in records),
            "val_loss_per_seed": [r["val_loss"] for r in records],
            "fit_s_min_max": [min(r["fit_s"] for r in records), max(r["fit_s"] for r in records)],
        }
        for side, records in runs.items()
    }
    ftlab, hf = results["ftlab"], results["hf_trainer"]
    results["ratio"] = {
        "fit": ftlab["fit_s"] / hf["fit_s"],
        "process": ftlab["process_s"] / hf["process_s"],
        "val_loss_diff": ftlab["val_loss"] - hf["val_loss"],
        "step": ftlab["step_ms"] / hf["step_ms"],
    }
    print(
        f"{'side':<11} {'fit s':>7} {'min-max':>13} {'process s':>10} {'val loss':>9} {'peak MB':>8}  val loss per seed"
    )
    for side in ("ftlab", "hf_trainer"):
        f = results[side]
        spread = f"{f['fit_s_min_max'][0]:.1f}-{f['fit_s_min_max'][1]:.1f}"
        print(
            f"{side:<11} {f['fit_s']:>7.1f} {spread:>13} {f['process_s']:>10.1f} {f['val_loss']:>9.4f} {f['peak_memory_mb']:>8.0f}  "
            + " ".join(f"{v:.4f}" for v in f["val_loss_per_seed"])
        )
    r = results["ratio"]
    print(
        f"ftlab/Trainer: fit {r['fit']:.3f}x, process {r['process']:.3f}x, val loss {r['val_loss_diff']:+.4f}"
    )
    print(
        f"median step {ftlab['step_ms']:.0f} vs {hf['step_ms']:.0f} ms ({r['step']:.3f}x); fit beyond"
        f" steps x median step (epoch ends, first step): {ftlab['outside_steps_s']:.1f} vs"
        f" {hf['outside_steps_s']:.1f} s"
    )
    seeds = [FIRST_SEED + k for k in range(rounds)]
    sizes = {"overrides": overrides, "steps": steps, "rounds": rounds, "seeds": seeds}
    name = "hf_trainer-same-malloc" if args.same_malloc else "hf_trainer"
    sizes["trainer_keeps_freed_memory"] = args.same_malloc
    sizes["ftlab_malloc"] = os.environ.get("FTLAB_MALLOC", "ftlab's default (keeps freed memory)")
    print(f"written: {write_results(name, {**sizes, 'results': results}, quick=args.quick)}")


if __name__ == "__main__":
    main()
