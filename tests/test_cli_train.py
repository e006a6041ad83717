"""`ftlab train` end to end, through the command line, against the real local MLflow store."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from conftest import TINY_DIGITS, TINY_TEXT, all_runs, local_store, run_ftlab


def test_help_lists_subcommands_and_config_groups(workdir: Path) -> None:
    top = run_ftlab("--help", cwd=workdir)
    assert top.returncode == 0 and "train" in top.stdout and "ui" in top.stdout
    train_help = run_ftlab("train", "--help", cwd=workdir)
    assert train_help.returncode == 0
    for group in (
        "data:",
        "model:",
        "optimizer:",
        "scheduler:",
        "trainer:",
        "finetune:",
        "experiment:",
    ):
        assert group in train_help.stdout


def test_default_shaped_run_is_tracked_and_finished(workdir: Path) -> None:
    result = run_ftlab("train", *TINY_TEXT, "hydra.run.dir=out", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/mse" in result.stdout and "ftlab ui" in result.stdout

    runs = all_runs(local_store(workdir))
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("tiny_bert-vader-adamw-lr0.0001-")
    for metric in ("train/loss", "val/loss", "val/pearson", "test/mse", "test/mae", "test/pearson"):
        assert metric in run.data.metrics
    assert run.data.params["optimizer.lr"] == "0.0001"
    assert run.data.params["data.size.train"] == "192"
    assert run.data.params["data.group_by_length"] == "True"  # text batches grouped by default
    assert len(run.data.params["data.fingerprint"]) == 64
    client = MlflowClient(local_store(workdir))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", ".hydra"} <= artifacts
    history = client.get_metric_history(run.info.run_id, "train/loss")
    steps = [m.step for m in history]
    assert steps == sorted(steps) and len(steps) >= 4
    assert (workdir / "out" / "checkpoints" / "best.ckpt").is_file()


def test_ddp_cpu_trains_two_processes_into_one_run(workdir: Path) -> None:
    result = run_ftlab("train", *TINY_TEXT, "trainer=ddp_cpu", "hydra.run.dir=out", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = all_runs(local_store(workdir))
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert "test/mse" in runs[0].data.metrics
    assert (
        "trainer.devices" in runs[0].data.params and runs[0].data.params["trainer.devices"] == "2"
    )


def test_digits_pretrain_then_finetune_from_its_checkpoint(workdir: Path) -> None:
    pretrain = run_ftlab(
        "train", "experiment=digits_pretrain", *TINY_DIGITS, "hydra.run.dir=pre", cwd=workdir
    )
    assert pretrain.returncode == 0, pretrain.stderr[-3000:]
    checkpoint = workdir / "pre" / "checkpoints" / "best.ckpt"
    finetune = run_ftlab(
        "train",
        "experiment=digits_finetune",
        f"model.backbone.path={checkpoint}",
        "data.max_samples=300",
        "trainer.max_epochs=2",
        "hydra.run.dir=fine",
        cwd=workdir,
    )
    assert finetune.returncode == 0, finetune.stderr[-3000:]
    runs = {r.data.tags["ftlab.experiment"]: r for r in all_runs(local_store(workdir))}
    assert set(runs) == {"digits_pretrain", "digits_finetune"}
    assert all(r.info.status == "FINISHED" for r in runs.values())
    # The fine-tuned model saw only digits 5-9, relabelled as five classes.
    assert runs["digits_finetune"].data.params["data.classes"] == "[5, 6, 7, 8, 9]"
    assert "test/acc" in runs["digits_finetune"].data.metrics


def test_runs_started_at_the_same_instant_never_share_a_folder(workdir: Path) -> None:
    """Both runs ask for the same base folder at once (as two runs in one second do with the
    default outputs/DATE/TIME); each gets its own, with its own config and checkpoints."""
    import subprocess

    import yaml

    from conftest import FTLAB, TINY_DIGITS_RUN, cli_env

    same = "hydra.run.dir='${ftlab.unique_dir:outputs/same-second}'"
    runs = [
        subprocess.Popen(
            [FTLAB, "train", *TINY_DIGITS_RUN, "trainer.max_epochs=1", "logger=none", f"seed={seed}", same],
            cwd=workdir, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for seed in (1, 2)
    ]  # fmt: skip
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert all(run.returncode == 0 for run in runs), errors
    folders = sorted(workdir.glob("outputs/same-second-*"))
    assert len(folders) == 2
    seeds = {yaml.safe_load((f / ".hydra" / "config.yaml").read_text())["seed"] for f in folders}
    assert seeds == {1, 2}
    assert all((f / "checkpoints" / "best.ckpt").is_file() for f in folders)


def test_ftlab_malloc_system_leaves_malloc_alone_and_the_run_says_so(workdir: Path) -> None:
    """`FTLAB_MALLOC=system ftlab train ...`: the opt-out from ftlab.allocator, recorded on the
    run, so a slower step time can be told apart from a slower model."""
    from conftest import TINY_DIGITS_RUN, cli_env

    env = {**cli_env(), "FTLAB_MALLOC": "system"}
    result = run_ftlab("train", *TINY_DIGITS_RUN, "trainer.max_epochs=1", cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = all_runs(local_store(workdir))
    assert run.info.status == "FINISHED"
    assert run.data.tags["ftlab.malloc"] == "left to the user's setting"
