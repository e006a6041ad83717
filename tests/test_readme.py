"""Every command in the README's code blocks is run here, so the README cannot drift: as written
when that is quick, else a fast variant (a tiny model, a slice of the data, one epoch) with the
README's placeholders filled in, or by the named test that already runs it."""

from __future__ import annotations

import re
import shlex
import zlib
from pathlib import Path

import pytest

from conftest import all_runs, local_store, run_ftlab

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = [
    "model=tiny_bert",
    "data.max_samples=240",
    "trainer.log_every_n_steps=2",
    "trainer.max_epochs=1",
]
DIGITS = ["data.max_samples=300", "trainer.max_epochs=1", "model.backbone.width=8"]
SWEEP = ["hydra.sweeper.n_trials=2", "logger.system_metrics=false"]

# README command -> extra overrides for a fast variant (replacing `ftlab train` placeholders), or
# the test that runs it already.
COMMANDS: dict[str, list[str] | str] = {
    "make demo": "CI runs `make test`; demo is `ftlab train`, below",
    "make test": "what CI runs",
    "ftlab train": TEXT,
    "ftlab train optimizer=sgd optimizer.lr=0.01": TEXT,
    "ftlab train experiment=vader_polarity": TEXT,
    "ftlab train experiment=digits_pretrain": DIGITS,
    "ftlab train experiment=digits_finetune model.backbone.path=outputs/DATE/TIME-ID/checkpoints/best.ckpt": ["data.max_samples=200", "trainer.max_epochs=1"],
    "ftlab train finetune=linear_probe": TEXT,
    "ftlab train trainer=ddp_cpu": "test_cli_train.py::test_ddp_cpu_trains_two_processes_into_one_run",
    "ftlab train data=csv data.path=my.tsv data.text_column=sentence data.label_column=label": TEXT,
    "ftlab train data=image_folder data.root=~/pets model=timm model.backbone.weights_file=resnet18.safetensors": ["data.image_size=32", "trainer.max_epochs=1"],
    "ftlab train -m optimizer.lr=1e-5,3e-5,1e-4": [*TEXT, "logger.log_model=false"],
    "ftlab train --help": [],
    "ftlab train --cfg job": [],
    "ftlab ui": "test_cli_ui.py::test_ui_serves_the_local_store",
    "ftlab runs --sort test/mse": [],
    "ftlab compare RUN_A RUN_B": "test_tracking.py::test_runs_and_compare_commands",
    "ftlab sync outputs/DATE/TIME-ID": [],
    "ftlab reproduce RUN --check": "test_reproduce.py::test_reproduce_check_gives_equal_metrics_and_weights",
    "ftlab resume RUN": "test_reproduce.py::test_sigkilled_run_resumes_into_the_same_run_and_matches_an_uninterrupted_one",
    "ftlab train --config-path $PWD/outputs/DATE/TIME-ID/.hydra --config-name config": "test_reproduce.py::test_rerun_from_the_saved_config_files_alone",
    "ftlab train hparams_search=lr_optimizer": [*TEXT, *SWEEP],
    "ftlab train hparams_search=lr_optimizer experiment=digits_scratch hydra.sweeper.n_trials=40": [*DIGITS, *SWEEP],
    "ftlab train hparams_search=lr_optimizer optimizer=sgd": "test_sweep.py::test_a_value_fixed_on_the_command_line_wins_over_the_preset",
    "ftlab train hparams_search=lr_optimizer optimizer.lr=tag(log, interval(1e-4, 1e-2))": [*TEXT, *SWEEP],
    "ftlab train -m hydra/sweeper=ftlab_optuna model/head=choice(linear, mlp) data.batch_size=choice(16,32,64)": [*TEXT, *SWEEP],
    "ftlab train hparams_search=lr_optimizer hydra.sweeper.workers=2": [*TEXT, *SWEEP],
    "ftlab train hparams_search=lr_optimizer hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2": [*TEXT, *SWEEP],
    "ftlab train hparams_search=lr_optimizer hydra/launcher=submitit_local hydra.sweeper.n_jobs=2": "test_sweep_scale.py::test_hydras_launchers_run_the_trials",
    "ftlab train hparams_search=lr_optimizer hydra.sweeper.storage=postgresql://USER:PASSWORD@HOST/DB hydra.sweep.dir=multirun/worker1": "test_sweep_scale.py::test_a_team_sweep_on_postgres_keeps_its_password_and_resumes",
    "ftlab dashboard": "test_sweep_scale.py::test_optuna_dashboard_shows_the_study_with_metric_names",
    "ftlab server --backend-store-uri postgresql://USER:PASSWORD@HOST/DB --host 0.0.0.0": "test_team_server.py (a real server and PostgreSQL, two users)",
    "torchrun --nnodes 2 --nproc-per-node 1 --node-rank 0 --master-addr HOST0 -m ftlab.train trainer=ddp_cpu trainer.devices=1 trainer.num_nodes=2 hydra.run.dir=outputs/job42": "test_multinode.py::test_two_torchrun_nodes_train_like_one_node_with_two_processes",
    "ftlab train finetune=gradual": [*TEXT[:-1], "trainer.max_epochs=2"],
    "ftlab train finetune=gradual finetune.unfreeze=all finetune.frozen_epochs=2": [*TEXT[:-1], "trainer.max_epochs=3"],
    "ftlab train finetune=lp_ft": [*TEXT[:-1], "trainer.max_epochs=2"],
    "ftlab train finetune=full finetune.layer_decay=0.75": TEXT,
    "ftlab train finetune=lp_ft finetune.layer_decay=0.8": [*TEXT[:-1], "trainer.max_epochs=2"],
    "ftlab train finetune=lora finetune.rank=16 finetune.target_modules=[query,key,value]": TEXT,
}  # fmt: skip


