"""Bad input: one clear line naming the key or file, a non-zero exit, and no MLflow run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import TINY_TEXT, all_runs, local_store, run_ftlab

IMAGES = ["data=image_folder", "model=timm", "model.backbone.name=resnet10t", "loss=cross_entropy"]

CASES = {
    "unknown_group_option": (["model=no_such_model"], "no_such_model"),
    "unknown_key": ([*TINY_TEXT, "optimizer.learning_rate=0.1"], "learning_rate"),
    "lr_not_positive": ([*TINY_TEXT, "optimizer.lr=0"], "optimizer.lr must be > 0"),
    "negative_epochs": ([*TINY_TEXT, "trainer.max_epochs=-1"], "trainer.max_epochs must be >= 0"),
    "batch_size_zero": ([*TINY_TEXT, "data.batch_size=0"], "data.batch_size must be > 0"),
    "unknown_backbone": (
        [*IMAGES, "data.root={image_root}", "model.backbone.name=resnet_nope"],
        "model.backbone.name: timm has no model 'resnet_nope'",
    ),
    "missing_image_folder": ([*IMAGES, "data.root=no/such/dir"], "data.root: no such directory"),
    "missing_csv": ([*TINY_TEXT, "data=csv", "data.path=missing.csv"], "data.path: no such file"),
    "required_value_unset": ([*TINY_TEXT, "data=csv"], "data.path is required"),
    "loss_does_not_fit_data": (
        [*TINY_TEXT, "loss=cross_entropy"],
        "loss=cross_entropy is for classification",
    ),
}


HYDRA_ERRORS = {"unknown_group_option", "unknown_key"}  # Hydra's own message and exit code 1


def assert_clean_failure(result, expected: str, workdir: Path, ours: bool = True) -> None:
    """ftlab's errors: exit 2 and a last line `error: ...` naming the key or file."""
    assert result.returncode == (2 if ours else 1)
    assert expected in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    if ours:
        last_line = result.stderr.strip().splitlines()[-1]
        assert last_line.startswith("error: ") and expected in last_line
    assert all_runs(local_store(workdir)) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_cleanly(case: str, workdir: Path, digits_image_folder: Path) -> None:
    overrides, expected = CASES[case]
    overrides = [o.format(image_root=digits_image_folder) for o in overrides]
    result = run_ftlab("train", *overrides, "hydra.run.dir=out", cwd=workdir)
    assert_clean_failure(result, expected, workdir, ours=case not in HYDRA_ERRORS)


def test_label_column_absent_from_csv(workdir: Path, vader_csv: Path) -> None:
    args = [
        *TINY_TEXT,
        "data=csv",
        f"data.path={vader_csv}",
        "data.text_column=word",
        "data.label_column=sentiment",
    ]
    result = run_ftlab("train", *args, "hydra.run.dir=out", cwd=workdir)
    assert_clean_failure(result, "data.label_column: column 'sentiment' not in", workdir)


def test_weights_file_that_does_not_fit_the_backbone(
    workdir: Path, digits_image_folder: Path
) -> None:
    import timm
    from safetensors.torch import save_file

    weights = workdir / "resnet18.safetensors"
    save_file(timm.create_model("resnet18", num_classes=0).state_dict(), str(weights))
    args = [*IMAGES, f"data.root={digits_image_folder}", f"model.backbone.weights_file={weights}"]
    result = run_ftlab("train", *args, "hydra.run.dir=out", cwd=workdir)
    assert_clean_failure(result, "does not fit the backbone: shape mismatch", workdir)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without a GPU")
def test_gpu_trainer_without_gpu(workdir: Path) -> None:
    result = run_ftlab("train", *TINY_TEXT, "trainer=gpu", "hydra.run.dir=out", cwd=workdir)
    assert_clean_failure(result, "trainer.accelerator=gpu but no CUDA GPU is visible", workdir)
