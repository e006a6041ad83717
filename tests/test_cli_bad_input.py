"""Bad input: one clear line naming the key or file, a non-zero exit, and nothing left behind (no
output folder, no tracking store, no MLflow run, no Optuna study).

The table is every case tried so far; add a row for each new one found.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_DIGITS, TINY_TEXT, all_runs, free_port, local_store, run_ftlab

IMAGES = ["data=image_folder", "model=timm", "model.backbone.name=resnet10t", "loss=cross_entropy"]
DIGITS = ["experiment=digits_scratch", *TINY_DIGITS]
CSV = [*TINY_TEXT, "data=csv", "data.path={csv}", "data.text_column=word"]
SWEEP = ["hparams_search=lr_optimizer", *DIGITS]
HYDRA = 1  # Hydra's own composition errors keep Hydra's message and exit code

# case -> (overrides, what the last line must contain[, exit code])
CASES: dict[str, tuple] = {
    # ---- composition (Hydra)
    "unknown_group_option": (["model=no_such_model"], "no_such_model", HYDRA),
    "unknown_key": ([*TINY_TEXT, "optimizer.learning_rate=0.1"], "learning_rate", HYDRA),
    "override_syntax": ([*TINY_TEXT, "optimizer.lr=[1"], "no viable alternative at input '[1'", HYDRA),
    "wrong_type": ([*TINY_TEXT, "trainer.max_epochs=abc"], "max_epochs", HYDRA),
    "float_for_int": ([*TINY_TEXT, "data.batch_size=1.5"], "batch_size", HYDRA),
    # ---- values
    "lr_zero": ([*TINY_TEXT, "optimizer.lr=0"], "optimizer.lr must be > 0"),
    "lr_negative": ([*TINY_TEXT, "optimizer.lr=-1"], "optimizer.lr must be > 0"),
    "weight_decay_negative": ([*TINY_TEXT, "optimizer.weight_decay=-1"], "optimizer.weight_decay must be >= 0"),
    "sgd_nesterov_without_momentum": (
        [*TINY_TEXT, "optimizer=sgd", "optimizer.nesterov=true", "optimizer.momentum=0"],
        "optimizer.nesterov=true needs momentum > 0",
    ),
    "negative_epochs": ([*TINY_TEXT, "trainer.max_epochs=-2"], "trainer.max_epochs must be >= 1"),
    "zero_epochs": ([*TINY_TEXT, "trainer.max_epochs=0"], "trainer.max_epochs must be >= 1"),
    "no_epoch_limit_without_steps": ([*TINY_TEXT, "trainer.max_epochs=-1"], "trainer.max_epochs=-1"),
    "zero_steps": ([*TINY_TEXT, "trainer.max_steps=0"], "trainer.max_steps must be >= 1"),
    "zero_train_batches": ([*TINY_TEXT, "trainer.limit_train_batches=0"], "trainer.limit_train_batches=0"),
    "accumulate_zero": ([*TINY_TEXT, "trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches"),
    "clip_negative": ([*TINY_TEXT, "trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val"),
    "log_every_zero": ([*TINY_TEXT, "trainer.log_every_n_steps=0"], "trainer.log_every_n_steps"),
    "batch_size_zero": ([*TINY_TEXT, "data.batch_size=0"], "data.batch_size must be > 0"),
    "eval_batch_size_zero": ([*TINY_TEXT, "data.eval_batch_size=0"], "data.eval_batch_size must be > 0"),
    "val_fraction_one": ([*TINY_TEXT, "data.val_fraction=1.0"], "data.val_fraction must lie in"),
    "fractions_sum": ([*TINY_TEXT, "data.val_fraction=0.5", "data.test_fraction=0.5"], "data.val_fraction + test_fraction"),
    "workers_negative": ([*TINY_TEXT, "data.num_workers=-1"], "data.num_workers must be >= 0"),
    "max_samples_zero": ([*TINY_TEXT, "data.max_samples=0"], "data.max_samples must be > 0"),
    "seed_fraction": ([*TINY_TEXT, "seed=1.5"], "seed must be a whole number"),
    "seed_text": ([*TINY_TEXT, "seed=abc"], "seed must be a whole number"),
    "layer_decay_zero": ([*TINY_TEXT, "finetune.layer_decay=0"], "finetune.layer_decay must lie in"),
    "layer_decay_above_one": ([*TINY_TEXT, "finetune.layer_decay=1.5"], "finetune.layer_decay must lie in"),
    "unfreeze_mode": ([*DIGITS, "finetune=gradual", "finetune.unfreeze=sideways"], "finetune.unfreeze must be all or blocks"),
    "warmup_fraction_one": ([*TINY_TEXT, "scheduler.warmup_fraction=1.0"], "scheduler.warmup_fraction must lie in"),
    "step_gamma_zero": ([*TINY_TEXT, "scheduler=step", "scheduler.gamma=0"], "scheduler.gamma must be > 0"),
    "digits_one_class": ([*DIGITS, "data.classes=[1]"], "data.classes must hold at least two"),
    "digits_class_out_of_range": ([*DIGITS, "data.classes=[1,12]"], "data.classes must hold"),
    "label_fraction_zero": ([*DIGITS, "data.label_fraction=0"], "data.label_fraction must lie in"),
    "last_checkpoint_every_zero": ([*TINY_TEXT, "callbacks.last_checkpoint.every_n_steps=0"], "callbacks.last_checkpoint.every_n_steps"),
    "nonfinite_budget_negative": ([*TINY_TEXT, "callbacks.nonfinite_loss.max_nonfinite_steps=-1"], "max_nonfinite_steps"),
    # found by review: these reached Lightning (a traceback, a FAILED run, a folder left behind)
    "check_val_every_zero": ([*DIGITS, "trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch must be > 0"),
    "val_check_interval_zero": ([*DIGITS, "trainer.val_check_interval=0"], "trainer.val_check_interval must be"),
    "precision_unknown": ([*DIGITS, "trainer.precision=bogus"], "trainer.precision must be one of"),
    "max_time_unparsable": ([*DIGITS, "trainer.max_time=bogus"], "trainer.max_time must be DD:HH:MM:SS"),
    "monitor_metric_not_logged": ([*DIGITS, "monitor.metric=val/bogus"], "monitor.metric=val/bogus is not logged for classification data"),
    "monitor_mode_unknown": ([*DIGITS, "monitor.mode=bogus"], "monitor.mode must be min or max"),
    # ---- unknown settings
    "extra_data_option": ([*TINY_TEXT, "+data.extra_option=1"], "data.extra_option is not a setting of data"),
    "extra_backbone_option": ([*DIGITS, "+model.backbone.widht=3"], "model.backbone.widht is not a setting"),
    "extra_callback_option": ([*TINY_TEXT, "+callbacks.early_stopping.patiense=3"], "callbacks.early_stopping.patiense"),
    "extra_loss_option": ([*TINY_TEXT, "+loss.weight=2"], "loss.weight is not a setting"),
    # ---- model and loss
    "unknown_backbone": ([*IMAGES, "data.root={image_root}", "model.backbone.name=resnet_nope"], "model.backbone.name: timm has no model 'resnet_nope'"),
    "hf_model_missing": (["model=hf", "model.backbone.name=/no/such/model", "data.max_samples=64"], "model.backbone.name: cannot load"),
    "pooling_unknown": ([*TINY_TEXT, "model.backbone.pooling=max"], "model.backbone.pooling must be mean or cls"),
    "head_activation": ([*TINY_TEXT, "model/head=mlp", "model.head.activation=nope"], "model.head.activation must be one of"),
    "loss_does_not_fit_data": ([*TINY_TEXT, "loss=cross_entropy"], "loss=cross_entropy is for classification"),
    "bce_on_regression": ([*TINY_TEXT, "loss=bce_with_logits"], "use loss=mse"),
    "mse_on_classes": ([*DIGITS, "loss=mse"], "use loss=cross_entropy"),
    "bce_with_ten_classes": ([*DIGITS, "loss=bce_with_logits"], "loss=bce_with_logits needs two classes"),
    "label_smoothing_one": ([*DIGITS, "loss.label_smoothing=1.0"], "loss.label_smoothing must lie in"),
    "class_weights_length": ([*DIGITS, "loss.class_weights=[1.0,2.0]"], "loss.class_weights has 2 values"),
    "lora_on_a_cnn": ([*DIGITS, "finetune=lora"], "finetune=lora needs a Hugging Face transformer"),
    "digits_width_zero": ([*DIGITS, "model.backbone.width=0"], "model.backbone.width must be > 0"),
    "head_dropout_one": ([*TINY_TEXT, "model.head.dropout=1.0"], "model.head.dropout must be in [0, 1)"),
    "huber_delta_zero": ([*TINY_TEXT, "loss=huber", "loss.delta=0"], "loss.delta must be > 0"),
    "max_length_zero": ([*TINY_TEXT, "model.backbone.max_length=0"], "model.backbone.max_length must be > 0"),
    # ---- files
    "missing_image_folder": ([*IMAGES, "data.root=no/such/dir"], "data.root: no such directory"),
    "image_folder_one_class": ([*IMAGES, "data.root={one_class}"], "classification needs at least two"),
    "missing_csv": ([*TINY_TEXT, "data=csv", "data.path=missing.csv"], "data.path: no such file"),
    "required_value_unset": ([*TINY_TEXT, "data=csv"], "data.path is required"),
    "csv_column_absent": ([*CSV, "data.label_column=sentiment"], "data.label_column: column 'sentiment' not in"),
    "csv_header_only": ([*TINY_TEXT, "data=csv", "data.path={header_only}"], "has a header but no rows"),
    "csv_nan_labels": ([*CSV, "data.path={nan_labels}", "data.task=regression", "data.label_column=valence"], "is not a finite number in"),
    "csv_empty_label": ([*CSV, "data.path={empty_label}"], "data.label_column 'label' is empty in"),
    "checkpoint_missing": (["experiment=digits_finetune", "model.backbone.path=no/such.ckpt"], "model.backbone.path: no such checkpoint"),
    "checkpoint_is_text": (["experiment=digits_finetune", "model.backbone.path={text_ckpt}"], "is not a PyTorch checkpoint"),
    "weights_file_missing": ([*IMAGES, "data.root={image_root}", "model.backbone.weights_file=no.safetensors"], "model.backbone.weights_file: no such file"),
    # ---- devices and tracking
    "gpu_without_gpu": ([*TINY_TEXT, "trainer=gpu"], "trainer.accelerator=gpu but no CUDA GPU is visible"),
    "ddp_without_gpu": ([*TINY_TEXT, "trainer=ddp"], "trainer.accelerator=gpu but no CUDA GPU is visible"),
    "file_store": ([*TINY_TEXT, "logger.tracking_uri=file:///tmp/ftlab-file-store"], "MLflow 3.13+ no longer accepts"),
    "path_store": ([*TINY_TEXT, "logger.tracking_uri=./my-runs"], "is a file store"),
    "store_under_a_file": ([*TINY_TEXT, "logger.tracking_uri=sqlite:///{a_file}/mlflow.db"], "cannot write to the store directory"),
    "not_an_mlflow_server": ([*TINY_TEXT, "logger.tracking_uri={not_mlflow}"], "is not an MLflow tracking server"),
    # ---- sweeps: nothing is created either (no study, no parent run)
    "sweep_no_trials": ([*SWEEP, "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials must be >= 1"),
    "sweep_interval_reversed": ([*SWEEP, "optimizer.lr=interval(0.1, 0.001)"], "low end above its high end"),
    "sweep_unknown_sampler": ([*SWEEP, "hydra.sweeper.sampler.name=magic"], "unknown sampler 'magic'"),
    "sweep_unknown_pruner": ([*SWEEP, "hydra.sweeper.pruner.name=magic"], "unknown pruner 'magic'"),
    "sweep_bad_fixed_value": ([*SWEEP, "data.batch_size=0"], "data.batch_size must be > 0"),
    "sweep_ddp": ([*SWEEP, "trainer=ddp_cpu"], "use trainer.strategy=ddp_spawn in sweeps"),
}  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, digits_image_folder: Path, vader_csv: Path):
    """Paths the table refers to, made once: broken CSVs, a one-class image folder, and a local
    web server that answers but is not MLflow."""
    import shutil
    import subprocess

    root = tmp_path_factory.mktemp("bad_files")
    (root / "header_only.csv").write_text("word,label\n")
    (root / "nan_labels.csv").write_text(
        "word,label,valence\ngood,positive,2.1\nbad,negative,nan\n"
    )
    (root / "empty_label.csv").write_text("word,label\ngood,positive\nbad,\nfine,positive\n")
    (root / "notes.ckpt").write_text("not a checkpoint\n")
    (root / "a_file").write_text("")
    one_class = root / "one_class"
    shutil.copytree(digits_image_folder / "0", one_class / "0")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    yield {
        "image_root": str(digits_image_folder),
        "csv": str(vader_csv),
        "one_class": str(one_class),
        "header_only": str(root / "header_only.csv"),
        "nan_labels": str(root / "nan_labels.csv"),
        "empty_label": str(root / "empty_label.csv"),
        "text_ckpt": str(root / "notes.ckpt"),
        "a_file": str(root / "a_file"),
        "not_mlflow": f"http://127.0.0.1:{port}",
    }
    server.terminate()
    server.wait()


def assert_clean_failure(result, expected: str, workdir: Path, code: int = 2) -> None:
    """Exit `code`, a last line naming the problem, no traceback, and nothing left behind."""
    assert result.returncode == code, result.stdout[-1500:] + result.stderr[-2500:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    if code == 2:  # ftlab's own: the last line says it all
        assert last_line.startswith("error: ") and expected in last_line, result.stderr[-2000:]
    else:  # Hydra's: its message, then its hint about HYDRA_FULL_ERROR
        assert expected in result.stderr, result.stderr[-2000:]
    assert not (workdir / "outputs").exists() and not (workdir / "multirun").exists()
    assert not (workdir / "mlruns").exists(), "a tracking store (or study) was created"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_cleanly(case: str, workdir: Path, files: dict[str, str]) -> None:
    if case.endswith("without_gpu") and torch.cuda.is_available():
        pytest.skip("checks the error on machines without a GPU")
    overrides, expected, *code = CASES[case]
    overrides = [o.format(**files) for o in overrides]
    result = run_ftlab("train", *overrides, cwd=workdir)
    assert_clean_failure(result, expected, workdir, code[0] if code else 2)


def test_weights_file_that_does_not_fit_the_backbone(workdir: Path, files: dict[str, str]) -> None:
    import timm
    from safetensors.torch import save_file

    weights = workdir.parent / "resnet18.safetensors"
    save_file(timm.create_model("resnet18", num_classes=0).state_dict(), str(weights))
    args = [*IMAGES, f"data.root={files['image_root']}", f"model.backbone.weights_file={weights}"]
    result = run_ftlab("train", *args, cwd=workdir)
    assert_clean_failure(result, "does not fit the backbone: shape mismatch", workdir)


def test_a_key_given_twice_is_named_and_the_last_counts(workdir: Path) -> None:
    args = [
        *DIGITS,
        "trainer.max_epochs=1",
        "optimizer.lr=0.01",
        "optimizer.lr=0.02",
        "logger=none",
    ]
    result = run_ftlab("train", *args, cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    warning = next(line for line in result.stderr.splitlines() if "optimizer.lr is given" in line)
    assert "optimizer.lr=0.01" in warning and "optimizer.lr=0.02" in warning and "last" in warning


def test_unreadable_images_are_skipped_with_a_count(
    workdir: Path, digits_image_folder: Path, tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "images"
    shutil.copytree(digits_image_folder, root)
    (root / "0" / "not_an_image.png").write_text("hello")
    truncated = (root / "1" / "0.png").read_bytes()
    (root / "1" / "truncated.png").write_bytes(truncated[: len(truncated) // 2])
    args = [*IMAGES, f"data.root={root}", "data.image_size=32", "trainer.max_epochs=1"]
    result = run_ftlab("train", *args, "logger=none", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped 2 unreadable images" in result.stderr
    assert all_runs(local_store(workdir)) == []


@pytest.mark.parametrize("command", ["run", "sweep", "sweep on workers"])
def test_a_misspelt_ftlab_malloc_is_one_line_and_leaves_nothing(
    workdir: Path, command: str
) -> None:
    """The allocator's opt-out (ftlab.allocator) misspelt: refused, not read as "keep"; a sweep
    refuses it before its study opens, not in every trial."""
    from conftest import TINY_DIGITS_RUN, cli_env

    overrides = {
        "run": TINY_DIGITS_RUN,
        "sweep": SWEEP,
        "sweep on workers": [*SWEEP, "hydra.sweeper.workers=2"],
    }[command]
    env = {**cli_env(), "FTLAB_MALLOC": "sytem"}
    result = run_ftlab("train", *overrides, cwd=workdir, env=env)
    assert_clean_failure(result, "FTLAB_MALLOC must be 'system'", workdir)
    assert result.stderr.strip().splitlines()[-1] == (
        "error: FTLAB_MALLOC must be 'system' (leave malloc as glibc sets it) or unset (got 'sytem')"
    )
    assert result.stderr.count("FTLAB_MALLOC") == 1, result.stderr[-2000:]
    if command == "run":
        assert len(result.stderr.strip().splitlines()) == 1
