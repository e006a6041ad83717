"""Logging overhead: step time with MLflow logging every step, every 50 steps, and no logger.

The three variants train the same tiny model on the same data in one process, alternating,
several rounds; the figure is the median step time after warm-up and its ratio to no logger.
Run: .venv/bin/python benchmarks/bench_logging.py [--steps 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning.pytorch as L
from common import StepTimer, compose, summary, write_results

from ftlab import builders
from ftlab.console import quiet_lightning
from ftlab.tracking.logger import MlflowRunLogger
from ftlab.tracking.run import TrackedRun

VARIANTS = {"no logger": None, "mlflow every 50 steps": 50, "mlflow every step": 1}
MODELS = {
    "digits_cnn": ["experiment=digits_scratch", "data.batch_size=32"],
    "tiny_bert": ["model=tiny_bert", "data.batch_size=32"],
}
WARMUP = 20


def one_run(
    model_overrides: list[str], every: int | None, steps: int, scratch: Path
) -> list[float]:
    cfg = compose(model_overrides, scratch / "out")
    L.seed_everything(0, verbose=False)
    datamodule = builders.build_datamodule(cfg)
    model = builders.build_model(cfg, datamodule)
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=steps, max_epochs=1000, limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, logger=False, callbacks=[timer],
        log_every_n_steps=every or 50,
    )  # fmt: skip
    if every is None:
        trainer.fit(model, datamodule=datamodule)
        return timer.times[WARMUP:]
    uri = f"sqlite:///{scratch / 'mlflow.db'}"
    spool = scratch / f"spool-{every}-{time.monotonic_ns()}"
    with TrackedRun(uri, "bench_logging", f"every-{every}", spool_dir=spool) as run:
        run.start_reporting(None)  # the spool is sent in the background, as in `ftlab train`
        trainer.loggers = [MlflowRunLogger(run.spool, str(run.run_id))]
        trainer.fit(model, datamodule=datamodule)
    return timer.times[WARMUP:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round of 60 steps")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds = 60, 1
    quiet_lightning()
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for model_name, model_overrides in MODELS.items():
            samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for _ in range(
                args.rounds
            ):  # alternate variants so drifts in machine load hit all alike
                for name, every in VARIANTS.items():
                    samples[name] += one_run(model_overrides, every, args.steps, Path(scratch))
            base = summary(samples["no logger"])["median"]
            results[model_name] = {
                name: {**summary(times), "ratio_to_no_logger": summary(times)["median"] / base}
                for name, times in samples.items()
            }
    print(f"{'model':<12} {'variant':<24} {'median step ms':>15} {'p10-p90 ms':>16} {'ratio':>7}")
    for model_name, variants in results.items():
        for name, figures in variants.items():
            spread = f"{figures['p10'] * 1e3:.2f}-{figures['p90'] * 1e3:.2f}"
            print(
                f"{model_name:<12} {name:<24} {figures['median'] * 1e3:>15.2f} {spread:>16} {figures['ratio_to_no_logger']:>7.3f}"
            )
    print(
        f"written: {write_results('logging', {'steps': args.steps, 'rounds': args.rounds, 'results': results}, quick=args.quick)}"
    )


if __name__ == "__main__":
    main()
