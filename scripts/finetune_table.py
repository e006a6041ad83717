"""The README's fine-tuning strategies table, measured through the real `ftlab train` CLI.

    python scripts/finetune_table.py                 # seed 42, full budget
    python scripts/finetune_table.py --seeds 1 2 3   # mean ± std over three seeds
    python scripts/finetune_table.py --quick         # tiny data and models: checks the script works

Two tasks, each strategy with the same epoch budget and seed:
- VADER regression with MiniLM (3 epochs, test MSE, lower is better);
- digits 5-9 with 10% of the labels, the digits CNN pretrained on digits 0-4 by `digits_pretrain`
  (one pretraining run per seed), 15 epochs, test accuracy.
"scratch" is the same network from random init. Each strategy keeps the lr a practitioner would
pick for it (a probe's head needs a far larger lr than full fine-tuning); the lr is in the table.

Every run goes to a temporary MLflow store; the metric and `ftlab.trainable_params` are read from
it, the wall time is the whole `ftlab train` process. Prints a Markdown table and writes
`scripts/results/finetune_table.json` (`finetune_table_quick.json` with --quick).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FTLAB = str(Path(sys.executable).parent / "ftlab")
RESULTS = Path(__file__).parent / "results"


@dataclass
class Row:
    strategy: str
    overrides: list[str]
    lr: float
    pretrained: bool = True  # digits: start from the checkpoint pretrained on 0-4


@dataclass
class Task:
    name: str
    base: list[str]
    metric: str
    rows: list[Row]
    quick: list[str] = field(default_factory=list)
    pretrained_override: str | None = None  # how a row points at the pretrained backbone


VADER = Task(
    name="vader_regression (MiniLM)",
    base=["experiment=vader_regression", "trainer.max_epochs=3"],
    metric="test/mse",
    quick=["model=tiny_bert", "data.max_samples=240", "trainer.max_epochs=2"],
    rows=[
        Row("scratch", ["finetune=full", "model.backbone.pretrained=false"], 1e-4),
        Row("linear_probe", ["finetune=linear_probe"], 1e-2),
        Row("full", ["finetune=full"], 1e-4),
        Row("gradual", ["finetune=gradual"], 1e-3),  # backbone at 0.1 x: 1e-4
        Row("layer_decay 0.75", ["finetune=layer_decay"], 1e-4),
        Row("lp_ft", ["finetune=lp_ft", "finetune.backbone_lr_ratio=0.1"], 1e-3),
        Row("lora r8", ["finetune=lora"], 1e-3),
    ],
)
DIGITS = Task(
    name="digits 5-9, 10% labels (digits CNN pretrained on 0-4)",
    base=["experiment=digits_finetune"],
    metric="test/acc",
    quick=["data.max_samples=400", "trainer.max_epochs=3"],
    pretrained_override="model.backbone.path={checkpoint}",
    rows=[
        Row("scratch", ["finetune=full", "model=digits_cnn"], 1e-3, pretrained=False),
        Row("linear_probe", ["finetune=linear_probe"], 1e-2),
        Row("full", ["finetune=full"], 1e-3),
        Row("gradual", ["finetune=gradual"], 3e-3),
        Row("layer_decay 0.75", ["finetune=layer_decay"], 1e-3),
        Row("lp_ft", ["finetune=lp_ft", "finetune.backbone_lr_ratio=0.3"], 3e-3),
    ],
)
PRETRAIN = ["experiment=digits_pretrain", "logger=none"]
PRETRAIN_QUICK = ["data.max_samples=300", "trainer.max_epochs=1"]
COMMON = ["logger.system_metrics=false", "logger.log_model=false"]


def ftlab_train(overrides: list[str], cwd: Path) -> float:
    """Run `ftlab train` in `cwd`; returns its wall time. A failed run stops the table."""
    start = time.perf_counter()
    result = subprocess.run([FTLAB, "train", *overrides], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"ftlab train {' '.join(overrides)} failed:\n{result.stderr[-3000:]}")
    return seconds


def pretrain(seed: int, quick: bool, cwd: Path) -> Path:
    out = cwd / f"pretrain-s{seed}"
    extra = PRETRAIN_QUICK if quick else []
    ftlab_train([*PRETRAIN, *extra, f"seed={seed}", f"hydra.run.dir={out}"], cwd)
    return out / "checkpoints" / "best.ckpt"


def measure(task: Task, row: Row, seed: int, quick: bool, cwd: Path, checkpoint: Path | None):
    from mlflow.tracking import MlflowClient

    name = f"{task.metric.split('/')[-1]}-{row.strategy.split()[0]}-s{seed}-{time.time_ns()}"
    pointer = task.pretrained_override if row.pretrained else None
    overrides = [
        *task.base,
        *([pointer.format(checkpoint=checkpoint)] if pointer else []),
        *(task.quick if quick else []),
        *row.overrides,
        *COMMON,
        f"optimizer.lr={row.lr}",
        f"seed={seed}",
        f"run_name={name}",
        f"hydra.run.dir={cwd / 'runs' / name}",
    ]
    seconds = ftlab_train(overrides, cwd)
    client = MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(experiments, filter_string=f"tags.mlflow.runName = '{name}'")
    return {
        "metric": run.data.metrics[task.metric],
        "trainable_params": int(run.data.tags["ftlab.trainable_params"]),
        "wall_s": seconds,
    }


def summary(values: list[float], digits: int) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def markdown(task: Task, results: dict[str, list[dict]], rows: list[Row]) -> str:
    lines = [
        f"**{task.name}**",
        "",
        f"| strategy | lr (head) | {task.metric} | trainable params | wall time (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        runs = results[row.strategy]
        lines.append(
            f"| {row.strategy} | {row.lr:g} | {summary([r['metric'] for r in runs], 3)} "
            f"| {runs[0]['trainable_params']:,} | {summary([r['wall_s'] for r in runs], 0)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--quick", action="store_true", help="tiny data and models")
    parser.add_argument(
        "--tasks", nargs="+", choices=["vader", "digits"], default=["vader", "digits"]
    )
    args = parser.parse_args()

    tasks = [t for key, t in (("vader", VADER), ("digits", DIGITS)) if key in args.tasks]
    report = {"machine": platform.platform(), "seeds": args.seeds, "quick": args.quick, "tasks": {}}
    tables = []
    with tempfile.TemporaryDirectory(prefix="ftlab-table-") as scratch:
        cwd = Path(scratch)
        for task in tasks:
            results: dict[str, list[dict]] = {row.strategy: [] for row in task.rows}
            for seed in args.seeds:
                checkpoint = pretrain(seed, args.quick, cwd) if task.pretrained_override else None
                for row in task.rows:
                    measured = measure(task, row, seed, args.quick, cwd, checkpoint)
                    results[row.strategy].append({"seed": seed, "lr": row.lr, **measured})
                    print(f"{task.name} | {row.strategy} | seed {seed} | {measured}", flush=True)
            report["tasks"][task.name] = {"metric": task.metric, "results": results}
            tables.append(markdown(task, results, task.rows))
    print("\n\n".join(tables))
    RESULTS.mkdir(parents=True, exist_ok=True)
    # One file per task set, so tasks measured in separate invocations do not overwrite each other.
    suffix = "" if len(tasks) == 2 else f"_{args.tasks[0]}"
    path = RESULTS / f"finetune_table{suffix}{'_quick' if args.quick else ''}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