def readme_commands() -> dict[str, list[str]]:
    """The commands of the README's bash blocks (ftlab, make, torchrun), comments and leading
    VAR=value settings dropped: each as its words joined by spaces (the key in COMMANDS) and as
    the words the shell passes."""
    commands = {}
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                words = words[1:]
            if words and words[0] in ("ftlab", "make", "torchrun"):
                commands[" ".join(words)] = words
    return commands


def test_every_readme_command_is_covered() -> None:
    assert sorted(set(readme_commands())) == sorted(COMMANDS), "update COMMANDS with the README"


@pytest.fixture(scope="module")
def project(tmp_path_factory, digits_checkpoint: Path, digits_image_folder: Path) -> Path:
    """A user's project folder: the README's placeholder files made real, and one finished run."""
    import timm
    from safetensors.torch import save_file

    from ftlab.data.vader import lexicon_text, parse_lexicon

    folder = tmp_path_factory.mktemp("readme_project")
    tokens, valences = parse_lexicon(lexicon_text())
    rows = [
        f"{t}\t{'positive' if v > 0 else 'negative'}"
        for t, v in zip(tokens[:300], valences[:300], strict=True)
    ]
    (folder / "my.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    save_file(
        timm.create_model("resnet18", num_classes=0).state_dict(),
        str(folder / "resnet18.safetensors"),
    )
    (folder / "pets").symlink_to(digits_image_folder)
    (folder / "pretrained.ckpt").symlink_to(digits_checkpoint)
    done = run_ftlab("train", *TEXT, "hydra.run.dir=outputs/DATE/TIME-ID", cwd=folder)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


def _arguments(command: str, project: Path) -> list[str]:
    """The command's words as the shell passes them (without "ftlab"), placeholders made real;
    each sweep gets a study of its own, as it would in a fresh project."""
    placeholders = {
        "outputs/DATE/TIME-ID/checkpoints/best.ckpt": str(project / "pretrained.ckpt"),
        "~/pets": str(project / "pets"),
    }
    words = []
    for word in readme_commands()[command][1:]:
        for placeholder, real in placeholders.items():
            word = word.replace(placeholder, real)
        words.append(word)
    if "hparams_search=" in command or "hydra/sweeper=ftlab_optuna" in command:
        words.append(f"hydra.sweeper.study_name=readme-{zlib.crc32(command.encode()):08x}")
    return words


@pytest.mark.parametrize("command", [c for c, how in COMMANDS.items() if isinstance(how, list)])
def test_readme_command_runs(command: str, project: Path) -> None:
    arguments = [*_arguments(command, project), *COMMANDS[command]]
    before = len(all_runs(local_store(project)))
    result = run_ftlab(*arguments, cwd=project)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    if arguments[:1] == ["train"] and "--help" not in arguments and "--cfg" not in arguments:
        after = all_runs(local_store(project))
        assert len(after) > before and all(r.info.status == "FINISHED" for r in after)
