"""The plain-PyTorch side of the overhead benchmark: the run `ftlab train OVERRIDES` would do,
trained by a hand-written loop instead of Lightning, ftlab's callbacks and MLflow.

Same data module and model objects (built by ftlab's builders from the same config, so the
splits, the tokenizer and the initial weights are the same), same seed, the optimizer, param
groups and schedule the config names, same deterministic settings as `trainer.deterministic`; validation and
a best/last checkpoint at each epoch end, as a careful hand-written loop would do.
Run: python benchmarks/plain_loop.py --steps N --out FILE -- OVERRIDES
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from memory import peak_memory_mb


def to_device(inputs, device: torch.device):
    if isinstance(inputs, dict):
        return {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
    return inputs.to(device, non_blocking=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from common import compose
    from hydra.utils import instantiate

    from ftlab import builders

    # Checkpoints go to a scratch folder removed with the run (a few hundred MB each run).
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        cfg = compose(args.overrides, scratch)
        # What seed_everything(seed) and Trainer(deterministic=True) set.
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        torch.use_deterministic_algorithms(bool(cfg.trainer.get("deterministic", False)))
        torch.backends.cudnn.deterministic = bool(cfg.trainer.get("deterministic", False))
        torch.backends.cudnn.benchmark = False
        device = torch.device("cuda" if str(cfg.trainer.accelerator) in ("gpu", "cuda") else "cpu")
        bf16 = str(cfg.trainer.get("precision", "32")).startswith("bf16")

        datamodule = builders.build_datamodule(cfg)
        model = builders.build_model(cfg, datamodule).to(device)
        backbone, head, loss_fn = model.backbone, model.head, model.loss
        # The param groups ftlab's fine-tuning strategy defines (e.g. no weight decay on biases and
        # norms), so both sides optimize the same thing.
        groups = model.strategy.param_groups(model, float(cfg.optimizer.lr))
        optimizer = instantiate(cfg.optimizer)(groups)
        scheduler = instantiate(cfg.scheduler).build(optimizer, args.steps)["scheduler"]
        train_loader, val_loader = datamodule.train_dataloader(), datamodule.val_dataloader()

        ends: list[float] = []
        losses: list[float] = []
        epoch_ends: list[int] = []
        best = float("inf")
        fit_start = time.perf_counter()
        model.train()
        epoch = 0
        while len(ends) < args.steps:
            # ftlab's loaders shuffle by (seed, epoch) without the global RNG; Lightning announces
            # the epoch to the sampler, as a hand-written loop does with DistributedSampler.
            if hasattr(train_loader.sampler, "set_epoch"):
                train_loader.sampler.set_epoch(epoch)
            epoch += 1
            for inputs, targets in train_loader:
                inputs, targets = to_device(inputs, device), targets.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = loss_fn(head(backbone(inputs)), targets)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                losses.append(loss.item())  # waits for the step (a sync point on GPU), as StepLog
                ends.append(time.perf_counter())
                if len(ends) == args.steps:
                    break
            else:  # a full epoch: validate and checkpoint as ftlab's callbacks do
                epoch_ends.append(len(ends))
            best = validate_and_save(model, val_loader, device, bf16, best, scratch)
        record = {
            "step_ends": ends,
            "losses": losses,
            "epoch_ends": epoch_ends,
            "fit_s": time.perf_counter() - fit_start,
            "peak_memory_mb": peak_memory_mb(),
        }
        Path(args.out).write_text(json.dumps(record))


def validate_and_save(model, loader, device, bf16: bool, best: float, directory: Path) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for inputs, targets in loader:
            targets = targets.to(device)
            outputs = model.head(model.backbone(to_device(inputs, device)))
            total += float(model.loss(outputs, targets)) * len(targets)
            count += len(targets)
    model.train()
    val_loss = total / max(1, count)
    torch.save(model.state_dict(), directory / "last.pt")
    if val_loss < best:
        torch.save(model.state_dict(), directory / "best.pt")
    return min(best, val_loss)


if __name__ == "__main__":
    main()
