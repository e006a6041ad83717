"""Every attack tried on ftlab stays here as a test: configs, models and checkpoints from a shared
store must not run code, load pickles or read this machine's secrets; secrets given to ftlab never
reach what it logs, writes or prints."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from conftest import (
    TINY_DIGITS_RUN,
    all_runs,
    cli_env,
    local_store,
    refused,
    run_ftlab,
    store_run,
    tiny_config,
)
from ftlab.config.trust import check_config_trust, check_targets
from ftlab.errors import FtlabError

PWNED = "pwned"  # every payload below creates this file when it runs


class Payload:
    """A pickle that creates PWNED in the current directory when it is unpickled."""

    def __reduce__(self):
        return (os.system, (f"touch {PWNED}",))


def _assert_not_run(workdir: Path) -> None:
    assert not (workdir / PWNED).exists(), "the attacker's code ran"


# ------------------------------------------------------------------ configs from a store
STORE_ATTACKS = {
    # Names that start with trusted packages but resolve to os.system / eval.
    "torch_os_system": ("callbacks.evil", {"_target_": "torch.os.system", "_args_": [f"touch {PWNED}"]}),
    "ftlab_module_os": (
        "callbacks.evil",
        {"_target_": "ftlab.config.locate.os.system", "_args_": [f"touch {PWNED}"]},
    ),
    "fx_builtins_eval": (
        "callbacks.evil",
        {"_target_": "torch.fx.graph.builtins.eval", "_args_": [f"__import__('os').system('touch {PWNED}')"]},
    ),
    "plain_os_system": ("callbacks.evil", {"_target_": "os.system", "command": f"touch {PWNED}"}),
    # Trusted functions that run pickles.
    "hub_pickle_url": (
        "callbacks.evil",
        {"_target_": "torch.hub.load_state_dict_from_url", "url": "file:///{payload}", "weights_only": False},
    ),
    "torch_load_file": ("callbacks.evil", {"_target_": "torch.load", "f": "{payload}", "weights_only": False}),
}  # fmt: skip


@pytest.fixture
def payload_file(workdir: Path) -> Path:
    path = workdir / "payload.pt"
    torch.save(Payload(), path)
    return path


# Every attack through reproduce; resume takes the same check, shown with the pickle attacks that
# ran under both.
CASES = [("reproduce", a) for a in sorted(STORE_ATTACKS)] + [
    ("resume", "hub_pickle_url"),
    ("resume", "torch_load_file"),
]


@pytest.mark.parametrize("command, attack", CASES)
def test_a_stored_config_cannot_run_code(
    attack: str, command: str, workdir: Path, payload_file: Path
) -> None:
    config = tiny_config()
    key, node = STORE_ATTACKS[attack]
    node = json.loads(json.dumps(node).replace("{payload}", str(payload_file)))
    config["callbacks"][key.split(".")[1]] = node
    status = "KILLED" if command == "resume" else "FINISHED"
    run_id = store_run(workdir, config, status=status, **{"ftlab.output_dir": str(workdir / "o")})
    message = refused(workdir, command, run_id)
    assert key in message and "refusing to run it" in message
    _assert_not_run(workdir)


@pytest.mark.parametrize(
    "where, setting",
    [
        ("model.backbone.config_overrides", {"trust_remote_code": True}),
        ("callbacks.model_checkpoint", {"weights_only": False}),
    ],
)
def test_a_stored_config_cannot_switch_safety_off(where: str, setting: dict, workdir: Path) -> None:
    config = tiny_config()
    node = config
    for part in where.split("."):
        node = node.setdefault(part, {})
    node.update(setting)
    run_id = store_run(workdir, config)
    message = refused(workdir, "reproduce", run_id)
    assert f"{where}.{next(iter(setting))}" in message and "turns off a safety check" in message


def test_a_stored_config_gets_the_value_checks_a_composed_one_gets(workdir: Path) -> None:
    """A logged config.yaml is plain YAML, without the schema that refuses `lr=-1` when Hydra
    composes; reproduce still refuses it in one line, before a run or an output folder exists."""
    config = tiny_config()
    config["optimizer"]["lr"] = -1.0
    run_id = store_run(workdir, config)
    message = refused(workdir, "reproduce", run_id)
    assert message == "error: optimizer.lr must be > 0 (got -1.0)", message


@pytest.mark.parametrize(
    "run_name, variable",
    [
        ("leak-${oc.env:AWS_SECRET_ACCESS_KEY}", "AWS_SECRET_ACCESS_KEY"),
        # found by review: a call nested in another's arguments passed the check, and CI_JOB_JWT
        # does not look secret by name, so nothing caught its value afterwards either
        ("leak-${oc.select:nope,${oc.env:CI_JOB_JWT}}", "CI_JOB_JWT"),
    ],
)
def test_a_stored_config_cannot_read_the_environment(
    run_name: str, variable: str, workdir: Path
) -> None:
    config = tiny_config()
    config["run_name"] = run_name
    run_id = store_run(workdir, config)
    env = {**cli_env(), variable: "very-secret-value-0123"}
    result = run_ftlab("reproduce", run_id, cwd=workdir, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert "run_name" in message and f"--allow-env {variable}" in message
    assert len(all_runs(local_store(workdir))) == 1  # only the stored one
    assert "very-secret-value-0123" not in result.stdout + result.stderr


def test_stored_overrides_are_data_not_a_second_route(workdir: Path) -> None:
    """A clean config.yaml with poisoned overrides.yaml: reproduce runs the config, the overrides
    never reach Hydra's composition as commands."""
    poisoned = [
        *TINY_DIGITS_RUN,
        "hydra.searchpath=[file:///nonexistent/evil]",
        "+callbacks.evil._target_=os.system",
        f"+callbacks.evil.command='touch {PWNED}'",
        "+x=${oc.env:HOME}",
    ]
    config = tiny_config()
    config["trainer"]["max_epochs"] = 1
    config["logger"]["log_model"] = False
    run_id = store_run(workdir, config, overrides=poisoned)
    result = run_ftlab("reproduce", run_id, cwd=workdir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    _assert_not_run(workdir)
    assert len(all_runs(local_store(workdir))) == 2


def test_resume_writes_only_into_a_folder_that_holds_a_run(workdir: Path, tmp_path: Path) -> None:
    """The output-folder tag comes from the store: a folder that is not an ftlab run folder is
    never written into."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    config = tiny_config()
    run_id = store_run(workdir, config, status="KILLED", **{"ftlab.output_dir": str(victim)})
    refused(workdir, "resume", run_id)  # no checkpoint in the store either
    assert sorted(p.name for p in victim.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize(
    "key, value",
    [
        ("callbacks.model_checkpoint.dirpath", "/tmp/elsewhere"),
        ("callbacks.last_checkpoint.dirpath", "${paths.output_dir}/../../elsewhere"),
        ("paths.output_dir", "/tmp/elsewhere"),
        ("paths.root_dir", "/tmp/elsewhere"),
        # found by a second review: `..` from an interpolation, and a file name with a path
        ("callbacks.model_checkpoint.dirpath", "${paths.output_dir}/${oc.select:x,..}/${oc.select:x,..}/elsewhere"),
        ("callbacks.model_checkpoint.filename", "../../elsewhere/best"),
        ("callbacks.model_checkpoint.filename", "/tmp/elsewhere/best"),
    ],
)  # fmt: skip
def test_a_stored_config_cannot_move_where_the_run_writes(
    key: str, value: str, workdir: Path
) -> None:
    """Found by a review: a stored checkpoint folder made a resume write `best.ckpt` into any
    folder (and, with a tampered last.ckpt, delete a file there)."""
    config = tiny_config()
    section, *rest = key.split(".")
    node = config[section]
    for part in rest[:-1]:
        node = node[part]
    node[rest[-1]] = value
    run_id = store_run(workdir, config)
    message = refused(workdir, "reproduce", run_id)
    assert message.startswith(f"error: {key}: ") and "--trust" in message, message


@pytest.mark.parametrize("epochs", [2, 1], ids=["trains_on", "nothing_left_to_train"])
def test_a_tampered_checkpoint_cannot_name_files_outside_its_folder(
    tmp_path: Path, epochs: int
) -> None:
    """Found by a review: Lightning restores the best-checkpoint bookkeeping from the checkpoint
    it resumes, and deletes the k-th best it names when a better one comes: a `last.ckpt` from a
    store naming `<dirpath>/../file` deleted that file. ftlab's trainer resets such bookkeeping."""
    import lightning.pytorch as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from ftlab.builders import build_trainer

    class Improves(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
            self.log("val/score", 1.0 + self.current_epoch)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    folder, victim = tmp_path / "out" / "checkpoints", tmp_path / "victim.txt"
    victim.write_text("the user's file")
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)))
    cfg = OmegaConf.create(
        {
            "trainer": {"_target_": "lightning.pytorch.Trainer", "max_epochs": 1, "accelerator": "cpu",
                        "enable_progress_bar": False, "enable_model_summary": False},
            "paths": {"output_dir": str(tmp_path / "out")},
        }
    )  # fmt: skip

    def trainer(epochs: int) -> tuple[L.Trainer, ModelCheckpoint]:
        best = ModelCheckpoint(dirpath=folder, filename="best", monitor="val/score", mode="max")
        built = build_trainer(cfg, [best])
        built.fit_loop.max_epochs = epochs
        return built, best

    first, _ = trainer(1)
    first.fit(Improves(), data, data)
    first.save_checkpoint(folder / "last.ckpt")
    first.strategy.checkpoint_io.wait()  # its fsync and rename run in the background
    state = torch.load(folder / "last.ckpt", weights_only=True)
    (key,) = [k for k in state["callbacks"] if k.startswith("ModelCheckpoint")]
    evil, worst = str(folder / ".." / ".." / "victim.txt"), torch.tensor(-1.0)
    state["callbacks"][key].update(
        best_k_models={evil: worst}, kth_best_model_path=evil, kth_value=worst,
        best_model_path=evil, best_model_score=worst,
    )  # fmt: skip
    torch.save(state, folder / "last.ckpt")
    resumed, best = trainer(epochs)  # 1: the fit is done; its test would read the best path
    resumed.fit(Improves(), data, data, ckpt_path=folder / "last.ckpt", weights_only=True)
    assert victim.read_text() == "the user's file"
    if epochs == 1:
        assert best.best_model_path == "" and best.best_model_score is None
    else:
        assert Path(best.best_model_path).parent == folder and float(best.best_model_score) == 2.0


