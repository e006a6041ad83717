"""Fine-tuning strategies on tiny real models: what is frozen stays bit-identical, unfrozen parts
train, per-group lrs keep their ratios under the schedule, LoRA trains adapters only and merges
exactly, and a resumed run is in the phase it left."""

from __future__ import annotations

import functools
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from ftlab.data.digits import DigitsDataModule
from ftlab.errors import FtlabError
from ftlab.finetune.depths import backbone_depths
from ftlab.finetune.lora import Lora
from ftlab.finetune.phase_schedule import start_factor
from ftlab.finetune.strategies import Full, Gradual, LinearProbe
from ftlab.models.backbones.digits_cnn import DigitsCNN
from ftlab.models.backbones.hf import HFTextBackbone
from ftlab.models.heads import LinearHead
from ftlab.models.losses import MSE, CrossEntropy
from ftlab.models.module import FineTuneModule
from ftlab.models.schedules import CosineWithWarmup

TINY_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def tiny_bert() -> HFTextBackbone:
    return HFTextBackbone(
        "sentence-transformers/all-MiniLM-L6-v2", pretrained=False, config_overrides=TINY_BERT
    )


def digits_module(strategy, weight_decay: float = 0.1, schedule=None) -> FineTuneModule:
    backbone = DigitsCNN(width=8)
    return FineTuneModule(
        backbone=backbone,
        head=LinearHead(backbone.out_features, 3),
        loss=CrossEntropy(),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-2, weight_decay=weight_decay),
        schedule=schedule,
        strategy=strategy,
        num_classes=3,
    )


def digits_data() -> DigitsDataModule:
    data = DigitsDataModule(name="digits", classes=[0, 1, 2], batch_size=32, max_samples=200)
    data.bind_inputs(*_digits_inputs())
    return data


def _digits_inputs():
    backbone = DigitsCNN(width=8)
    return backbone.preprocessor(), backbone.modality, backbone.normalization


