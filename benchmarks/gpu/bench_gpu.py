"""GPU throughput, for a machine with CUDA: bf16-mixed fine-tunes at realistic batch sizes.

- MiniLM on VADER (batch 128): `ftlab train trainer=gpu` vs the same with `trainer.compile=true`
  vs the hand-written loop (../plain_loop.py, bf16 autocast) vs Hugging Face Trainer
  (../hf_trainer.py, bf16=True).
- timm ResNet-50, random init (no hub download), on a folder of random 224 px JPEGs written
  once (batch 128, 8 loader workers): ftlab, ftlab compiled, and the hand-written loop.
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
            "minilm": (
                ["data.max_samples=200", "data.batch_size=16"],
                ["ftlab", "ftlab_compile", "plain", "hf"],
            ),
            "resnet": (
                ["data=image_folder", f"data.root={image_root}", "data.image_size=32", "model=timm",
                 "model.backbone.name=resnet18", "loss=cross_entropy", "data.batch_size=16"],
                ["ftlab", "ftlab_compile", "plain"],
            ),
        }  # fmt: skip
    gpu = ["trainer=gpu"]
    return {
        "minilm": ([*gpu, "data.batch_size=128"], ["ftlab", "ftlab_compile", "plain", "hf"]),
        "resnet50": (
            [*gpu, "data=image_folder", f"data.root={image_root}", "model=timm",
             "model.backbone.name=resnet50", "loss=cross_entropy", "data.batch_size=128",
             "data.num_workers=8"],
            ["ftlab", "ftlab_compile", "plain"],
        ),
    }  # fmt: skip


def write_images(root: Path, count: int, size: int, classes: int = 10) -> None:
    """A folder of random images, ROOT/<class>/*.jpg: throughput does not depend on content
    (JPEG, as photo datasets are, which also decodes faster than noise stored as PNG)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / f"class{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.jpg", quality=90)


def run_side(side: str, overrides: list[str], steps: int, workdir: Path) -> list[float]:
    """Step end times of one run."""
    out = workdir / f"{side}.json"
    out.unlink(missing_ok=True)
    overrides = [*overrides, f"trainer.max_steps={steps}"]
    if side.startswith("ftlab"):
        step_log = f"+callbacks.step_log={{_target_: step_log.StepLog, out: '{out}'}}"
        variant = {"ftlab_ddp": ["trainer=ddp"], "ftlab_compile": ["trainer.compile=true"]}
        command = [FTLAB, "train", *overrides, *variant.get(side, []), *AFTER_FIT_OFF, step_log]
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
    parser.add_argument("--images", type=int, default=2048, help="random images for ResNet-50")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks plumbing")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.dry_run:
        print("bench_gpu: no CUDA GPU visible; nothing to measure (use --dry-run to check on CPU)")
        return
    gpus = torch.cuda.device_count()
    if gpus:
        print(f"bench_gpu: {gpus} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    steps, rounds = (WARMUP + 10, 1) if args.dry_run else (args.steps, args.rounds)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        workdir, images = Path(scratch), Path(scratch) / "images"
        write_images(images, 200 if args.dry_run else args.images, 32 if args.dry_run else 224)
        for name, (overrides, sides) in workloads(images, args.dry_run).items():
            if name == "minilm" and gpus > 1:
                sides = [*sides, "ftlab_ddp"]
            times = measure(name, overrides, sides, steps, rounds, workdir)
            results[name] = throughputs(times, batch_size(overrides), gpus)
            # Written after each workload, so a run cut short keeps what it measured.
            figures = {"steps": steps, "rounds": rounds, "gpus": gpus, "results": results}
            written = write_results("gpu", figures, quick=args.dry_run)
    print_table(results, gpus)
    print(f"written: {written}")


def measure(
    name: str, overrides: list[str], sides: list[str], steps: int, rounds: int, workdir: Path
) -> dict[str, list[float]]:
    """Step times per side over rounds, who goes first rotating; a side that fails is reported
    and left out, so one broken side does not cost the others' figures."""
    times: dict[str, list[float]] = {side: [] for side in sides}
    for round_number in range(rounds):
        shift = round_number % len(sides)
        for side in sides[shift:] + sides[:shift]:
            try:
                ends = run_side(side, overrides, steps, workdir)
            except RuntimeError as err:
                print(f"  {name} {side} round {round_number}: FAILED {err}", flush=True)
                continue
            step_s = np.diff(ends[WARMUP:])
            times[side] += list(step_s)
            print(f"  {name} {side} round {round_number}: median step "
                  f"{np.median(step_s) * 1e3:.1f} ms", flush=True)  # fmt: skip
    return {side: values for side, values in times.items() if values}


def throughputs(times: dict[str, list[float]], batch: int, gpus: int) -> dict:
    figures: dict = {}
    for side, values in times.items():
        devices = gpus if side == "ftlab_ddp" else 1  # DDP: every rank steps in lockstep
        figures[side] = {
            "step_s": summary(values),
            "samples_per_s": batch / summary(values)["median"] * devices,
        }
    if "ftlab_ddp" in figures and "ftlab" in figures:
        one = figures["ftlab"]["samples_per_s"]
        figures["ddp_scaling_efficiency"] = figures["ftlab_ddp"]["samples_per_s"] / (one * gpus)
    return figures


def print_table(results: dict, gpus: int) -> None:
    print(f"{'workload':<10} {'side':<14} {'samples/s':>10} {'median step ms':>15}")
    for name, sides in results.items():
        for side, figures in sides.items():
            if isinstance(figures, dict):
                median_ms = figures["step_s"]["median"] * 1e3
                print(f"{name:<10} {side:<14} {figures['samples_per_s']:>10.1f} {median_ms:>15.1f}")
        if "ddp_scaling_efficiency" in sides:
            print(f"{name:<10} {gpus}-GPU scaling efficiency {sides['ddp_scaling_efficiency']:.2f}")


if __name__ == "__main__":
    main()
