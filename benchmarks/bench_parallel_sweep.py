"""Batch vs asynchronous parallel sweeps: the same 12-trial digits sweep with the median pruner
(so trial lengths differ), 2 at a time, same sampler seed; batches through Hydra's joblib launcher
(`hydra.sweeper.n_jobs=2`, each batch waits for its slowest trial) against ftlab's worker pool
(`hydra.sweeper.workers=2`, each worker takes the next trial at once). Both run in this one
invocation, alternating. Reports wall time, how busy the two workers were (trial time / (2 x
wall)) and how many distinct points were tried.
Run: .venv/bin/python benchmarks/bench_parallel_sweep.py [--trials 12] [--rounds 2] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import summary, timed_sweep, write_results

FTLAB = str(Path(sys.executable).parent / "ftlab")
MODES = {
    "batch": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"],
    "async": ["hydra.sweeper.workers=2"],
}


def sweep(workdir: Path, mode: str, trials: int, epochs: int) -> dict[str, float]:
    wall, study = timed_sweep(
        workdir, f"bench-{mode}",
        ["data.max_samples=900", f"trainer.max_epochs={epochs}", f"hydra.sweeper.n_trials={trials}",
         "hydra.sweeper.pruner.n_startup_trials=2", *MODES[mode]],
    )  # fmt: skip
    busy = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials)
    points = {tuple(sorted(t.params.items())) for t in study.trials}
    return {
        "wall_s": wall,
        "busy_fraction": busy / (2 * wall),
        "distinct_points": len(points),
        "trials": len(study.trials),
        "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
        "best_value": study.best_value,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="4 trials of 3 epochs, one round")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.rounds = 4, 3, 1
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:  # alternating, each in a fresh project directory
            with tempfile.TemporaryDirectory() as scratch:
                runs[mode].append(sweep(Path(scratch), mode, args.trials, args.epochs))
    walls = {mode: summary([r["wall_s"] for r in rs])["median"] for mode, rs in runs.items()}
    results = {
        "settings": vars(args),
        "runs": runs,
        "ratio_async_to_batch_wall": walls["async"] / walls["batch"],
    }
    print(f"{'mode':<6} {'wall s':>8} {'busy':>6} {'distinct':>9} {'pruned':>7} {'best':>8}")
    for mode, rs in runs.items():
        last = rs[-1]
        print(
            f"{mode:<6} {walls[mode]:>8.1f} {last['busy_fraction']:>6.2f} "
            f"{last['distinct_points']:>9} {last['pruned']:>7} {last['best_value']:>8.4f}"
        )
    print(f"async / batch wall time: {results['ratio_async_to_batch_wall']:.2f}x")
    print(f"written: {write_results('parallel_sweep', results, quick=args.quick)}")


if __name__ == "__main__":
    main()