# ------------------------------------------------------------------ models and checkpoints
def _tampered_model(logged_digits_model: tuple[str, str], tmp_path: Path, change) -> Path:
    import mlflow

    model_uri, tracking_uri = logged_digits_model
    mlflow.set_tracking_uri(tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "dl")))
    (model_json,) = local.rglob("model.json")
    recipe = json.loads(model_json.read_text())
    change(recipe)
    model_json.write_text(json.dumps(recipe))
    return model_json.parent


MODEL_ATTACKS = {
    "prefix_path": lambda r: r["backbone"].update(
        _target_="ftlab.models.model_folder.torch.hub.load_state_dict_from_url", url="file:///x"
    ),
    "head_os_system": lambda r: r["head"].update(_target_="os.system", command=f"touch {PWNED}"),
    "nested_target": lambda r: r["backbone"].update(
        width={"_target_": "os.system", "command": f"touch {PWNED}"}
    ),
}


@pytest.mark.parametrize("attack", sorted(MODEL_ATTACKS))
def test_a_logged_model_cannot_run_code(
    attack: str, logged_digits_model: tuple[str, str], tmp_path: Path, monkeypatch
) -> None:
    from ftlab.models.model_folder import Predictor, load_backbone

    monkeypatch.chdir(tmp_path)
    folder = _tampered_model(logged_digits_model, tmp_path, MODEL_ATTACKS[attack])
    with pytest.raises(FtlabError, match="not an ftlab class|may not name callables"):
        Predictor(folder) if attack == "head_os_system" else load_backbone(folder)
    _assert_not_run(tmp_path)


