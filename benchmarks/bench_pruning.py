"""Pruning savings: the same 20-trial lr_optimizer sweep (same sampler seed) with the median
pruner and without, through the CLI as users run it. Reports epochs trained, wall time and the
best value of each, and the ratios.

What pruning saves is epochs; the sweep's start (the first trial imports torch and Lightning) and
each trial's fixed work are not pruned, so the wall ratio nears the epoch ratio only as epochs
grow longer than those: `--images` sets the dataset size (600 by default, 1,797 = all digits).
Rounds alternate the two sweeps (none, median, none, ...) and the wall ratio is the median of the
rounds' ratios, so a slow spell of this machine falls on both sides.
Run: .venv/bin/python benchmarks/bench_pruning.py [--trials 20] [--epochs 8] [--images 600] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from common import timed_sweep, write_results

FTLAB = str(Path(sys.executable).parent / "ftlab")


def sweep(
    workdir: Path, trials: int, epochs: int, images: int, pruner: str, round_: int
) -> dict[str, float]:
    seconds, study = timed_sweep(
        workdir, f"bench-{pruner}-{round_}",
        [f"data.max_samples={images}", f"trainer.max_epochs={epochs}", f"hydra.sweeper.n_trials={trials}",
         f"hydra.sweeper.pruner.name={pruner}"],
    )  # fmt: skip
    states = [t.state.name for t in study.trials]
    return {
        "wall_s": seconds,
        "epochs_trained": sum(len(t.intermediate_values) for t in study.trials),
        # Ask to tell, summed: what is left of wall_s is the sweep's start, end and bookkeeping.
        "trial_s": sum(
            (t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials
        ),
        "best_value": study.best_value,
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--images", type=int, default=600, help="digits used (1797: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5 trials of 3 epochs, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.rounds = 5, 3, 1
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            figures = {
                name: sweep(Path(scratch), args.trials, args.epochs, args.images, name, round_)
                for name in ("none", "median")
            }
            rounds.append(figures)
            print(
                f"round {round_ + 1}: wall {figures['median']['wall_s'] / figures['none']['wall_s']:.2f}x",
                flush=True,
            )
    results = {
        name: {key: statistics.median(r[name][key] for r in rounds) for key in rounds[0][name]}
        for name in ("none", "median")
    }
    with_pruning, without = results["median"], results["none"]
    ratios = {
        "epochs": with_pruning["epochs_trained"] / without["epochs_trained"],
        "wall": statistics.median(r["median"]["wall_s"] / r["none"]["wall_s"] for r in rounds),
        "wall_per_round": [r["median"]["wall_s"] / r["none"]["wall_s"] for r in rounds],
        "best_value_change": with_pruning["best_value"] - without["best_value"],
    }
    print(
        f"{'pruner':<8} {'epochs':>7} {'wall s':>8} {'trials s':>9} {'best val/acc':>13} "
        f"{'pruned':>7} {'failed':>7}"
    )
    for name, figures in results.items():
        print(
            f"{name:<8} {figures['epochs_trained']:>7} {figures['wall_s']:>8.1f} "
            f"{figures['trial_s']:>9.1f} {figures['best_value']:>13.4f} "
            f"{figures['pruned']:>7} {figures['failed']:>7}"
        )
    print(
        f"median/none: epochs {ratios['epochs']:.2f}x, wall {ratios['wall']:.2f}x (median of "
        f"{args.rounds} rounds; medians of each side's figures above), "
        f"best value {ratios['best_value_change']:+.4f}"
    )
    name = "pruning" if args.images == 600 else f"pruning-{args.images}"
    print(
        f"written: {write_results(name, {**vars(args), 'results': results, 'rounds': rounds, 'ratios': ratios}, quick=args.quick)}"
    )


if __name__ == "__main__":
    main()
