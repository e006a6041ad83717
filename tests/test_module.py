"""FineTuneModule with tiny random-init models: shapes, loss, optimizer groups, true freezing."""

from __future__ import annotations

import functools

import lightning.pytorch as L
import pytest
import torch
import torch.nn.functional as F

from ftlab.data.digits import DigitsDataModule
from ftlab.finetune.strategies import Full, LinearProbe
from ftlab.models.backbones.digits_cnn import DigitsCNN
from ftlab.models.backbones.hf import HFTextBackbone
from ftlab.models.heads import LinearHead, MLPHead
from ftlab.models.losses import MSE, CrossEntropy
from ftlab.models.module import FineTuneModule

TINY_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


@pytest.fixture(scope="module")
def tiny_bert() -> HFTextBackbone:
    return HFTextBackbone(
        "sentence-transformers/all-MiniLM-L6-v2", pretrained=False, config_overrides=TINY_BERT
    )


def make_module(backbone, loss, outputs: int, strategy=None, num_classes=None) -> FineTuneModule:
    return FineTuneModule(
        backbone=backbone,
        head=LinearHead(backbone.out_features, outputs),
        loss=loss,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        strategy=strategy or Full(),
        num_classes=num_classes,
    )


def test_text_regression_forward_and_loss(tiny_bert: HFTextBackbone) -> None:
    module = make_module(tiny_bert, MSE(), 1)
    inputs = tiny_bert.preprocessor()(["good", "terrible day", ":)"])
    outputs = module(inputs)
    assert outputs.shape == (3, 1)
    targets = torch.tensor([1.5, -2.0, 2.0])
    assert torch.allclose(module.loss(outputs, targets), F.mse_loss(outputs.squeeze(-1), targets))


def test_mean_pooling_ignores_padding(tiny_bert: HFTextBackbone) -> None:
    tiny_bert.eval()
    alone = tiny_bert(tiny_bert.preprocessor()(["ok"]))
    padded = tiny_bert(tiny_bert.preprocessor()(["ok", "a much longer piece of text here"]))[:1]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_classification_outputs_one_logit_per_class() -> None:
    module = make_module(DigitsCNN(width=8), CrossEntropy(), 5, num_classes=5)
    outputs = module(torch.randn(4, 1, 8, 8))
    assert outputs.shape == (4, 5)
    assert torch.allclose(module.loss.predict(outputs).sum(-1), torch.ones(4))


def test_mlp_head_widths() -> None:
    head = MLPHead(16, 3, hidden_sizes=[8, 4])
    assert head(torch.randn(2, 16)).shape == (2, 3)
    assert [m.out_features for m in head if isinstance(m, torch.nn.Linear)] == [8, 4, 3]


def test_optimizer_gets_trainable_parameters_only(tiny_bert: HFTextBackbone) -> None:
    full = make_module(tiny_bert, MSE(), 1)
    groups = full.strategy.param_groups(full, 1e-3)
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in full.parameters()}

    probe = make_module(DigitsCNN(width=8), MSE(), 1, strategy=LinearProbe())
    groups = probe.strategy.param_groups(probe, 1e-3)
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in probe.head.parameters()}
    assert not any(p.requires_grad for p in probe.backbone.parameters())


def _train_one_epoch(strategy) -> tuple[dict, dict, FineTuneModule]:
    L.seed_everything(0)
    datamodule = DigitsDataModule(name="digits", classes=[0, 1, 2], batch_size=32, max_samples=200)
    backbone = DigitsCNN(width=8)
    datamodule.bind_inputs(backbone.preprocessor(), backbone.modality, backbone.normalization)
    module = make_module(backbone, CrossEntropy(), 3, strategy=strategy, num_classes=3)
    before_backbone = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    before_head = {k: v.clone() for k, v in module.head.state_dict().items()}
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule)
    return before_backbone, before_head, module


def test_linear_probe_leaves_backbone_params_and_bn_buffers_bit_identical() -> None:
    before_backbone, before_head, module = _train_one_epoch(LinearProbe())
    after = module.backbone.state_dict()
    assert any("running_mean" in k for k in after)
    for key, value in before_backbone.items():
        assert torch.equal(value, after[key]), key
    assert any(not torch.equal(v, module.head.state_dict()[k]) for k, v in before_head.items())
    assert not module.backbone.training and module.head.training


def test_full_finetune_changes_backbone_and_bn_statistics() -> None:
    before_backbone, _, module = _train_one_epoch(Full())
    after = module.backbone.state_dict()
    changed = {k for k, v in before_backbone.items() if not torch.equal(v, after[k])}
    assert any("running_mean" in k for k in changed) and any(k.endswith("weight") for k in changed)


def _steps(task: str, count: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    if task == "regression":
        return [(torch.randn(7, generator=generator), torch.randn(7, generator=generator))
                for _ in range(count)]  # fmt: skip
    return [(torch.randint(0, 5, (7,), generator=generator),
             torch.randint(0, 5, (7,), generator=generator)) for _ in range(count)]  # fmt: skip


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_chunked_metric_updates_match_updates_at_every_step(task: str) -> None:
    from ftlab.models.metrics import ChunkedUpdates, task_metrics

    every_step, chunked = task_metrics(task, 5, "train/"), task_metrics(task, 5, "train/")
    updates = ChunkedUpdates(chunked)
    steps = _steps(task, 2 * ChunkedUpdates.CHUNK + 5)  # two full chunks and a partial one
    for predictions, targets in steps:
        every_step.update(predictions, targets)
        updates.add(predictions, targets)
    assert len(updates.pending()) == 5  # the partial chunk waits for the epoch's end
    updates.flush()
    expected, got = every_step.compute(), chunked.compute()
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.allclose(got[key], expected[key], rtol=1e-5, atol=1e-6), key


def test_a_resumed_run_updates_its_train_metrics_in_the_same_chunks() -> None:
    """The steps still pending travel through a checkpoint's ftlab facts: regression sums come
    out bit-equal to a run that never stopped, not merely close."""
    uninterrupted = make_module(DigitsCNN(), MSE(), 1)
    first, resumed = make_module(DigitsCNN(), MSE(), 1), make_module(DigitsCNN(), MSE(), 1)
    steps = _steps("regression", 2 * 32 + 9, seed=1)
    stop_at = 32 + 11  # mid-chunk
    for predictions, targets in steps:
        uninterrupted.metric_updates["train"].add(predictions, targets)
    for predictions, targets in steps[:stop_at]:
        first.metric_updates["train"].add(predictions, targets)
    checkpoint: dict = {"state_dict": first.state_dict()}
    first.on_save_checkpoint(checkpoint)
    saved = torch.load(_round_trip(checkpoint), weights_only=True)
    resumed.load_state_dict(saved["state_dict"])
    resumed.on_load_checkpoint(saved)
    for predictions, targets in steps[stop_at:]:
        resumed.metric_updates["train"].add(predictions, targets)
    for module in (uninterrupted, resumed):
        module.metric_updates["train"].flush()
    expected = uninterrupted.metrics["train_metrics"].compute()
    got = resumed.metrics["train_metrics"].compute()
    assert all(torch.equal(got[key], expected[key]) for key in expected), (got, expected)


def _round_trip(checkpoint: dict):
    import io

    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return buffer
