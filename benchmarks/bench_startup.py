"""Startup: time from `ftlab train` to the end of its first optimizer step, against the bare
`import torch, lightning.pytorch` of a fresh interpreter, and where the time goes.

Each round runs, alternating, in fresh processes from one working directory (its MLflow store
is created by an uncounted warm-up round, as a user's store exists after their first run):
- bare: `python -c "import torch, lightning.pytorch"`, timed from process start;
- per config, `ftlab train OVERRIDES` as users type it, with a callback that records the time at
  the end of the first optimizer step and ends the process (probes.py, first_step.py);
- per config, the same run through probes.py, which marks each phase boundary of train().
Figures: medians over rounds; "beyond bare" = ftlab's first step minus the bare imports.
Run: .venv/bin/python benchmarks/bench_startup.py [--rounds 3] [--quick]
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

from common import write_results

BENCH_DIR = Path(__file__).resolve().parent
FTLAB = str(Path(sys.executable).parent / "ftlab")
CONFIGS = {
    "digits_cnn": ["experiment=digits_scratch"],
    "minilm": [],  # the default run: MiniLM on VADER
}
BARE = "import torch, lightning.pytorch\nfrom probes import process_age\nprint(process_age())"
# Phases in the order train() reaches them; each is the time from the previous mark.
PHASES = {
    "python started": "interpreter start",
    "config composed": "Hydra import + compose",
    "heavy imports": "torch, Lightning, ftlab builders",
    "config printed": "print config, seed",
    "data": "data module",
    "model": "model load",
    "trainer": "callbacks + trainer",
    "mlflow run": "MLflow run creation",
    "first step": "fit to first step",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(BENCH_DIR), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def bare_import(workdir: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", BARE], cwd=workdir, env=_env(), capture_output=True, text=True
    )
    out.check_returncode()
    return float(out.stdout.strip().splitlines()[-1])


def first_step(workdir: Path, overrides: list[str], phases: bool) -> dict[str, float]:
    """Time marks of one run to its first step, through the CLI or through probes.py."""
    marks = workdir / "marks.json"
    marks.unlink(missing_ok=True)
    callback = f"+callbacks.first_step={{_target_: first_step.FirstStep, out: '{marks}'}}"
    command = [sys.executable, str(BENCH_DIR / "probes.py")] if phases else [FTLAB, "train"]
    done = subprocess.run(
        [*command, *overrides, callback], cwd=workdir, env=_env(), capture_output=True, text=True
    )
    if not marks.exists():
        raise RuntimeError(f"no first step in {' '.join(command)}:\n{done.stderr[-3000:]}")
    return json.loads(marks.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="counted rounds after one warm-up")
    parser.add_argument("--quick", action="store_true", help="one counted round, digits only")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    configs = {"digits_cnn": CONFIGS["digits_cnn"]} if args.quick else CONFIGS
    bare: list[float] = []
    cli: dict[str, list[float]] = {name: [] for name in configs}
    phases: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        for round_number in range(rounds + 1):  # round 0 warms the store and the file cache
            counted = round_number > 0
            seconds = bare_import(workdir)
            if counted:
                bare.append(seconds)
            for name, overrides in configs.items():
                through_cli = first_step(workdir, overrides, phases=False)["first step"]
                marks = first_step(workdir, overrides, phases=True)
                if counted:
                    cli[name].append(through_cli)
                    phases[name].append(marks)
    bare_s = statistics.median(bare)
    results: dict[str, dict] = {
        "bare_import_s": {"median": bare_s, "min": min(bare), "max": max(bare)}
    }
    for name in configs:
        steps = cli[name]
        per_phase = {}
        for key in PHASES:
            starts = [m[key] - _previous(m, key) for m in phases[name]]
            per_phase[PHASES[key]] = statistics.median(starts)
        results[name] = {
            "first_step_s": {
                "median": statistics.median(steps),
                "min": min(steps),
                "max": max(steps),
            },
            "beyond_bare_s": statistics.median(steps) - bare_s,
            "phases_s": per_phase,
        }
    _print(results, configs)
    path = write_results(
        "startup", {"rounds": rounds, "configs": configs, "results": results}, quick=args.quick
    )
    print(f"written: {path}")


def _previous(marks: dict[str, float], key: str) -> float:
    keys = list(PHASES)
    index = keys.index(key)
    return marks[keys[index - 1]] if index > 0 else 0.0


def _print(results: dict[str, dict], configs: dict[str, list[str]]) -> None:
    bare = results["bare_import_s"]
    print(
        f"bare `import torch, lightning.pytorch`: {bare['median']:.2f} s (min-max {bare['min']:.2f}-{bare['max']:.2f})"
    )
    print(f"{'config':<12} {'to first step s':>16} {'min-max':>12} {'beyond bare s':>14}")
    for name in configs:
        figures = results[name]
        step = figures["first_step_s"]
        spread = f"{step['min']:.2f}-{step['max']:.2f}"
        print(f"{name:<12} {step['median']:>16.2f} {spread:>12} {figures['beyond_bare_s']:>14.2f}")
    print(f"\nphases (median s, through probes.py): {'  '.join(configs)}")
    for label in PHASES.values():
        row = "  ".join(f"{results[name]['phases_s'][label]:>10.2f}" for name in configs)
        print(f"  {label:<34} {row}")


if __name__ == "__main__":
    main()
