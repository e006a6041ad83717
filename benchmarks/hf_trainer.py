"""The Hugging Face Trainer side of bench_hf_trainer.py: the run `ftlab train OVERRIDES` would
do, trained by `transformers.Trainer` as a user of that tool would set it up.

Same data (ftlab's data module: splits, tokenizer, batches) and the same model objects (backbone
and head built by ftlab's builders from the same config, so the initial weights are the same),
wrapped in the `forward(...) -> {"loss", "logits"}` module the Trainer expects. Settings that
define the problem match the config: batch size, lr, weight decay, cosine schedule with the same
warm-up share, steps, evaluation each epoch, no gradient clipping (ftlab's default). The rest is
the Trainer's default (fused AdamW, its sampler seeded by `seed`, no tracking integration),
plus a checkpoint each epoch as ftlab writes one.
Run: python benchmarks/hf_trainer.py --steps N --out FILE -- OVERRIDES
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from memory import peak_memory_mb
from torch import nn
from transformers import TrainerCallback


class Regressor(nn.Module):
    """ftlab's backbone and head with the loss inside, as the Trainer wants it."""

    def __init__(self, backbone: nn.Module, head: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head, self.loss = backbone, head, loss

    def forward(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> dict:
        outputs = self.head(self.backbone(inputs))
        return {"loss": self.loss(outputs, labels), "logits": outputs}


class StepEnds(TrainerCallback):
    """Records when each optimizer step ends; on CUDA it waits for the step, as the other
    sides' `.item()` on the loss does."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, *args, **kwargs) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())


class WithTokenIds(torch.utils.data.Dataset):
    """Examples as dicts carrying their token ids: what the Trainer's `group_by_length` (its own
    best setting for short, ragged texts) sorts batches by."""

    def __init__(self, dataset, tokenizer, max_length: int) -> None:
        self.items = [dataset[i] for i in range(len(dataset))]
        texts = [str(example) for example, _ in self.items]
        self.ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        example, target = self.items[index]
        return {"input_ids": self.ids[index], "example": example, "target": target}


class Batches:
    """ftlab's collate, with the names the Trainer passes to forward()."""

    def __init__(self, collate) -> None:
        self.collate = collate

    def __call__(self, examples: list) -> dict:
        if examples and isinstance(examples[0], dict):
            examples = [(e["example"], e["target"]) for e in examples]
        inputs, targets = self.collate(examples)
        return {"inputs": inputs, "labels": targets}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from common import compose
    from transformers import Trainer, TrainingArguments

    from ftlab import builders

    # Checkpoints go to a scratch folder removed with the run (a few hundred MB each run).
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        cfg = compose(args.overrides, scratch)
        torch.manual_seed(cfg.seed)
        datamodule = builders.build_datamodule(cfg)
        module = builders.build_model(cfg, datamodule)
        model = Regressor(module.backbone, module.head, module.loss)
        on_gpu = str(cfg.trainer.accelerator) in ("gpu", "cuda")
        training = TrainingArguments(
            output_dir=str(scratch / "hf"),
            max_steps=args.steps,
            per_device_train_batch_size=int(cfg.data.batch_size),
            per_device_eval_batch_size=int(cfg.data.get("eval_batch_size") or cfg.data.batch_size),
            learning_rate=float(cfg.optimizer.lr),
            weight_decay=float(cfg.optimizer.weight_decay),
            lr_scheduler_type="cosine",
            warmup_steps=float(cfg.scheduler.warmup_fraction),  # below 1: a share of the steps
            max_grad_norm=0.0,  # ftlab's trainer.gradient_clip_val is null
            eval_strategy="epoch",
            save_strategy="epoch",
            logging_steps=int(cfg.trainer.log_every_n_steps),
            seed=int(cfg.seed),
            use_cpu=not on_gpu,
            bf16=str(cfg.trainer.get("precision", "32")).startswith("bf16"),
            label_names=["labels"],
            disable_tqdm=True,
            report_to="none",
            train_sampling_strategy="group_by_length",  # its best setting for short texts
            remove_unused_columns=False,
        )
        train_loader = datamodule.train_dataloader()  # ftlab's loader, for its collate function
        tokenizer, max_length = module.backbone.tokenizer, module.backbone.max_length
        trainer = Trainer(
            model=model,
            args=training,
            # Both sets carry token ids: Trainer 5 groups evaluation batches by length too.
            train_dataset=WithTokenIds(datamodule.dataset("train"), tokenizer, max_length),
            eval_dataset=WithTokenIds(datamodule.dataset("val"), tokenizer, max_length),
            data_collator=Batches(train_loader.collate_fn),
        )
        step_ends = StepEnds()
        trainer.add_callback(step_ends)
        started = time.perf_counter()
        trainer.train()
        fit_s = time.perf_counter() - started
        evals = [entry["eval_loss"] for entry in trainer.state.log_history if "eval_loss" in entry]
        record = {
            "fit_s": fit_s,
            "val_loss": evals[-1],
            "steps": trainer.state.global_step,
            "step_ends": step_ends.ends,
            "peak_memory_mb": peak_memory_mb(),
        }
        Path(args.out).write_text(json.dumps(record))


if __name__ == "__main__":
    main()