def test_fine_tuning_from_a_tampered_logged_model_is_refused(
    logged_digits_model: tuple[str, str], workdir: Path, tmp_path: Path
) -> None:
    """`ftlab train model=from_mlflow` (no reproduce, no --trust) on a poisoned model.json."""
    _, tracking_uri = logged_digits_model
    folder = _tampered_model(logged_digits_model, tmp_path, MODEL_ATTACKS["prefix_path"])
    client = MlflowClient(tracking_uri)
    run = client.create_run(client.create_experiment(f"poisoned-{os.getpid()}-{workdir.name}"))
    client.log_artifacts(run.info.run_id, str(folder), "model/artifacts/ftlab_model")
    args = [
        "experiment=digits_scratch",
        "data.max_samples=300",
        "model=from_mlflow",
        f"model.backbone.uri=runs:/{run.info.run_id}/model",
        f"logger.tracking_uri={tracking_uri}",
        "logger.enabled=false",
    ]
    result = run_ftlab("train", *args, cwd=workdir)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model.backbone.uri") and "not an ftlab class" in last
    assert "Traceback" not in result.stderr
    _assert_not_run(workdir)


def test_a_checkpoint_cannot_run_code(workdir: Path, digits_checkpoint: Path) -> None:
    pickled = workdir / "evil.ckpt"
    torch.save({"state_dict": {}, "ftlab": {"backbone": {}}, "x": Payload()}, pickled)
    retargeted = workdir / "retargeted.ckpt"
    checkpoint = torch.load(digits_checkpoint, weights_only=True)
    checkpoint["ftlab"]["backbone"] = {"_target_": "torch.os.system", "command": f"touch {PWNED}"}
    torch.save(checkpoint, retargeted)
    text = workdir / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    expected = {
        pickled: "cannot read",
        retargeted: "not an ftlab class",
        text: "is not a PyTorch checkpoint",
    }
    for path, message in expected.items():
        args = ["experiment=digits_finetune", f"model.backbone.path={path}", "logger=none"]
        result = run_ftlab("train", *args, "data.max_samples=120", cwd=workdir)
        assert result.returncode == 2, result.stderr[-2000:]
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: model.backbone.path") and message in last, last
        assert "Traceback" not in result.stderr
    _assert_not_run(workdir)