def fit(module, data, max_epochs: int, callbacks=(), root: Path | None = None, ckpt_path=None):
    trainer = L.Trainer(
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=root is not None,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=list(callbacks),
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return trainer


class EpochSnapshots(Callback):
    """The backbone's state (params and BN buffers) at each epoch end, and which blocks trained
    and which were in train mode during each epoch."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []
        self.trainable: list[list[bool]] = []
        self.training: list[list[bool]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == 0:
            blocks = module.backbone.block_modules()
            self.trainable.append([all(p.requires_grad for p in b.parameters()) for b in blocks])
            self.training.append([b.training for b in blocks])

    def on_train_epoch_end(self, trainer, module) -> None:
        self.states.append({k: v.clone() for k, v in module.backbone.state_dict().items()})


def _block_changed(before: dict, after: dict, block: int) -> bool:
    keys = [k for k in before if k.startswith(f"stages.{block}.")]
    assert any("running_mean" in k for k in keys)
    return any(not torch.equal(before[k], after[k]) for k in keys)


# ---------------------------------------------------------------- depths
@pytest.mark.parametrize("family", ["digits_cnn", "hf", "timm", "torchvision"])
def test_depths_hold_every_backbone_parameter_exactly_once(family: str) -> None:
    if family == "digits_cnn":
        backbone, expected = DigitsCNN(width=8), 3
    elif family == "hf":
        backbone, expected = tiny_bert(), 3  # embeddings + 2 layers
    elif family == "timm":
        from ftlab.models.backbones.timm import TimmBackbone

        backbone, expected = TimmBackbone("resnet10t"), 5  # stem + 4 stages
    else:
        from ftlab.models.backbones.torchvision import TorchvisionBackbone

        backbone, expected = TorchvisionBackbone("resnet18"), 5
    depths = backbone_depths(backbone)
    names = [name for depth in depths for name in depth.params]
    assert len(depths) == expected
    assert sorted(names) == sorted(n for n, _ in backbone.named_parameters())


# ---------------------------------------------------------------- freezing
def test_gradual_blocks_stay_bit_identical_until_unfrozen_from_the_top() -> None:
    L.seed_everything(0)
    module = digits_module(Gradual(frozen_epochs=1, unfreeze="blocks", every_epochs=1))
    initial = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    snapshots = EpochSnapshots()
    fit(module, digits_data(), max_epochs=3, callbacks=[snapshots])

    assert snapshots.trainable == [
        [False, False, False],
        [False, False, True],
        [False, True, True],
    ]
    assert snapshots.training == snapshots.trainable  # frozen blocks ran in eval mode
    after = [initial, *snapshots.states]
    # Epoch 0: nothing (params, BN buffers, despite AdamW weight decay); epoch 1: the top block;
    # epoch 2: the top two. Block 0 never trained.
    for epoch, expected in enumerate([[False] * 3, [False, False, True], [False, True, True]]):
        changed = [_block_changed(after[epoch], after[epoch + 1], b) for b in range(3)]
        assert changed == expected, f"epoch {epoch}"


def test_linear_probe_keeps_the_whole_backbone_in_eval_mode() -> None:
    module = digits_module(LinearProbe())
    module.train()
    assert not any(m.training for m in module.backbone.modules())
    assert all(m.training for m in module.head.modules())


# ---------------------------------------------------------------- lr groups
class LrRecorder(Callback):
    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        groups = trainer.optimizers[0].param_groups
        self.steps.append({g["name"]: g["lr"] for g in groups})


def test_layer_decay_and_warmup_ratios_hold_under_cosine_schedule() -> None:
    L.seed_everything(0)
    strategy = Gradual(
        frozen_epochs=1, unfreeze="all", backbone_lr_ratio=0.5, warmup_epochs=1.0, layer_decay=0.5
    )
    module = digits_module(strategy, schedule=CosineWithWarmup(warmup_fraction=0.2))
    recorder = LrRecorder()
    trainer = fit(module, digits_data(), max_epochs=3, callbacks=[recorder])
    steps_per_epoch = trainer.num_training_batches
    assert len(recorder.steps) == 3 * steps_per_epoch

    cosine_lrs = [step["head"] for step in recorder.steps]
    assert cosine_lrs[0] < cosine_lrs[steps_per_epoch] and cosine_lrs[-1] < max(cosine_lrs)
    for step, lrs in enumerate(recorder.steps):
        warm = start_factor(step, steps_per_epoch, steps_per_epoch)
        for depth in range(3):  # 3 blocks: the top one is one step from the head
            expected = 0.5 * 0.5 ** (3 - depth) * warm
            assert lrs[f"backbone.{depth}"] == pytest.approx(expected * lrs["head"], rel=1e-9)
            assert lrs[f"backbone.{depth}.no_decay"] == lrs[f"backbone.{depth}"]
        assert lrs["head.no_decay"] == lrs["head"]
    assert recorder.steps[steps_per_epoch - 1]["backbone.2"] == 0.0  # frozen: lr 0, shown
    assert recorder.steps[-1]["backbone.2"] > 0


def test_biases_and_norm_weights_are_not_decayed_unless_asked() -> None:
    module = digits_module(Full())
    optimizer = module.configure_optimizers()
    for group in optimizer.param_groups:
        one_dim = [p.ndim <= 1 for p in group["params"]]
        if group["name"].endswith(".no_decay"):
            assert all(one_dim) and group["weight_decay"] == 0.0
        else:
            assert not any(one_dim) and group["weight_decay"] == 0.1
    names = {g["name"] for g in optimizer.param_groups}
    assert names == {"head", "head.no_decay", "backbone", "backbone.no_decay"}

    plain = digits_module(Full(no_decay_bias_norm=False)).configure_optimizers()
    assert [g["name"] for g in plain.param_groups] == ["head", "backbone"]
    assert {g["weight_decay"] for g in plain.param_groups} == {0.1}


# ---------------------------------------------------------------- LoRA
def lora_module(rank: int = 4) -> FineTuneModule:
    backbone = tiny_bert()
    return FineTuneModule(
        backbone=backbone,
        head=LinearHead(backbone.out_features, 1),
        loss=MSE(),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-2, weight_decay=0.1),
        strategy=Lora(rank=rank, alpha=8, dropout=0.0),
        backbone_config={"_target_": "ftlab.models.backbones.hf.HFTextBackbone"},
    )


def test_lora_trains_only_adapters_and_head_and_merges_exactly() -> None:
    torch.manual_seed(0)
    module = lora_module()
    texts = ["good", "terrible day", "fine", "awful", "great fun", "meh"]
    inputs = module.backbone.preprocessor()(texts)
    targets = torch.tensor([2.0, -2.5, 0.5, -3.0, 2.5, -0.2])
    before = {k: v.clone() for k, v in module.state_dict().items()}
    optimizer = module.configure_optimizers()
    for _ in range(3):
        optimizer.zero_grad()
        module.loss(module(inputs), targets).backward()
        optimizer.step()
    after = module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k or k.startswith("head.") for k in changed)
    assert any("lora_B" in k for k in changed) and any(k.startswith("head.") for k in changed)
    trained = module.trained_parameter_count()
    assert trained < sum(p.numel() for p in module.parameters()) / 10

    module.eval()
    merged, config = module.exported_backbone()
    assert (
        "lora" in module.strategy.recorded_config(module.backbone_config) and "lora" not in config
    )
    assert not any("lora_" in k for k in merged.state_dict())
    with torch.no_grad():
        assert torch.allclose(merged(inputs), module.backbone(inputs), atol=1e-5)


def test_lora_refuses_a_backbone_that_is_not_a_transformer() -> None:
    with pytest.raises(FtlabError, match=r"finetune=lora needs a Hugging Face .* not DigitsCNN"):
        digits_module(Lora())


# ---------------------------------------------------------------- resume
def test_resume_in_the_middle_of_gradual_unfreezing_keeps_the_phase(tmp_path: Path) -> None:
    L.seed_everything(0)
    checkpoints = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    first = digits_module(Gradual(frozen_epochs=1, unfreeze="blocks", every_epochs=1))
    fit(first, digits_data(), max_epochs=2, callbacks=[checkpoints], root=tmp_path)
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["ftlab"]["finetune_phase"] == {"strategy": "gradual", "epoch": 1}

    resumed = digits_module(Gradual(frozen_epochs=1, unfreeze="blocks", every_epochs=1))
    snapshots, recorder = EpochSnapshots(), LrRecorder()
    fit(
        resumed,
        digits_data(),
        max_epochs=3,
        callbacks=[snapshots, recorder],
        root=tmp_path,
        ckpt_path=str(tmp_path / "last.ckpt"),
    )
    # Epoch 2 of 3: blocks 1 and 2 train, block 0 stays frozen in eval mode.
    assert snapshots.trainable == [[False, True, True]]
    assert snapshots.training == [[False, True, True]]
    state = {k.removeprefix("backbone."): v for k, v in saved["state_dict"].items()}
    assert not _block_changed(state, snapshots.states[0], 0)
    assert _block_changed(state, snapshots.states[0], 1)
    # The warm-up continued where it was: block 1 starts its ramp at this epoch, at step > 0.
    first_lrs = recorder.steps[0]
    assert 0 < first_lrs["backbone.1"] < first_lrs["backbone.2"]


# ---------------------------------------------------------------- through the CLI
def test_lora_run_logs_a_merged_model_that_predicts_and_its_trainable_params(
    workdir: Path,
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from conftest import TINY_TEXT, all_runs, local_store, run_ftlab

    result = run_ftlab(
        "train",
        *TINY_TEXT,
        "finetune=lora",
        "trainer.max_epochs=1",
        "hydra.run.dir=out",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = all_runs(local_store(workdir))
    trainable = int(run.data.tags["ftlab.trainable_params"])
    assert 0 < trainable < 20_000  # adapters + head, not the 0.5M-parameter tiny BERT
    client = MlflowClient(local_store(workdir))
    lr_keys = [k for k in run.data.metrics if k.startswith("lr/")]
    assert {k.rsplit("/", 1)[-1] for k in lr_keys} >= {"head", "backbone"}
    assert client.get_metric_history(run.info.run_id, lr_keys[0])

    mlflow.set_tracking_uri(local_store(workdir))
    model = mlflow.pyfunc.load_model(run.data.tags["ftlab.model_uri"])
    predictions = model.predict(["good", "awful"])
    assert predictions["prediction"].notna().all()
