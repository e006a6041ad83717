"""GPU throughput, for a machine with CUDA: bf16-mixed fine-tunes at realistic batch sizes.

- MiniLM on VADER (batch 128): `ftlab train trainer=gpu` vs the hand-written loop
  (../plain_loop.py, bf16 autocast) vs Hugging Face Trainer (../hf_trainer.py, bf16=True).
- timm ResNet-50, random init (no hub download), on a folder of random 224 px images written
  once (batch 128, 8 loader workers): ftlab vs the hand-written loop.
- Where several GPUs exist: MiniLM with `trainer=ddp` on all of them vs one GPU (batch per GPU
  unchanged), as samples/s and scaling efficiency.
Throughput = batch size / median step time after warm-up (epoch-end evaluation steps excluded
by the median). Sides alternate over rounds; each runs in its own process.
Without CUDA it prints why and exits 0; `--dry-run` runs the same plumbing on the CPU with tiny
sizes. Not run by `make bench` (it globs benchmarks/bench_*.py only).
Run: .venv/bin/python benchmarks/gpu/bench_gpu.py [--rounds 2] [--steps 200] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared helpers
from bench_overhead import BENCH_DIR, FTLAB, _env  # noqa: E402
from common import summary, write_results  # noqa: E402

WARMUP = 20
AFTER_FIT_OFF = ["test=false", "logger.log_model=false"]


def workloads(image_root: Path, dry_run: bool) -> dict[str, tuple[list[str], list[str]]]:
    """name: (overrides, sides)."""
    if dry_run:
        return {
            "minilm": (["data.max_samples=200", "data.batch_size=16"], ["ftlab", "plain", "hf"]),
            "resnet": (
                ["data=image_folder", f"data.root={image_root}", "data.image_size=32", "model=timm",
                 "model.backbone.name=resnet18", "loss=cross_entropy", "data.batch_size=16"],
                ["ftlab", "plain"],
            ),
        }  # fmt: skip
    gpu = ["trainer=gpu"]
    return {
        "minilm": ([*gpu, "data.batch_size=128"], ["ftlab", "plain", "hf"]),
        "resnet50": (
            [*gpu, "data=image_folder", f"data.root={image_root}", "model=timm",
             "model.backbone.name=resnet50", "loss=cross_entropy", "data.batch_size=128",
             "data.num_workers=8"],
            ["ftlab", "plain"],
        ),
    }  # fmt: skip


def write_images(root: Path, count: int, size: int, classes: int = 10) -> None:
    """A folder of random images, ROOT/<class>/*.png: throughput does not depend on content."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / f"class{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")


def run_side(side: str, overrides: list[str], steps: int, workdir: Path) -> list[float]:
    """Step end times of one run."""
    out = workdir / f"{side}.json"
    out.unlink(missing_ok=True)
    overrides = [*overrides, f"trainer.max_steps={steps}"]
    if side in ("ftlab", "ftlab_ddp"):
        step_log = f"+callbacks.step_log={{_target_: step_log.StepLog, out: '{out}'}}"
        ddp = ["trainer=ddp"] if side == "ftlab_ddp" else []
        command = [FTLAB, "train", *overrides, *ddp, *AFTER_FIT_OFF, step_log]
    else:
        script = str(BENCH_DIR / ("plain_loop.py" if side == "plain" else "hf_trainer.py"))
        command = [sys.executable, script, "--steps", str(steps), "--out", str(out), *overrides]
    done = subprocess.run(command, cwd=workdir, env=_env(), capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())["step_ends"]


def batch_size(overrides: list[str]) -> int:
    return int(next(o.split("=")[1] for o in overrides if o.startswith("data.batch_size=")))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks plumbing")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.dry_run:
        print("bench_gpu: no CUDA GPU visible; nothing to measure (use --dry-run to check on CPU)")
        return
    gpus = torch.cuda.device_count()
    steps, rounds = (WARMUP + 10, 1) if args.dry_run else (args.steps, args.rounds)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        workdir, images = Path(scratch), Path(scratch) / "images"
        write_images(images, 200 if args.dry_run else 4096, 32 if args.dry_run else 224)
        for name, (overrides, sides) in workloads(images, args.dry_run).items():
            if name == "minilm" and gpus > 1:
                sides = [*sides, "ftlab_ddp"]
            times: dict[str, list[float]] = {side: [] for side in sides}
            for round_number in range(rounds):
                shift = round_number % len(sides)  # rotate who goes first
                for side in sides[shift:] + sides[:shift]:
                    ends = run_side(side, overrides, steps, workdir)
                    times[side] += list(np.diff(ends[WARMUP:]))
            batch = batch_size(overrides)
            results[name] = {}
            for side, values in times.items():
                per_process = batch / summary(values)["median"]
                devices = gpus if side == "ftlab_ddp" else 1
                results[name][side] = {
                    "step_s": summary(values),
                    "samples_per_s": per_process * devices,  # DDP: every rank steps in lockstep
                }
            if "ftlab_ddp" in results[name]:
                one = results[name]["ftlab"]["samples_per_s"]
                results[name]["ddp_scaling_efficiency"] = results[name]["ftlab_ddp"][
                    "samples_per_s"
                ] / (one * gpus)
    print(f"{'workload':<10} {'side':<10} {'samples/s':>10} {'median step ms':>15}")
    for name, sides in results.items():
        for side, figures in sides.items():
            if isinstance(figures, dict):
                print(
                    f"{name:<10} {side:<10} {figures['samples_per_s']:>10.1f} {figures['step_s']['median'] * 1e3:>15.1f}"
                )
        if "ddp_scaling_efficiency" in sides:
            print(f"{name:<10} {gpus}-GPU scaling efficiency {sides['ddp_scaling_efficiency']:.2f}")
    figures = {"steps": steps, "rounds": rounds, "gpus": gpus, "results": results}
    print(f"written: {write_results('gpu', figures, quick=args.dry_run)}")


if __name__ == "__main__":
    main()