# ------------------------------------------------------------------ the trust check itself
def test_targets_are_compared_by_identity_not_by_name(tmp_path: Path, monkeypatch) -> None:
    check_targets(
        {"a": [{"_target_": "torch.optim.AdamW"}, {"_target_": "torch.optim.adamw.AdamW"}]}
    )
    for evil in ("torch.os.system", "builtins.eval", "torch.load", "ftlab.train.os.system"):
        with pytest.raises(FtlabError, match=r"a\[1\].b._target_"):
            check_targets({"a": [{}, {"b": {"_target_": evil}}]})
    # --allow trusts what is named and defined under a module, not what it imports.
    package = tmp_path / "mylab"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text("import os\nclass Net:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    check_targets({"m": {"_target_": "mylab.models.Net"}}, ["mylab.models"])
    with pytest.raises(FtlabError):
        check_targets({"m": {"_target_": "mylab.models.os.system"}}, ["mylab.models"])
    check_targets({"m": {"_target_": "mylab.models.Net"}}, ["mylab.models.Net"])
    sys.modules.pop("mylab.models", None), sys.modules.pop("mylab", None)


def test_a_store_cannot_make_ftlab_import_a_module() -> None:
    assert "antigravity" not in sys.modules
    with pytest.raises(FtlabError, match="names nothing"):
        check_targets({"x": {"_target_": "antigravity.geohash"}})
    assert "antigravity" not in sys.modules


def test_interpolations_other_than_pure_ones_are_refused() -> None:
    check_config_trust({"a": "${hydra:runtime.output_dir}", "b": "${now:%H}", "c": "${a}"})
    with pytest.raises(FtlabError, match="reads the environment variable HOME"):
        check_config_trust({"run_name": "x-${oc.env:HOME}"})
    check_config_trust({"run_name": "x-${oc.env:HOME}"}, allowed_env=["HOME"])
    with pytest.raises(FtlabError, match="calls the resolver 'python.eval'"):
        check_config_trust({"k": "${python.eval:1+1}"})


@pytest.mark.parametrize(
    "value, refusal",
    [
        ("leak-${oc.select:nope,${oc.env:CI_JOB_JWT}}", "reads the environment variable CI_JOB_JWT"),
        ("${${r}:CI_JOB_JWT}", "builds a resolver's name"),
        ("${oc.${e}:CI_JOB_JWT}", "builds a resolver's name"),
        ("${oc.env:${v}}", "reads the environment variable (named by an interpolation)"),
        ("${oc.decode:${a}${b}}", "calls the resolver 'oc.decode'"),
        ("${oc.create:${a}}", "calls the resolver 'oc.create'"),
        ("${oc.env:CI_JOB_JWT", "is not a valid interpolation"),
    ],
)  # fmt: skip
def test_environment_reads_hidden_in_other_forms_are_refused(value: str, refusal: str) -> None:
    """Found by a review: a regex over `${name:` missed calls nested in another's arguments, names
    built by interpolations, and `oc.decode` assembling a call from pieces at resolution."""
    with pytest.raises(FtlabError, match=re.escape(refusal)):
        check_config_trust({"run_name": value})
    check_config_trust({"run_name": "${oc.env:'HOME'}-${ oc.env : HOME }"}, allowed_env=["HOME"])


def test_a_process_running_a_stored_config_reads_only_the_allowed_variables() -> None:
    """Behind the config check, the process that runs a stored config resolves `oc.env` only for
    the variables named with --allow-env, whatever form reached the resolver."""
    from omegaconf.resolvers import oc

    from ftlab.config.trust import guard_environment

    config = OmegaConf.create({"home": "${oc.env:HOME}", "user": "${oc.select:x,${oc.env:USER}}"})
    try:
        guard_environment(["HOME"])
        assert config.home == os.environ["HOME"]
        with pytest.raises(Exception, match="may not read the environment"):
            _ = config.user
    finally:
        OmegaConf.register_new_resolver("oc.env", oc.env, replace=True, use_cache=False)
    assert OmegaConf.create({"u": "${oc.env:HOME}"}).u == os.environ["HOME"]


# ------------------------------------------------------------------ secrets never leave
@pytest.mark.parametrize(
    "text, secret",
    [
        ("postgresql://ftlab:S3cret@Pw0rd@db/x", "Pw0rd"),  # a raw "@" in the password
        ("postgresql:///x?host=db&sslpassword=KeyPassphrase99", "KeyPassphrase99"),
        ("s3://bucket/x?X-Amz-Signature=abcdef0123", "abcdef0123"),
        ("+db.pwd=Hunter2Hunter2", "Hunter2Hunter2"),
        ("mlflowPassword=Hunter2Hunter2", "Hunter2Hunter2"),
        ("hub.tokens=hf_abcdefghij", "hf_abcdefghij"),
        ("ci.jwt=eyJhbGciOiJSUzI1NiJ9", "eyJhbGciOiJSUzI1NiJ9"),
        ("db.passphrase=KeyPassphrase99", "KeyPassphrase99"),
    ],
)  # fmt: skip
def test_secrets_in_common_spellings_are_redacted(text: str, secret: str) -> None:
    """Found by a review: these spellings reached params, overrides.yaml and the screen."""
    from ftlab.redact import looks_secret, redact_text

    assert secret not in redact_text(text, set())
    assert not looks_secret("PWD") and not looks_secret("OLDPWD")  # the shell's folders


def test_listing_a_store_never_prints_its_password(workdir: Path) -> None:
    """Found by a review: `ftlab runs` against a server that does not answer printed MLflow's
    traceback, whose messages carry the tracking URI with its password."""
    for args in (["runs"], ["compare", "a", "b"]):
        result = run_ftlab(
            *args, "--tracking-uri", "http://alice:S3cretPassw0rd@127.0.0.1:9", cwd=workdir
        )
        assert result.returncode == 2, result.stderr[-2000:]
        assert "S3cretPassw0rd" not in result.stdout + result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: MLflow tracking server")


def test_override_secrets_are_redacted_in_every_file_and_on_screen(workdir: Path) -> None:
    secret, password = "hf_0123456789abcdefXYZ", "s3cr3t-passw0rd"
    result = run_ftlab(
        "train", *TINY_DIGITS_RUN, "trainer.max_epochs=1", "logger.log_model=false",
        f"+hub.token={secret}", f"+db.url=postgresql://ftlab:{password}@127.0.0.1/x",
        "hydra.run.dir=out", cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert secret not in result.stdout + result.stderr
    assert password not in result.stdout + result.stderr
    for path in (workdir / "out").rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".log", ".json", ".jsonl"):
            text = path.read_text()
            assert secret not in text and password not in text, path
    (run,) = all_runs(local_store(workdir))
    client = MlflowClient(local_store(workdir))
    for name in ("config.yaml", ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"):
        text = Path(
            client.download_artifacts(run.info.run_id, name, str(workdir / "dl"))
        ).read_text()
        assert secret not in text and password not in text, name
    hydra_yaml = yaml.safe_load((workdir / "out" / ".hydra" / "hydra.yaml").read_text())
    assert "+hub.token=***redacted***" in hydra_yaml["hydra"]["overrides"]["task"]
    values = [*run.data.params.values(), *run.data.tags.values()]
    assert not any(secret in v or password in v for v in values)
    shutil.rmtree(workdir / "dl", ignore_errors=True)
