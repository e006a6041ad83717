"""Pure helpers, in-process and fast, so a failure points at the function rather than at a
30-second CLI run."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import TINY_DIGITS_RUN, TINY_TEXT
from ftlab.builders import relaunches_script
from ftlab.config.checks import check_config, data_task
from ftlab.config.overrides import repeated_keys, replayable
from ftlab.config.resolvers import unique_dir
from ftlab.config.setup import compose_train
from ftlab.errors import FtlabError
from ftlab.redact import REDACTED, looks_secret, redact_text, redact_tree, secret_values
from ftlab.reproduce.compat import check_known_keys
from ftlab.stopping import Interrupted, final_status
from ftlab.tracking.spool import MetricSpool


@pytest.mark.parametrize(
    "name, secret",
    [
        ("hf_token", True), ("db.password", True), ("OPENAI_API_KEY", True),
        ("AWS_SECRET_ACCESS_KEY", True), ("MLFLOW_TRACKING_PASSWORD", True), ("auth", True),
        ("PWD", False), ("tokenizer", False), ("optimizer.lr", False), ("author", False),
    ],
)  # fmt: skip
def test_looks_secret(name: str, secret: bool) -> None:
    assert looks_secret(name) is secret


def test_redaction_of_urls_assignments_and_environment_secrets() -> None:
    secrets = secret_values({"MY_API_KEY": "sk-abcdef123456", "HOME": "/root"})
    assert secrets == {"sk-abcdef123456"}
    assert redact_text("postgresql://ftlab:pw0rd@db:5432/x", secrets) == (
        f"postgresql://ftlab:{REDACTED}@db:5432/x"
    )
    assert (
        redact_text("http://h/api?token=abc&x=1", secrets) == f"http://h/api?token={REDACTED}&x=1"
    )
    assert redact_text("a=1,hub.token=xyz,b=2", secrets) == f"a=1,hub.token={REDACTED},b=2"
    assert redact_text("key sk-abcdef123456 here", secrets) == f"key {REDACTED} here"
    assert redact_tree({"db": {"password": "x"}, "l": ["+hub.token=y"]}, secrets) == {
        "db": {"password": REDACTED},
        "l": [f"+hub.token={REDACTED}"],
    }
    assert redact_text("/tmp/work/outputs", secrets) == "/tmp/work/outputs"


def test_strategies_that_relaunch_the_command_line() -> None:
    assert relaunches_script("ddp") and not relaunches_script("ddp_spawn")
    assert not relaunches_script("auto")
    strategy = OmegaConf.create({"_target_": "lightning.pytorch.strategies.DDPStrategy"})
    assert relaunches_script(strategy)
    spawn = OmegaConf.create(
        {"_target_": "lightning.pytorch.strategies.DDPStrategy", "start_method": "spawn"}
    )
    assert not relaunches_script(spawn)


def test_a_key_unknown_to_this_version_is_named() -> None:
    config = OmegaConf.to_container(compose_train(TINY_DIGITS_RUN), resolve=False)
    check_known_keys(config, TINY_DIGITS_RUN, "0.1.0")
    config["trainer"]["new_knob"] = 1
    with pytest.raises(FtlabError, match="trainer.new_knob.*ftlab 9.9"):
        check_known_keys(config, TINY_DIGITS_RUN, "9.9")


def test_stored_overrides_replay_only_choices_and_values() -> None:
    assert replayable(["model=x", "hydra.searchpath=[file:///e]", "a=${oc.env:X}", "b=1"]) == [
        "model=x",
        "b=1",
    ]
    assert repeated_keys(["a=1", "b=2", "a=3", "hydra.run.dir=x", "hydra.run.dir=y"]) == [
        "a is given twice on the command line ('a=1', then 'a=3'); the last one counts"
    ]


def test_loss_auto_follows_the_data_task_and_keeps_its_settings(tmp_path: Path) -> None:
    cfg = compose_train(TINY_TEXT, tmp_path)
    assert data_task(cfg) == "regression"
    check_config(cfg)
    assert cfg.loss._target_ == "ftlab.models.losses.MSE"
    digits = compose_train(
        ["data=digits", "model=digits_cnn", "loss=auto", "+loss.label_smoothing=0.1"], tmp_path
    )
    check_config(digits)
    assert digits.loss._target_ == "ftlab.models.losses.CrossEntropy"
    assert digits.loss.label_smoothing == 0.1


def test_unknown_keys_name_the_known_ones(tmp_path: Path) -> None:
    cfg = compose_train([*TINY_TEXT, "+data.extra_option=1"], tmp_path)
    with pytest.raises(
        FtlabError, match=r"data.extra_option is not a setting of data .*batch_size"
    ):
        check_config(cfg)


@pytest.mark.parametrize(
    "key, value, message",
    [("optimizer.lr", -1.0, "optimizer.lr"), ("data.batch_size", 0, "data.batch_size"),
     ("trainer.max_epochs", 0, "trainer.max_epochs")],
)  # fmt: skip
def test_a_stored_config_gets_the_value_checks_too(
    key: str, value: object, message: str, tmp_path: Path
) -> None:
    """A config read back from a store is plain YAML, with no schema attached: its values are
    checked against the schema of its group that builds the same target."""
    composed = compose_train(TINY_DIGITS_RUN, tmp_path)
    stored = OmegaConf.create(OmegaConf.to_yaml(composed))  # as `reproduce` reads config.yaml
    check_config(stored)  # a stored config that was fine stays fine
    OmegaConf.update(stored, key, value)
    with pytest.raises(FtlabError, match=message):
        check_config(stored)


def test_a_sweep_job_composed_from_its_shape_equals_hydras_own_composition() -> None:
    """Jobs differing only in numbers reuse one composition; the result must be exactly what
    Hydra composes for each job, down to `hydra.overrides.task` and `override_dirname`."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.plugins import Plugins
    from hydra.types import RunMode

    from ftlab.config.locate import config_dir
    from ftlab.config.setup import prepare_hydra
    from ftlab.sweep.job_configs import JobConfigLoader

    prepare_hydra()
    Plugins.instance()  # registers the sweeper's config
    hydra_loader = ConfigLoaderImpl(create_config_search_path(str(config_dir())))
    fixed = ["hparams_search=lr_optimizer", "experiment=digits_scratch"]
    master = hydra_loader.load_configuration("train", fixed, run_mode=RunMode.MULTIRUN)
    loader = JobConfigLoader(hydra_loader)
    jobs = [
        (["optimizer=adam", "optimizer.lr=0.1", "+_trial.number=0"], False),
        (["optimizer=adam", "optimizer.lr=2e-05", "+_trial.number=1"], True),
        (["optimizer=sgd", "optimizer.lr=0.3", "optimizer.momentum=0.5", "+_trial.number=2"], False),
        (["optimizer=sgd", "optimizer.lr=1", "optimizer.momentum=0.5", "+_trial.number=3"], False),
        (["optimizer=sgd", "optimizer.lr=0.01", "optimizer.momentum=0.9", "+_trial.number=4"], True),
        (["optimizer=adam", "optimizer.lr=0.07", "data.batch_size=16", "+_trial.number=5"], False),
        (["optimizer=adam", "optimizer.lr=0.07", "data.batch_size=48", "+_trial.number=6"], True),
        (["optimizer=adam", "optimizer.lr=0.07", "+_trial.number=7", "+_trial.note=x"], False),
        (["optimizer=adam", "optimizer.lr=0.07", "+_trial.number=8", "+_trial.note=y"], False),
    ]  # fmt: skip
    for job, reused in jobs:
        overrides = fixed + job
        assert loader.has_composed(master, overrides) is reused, job
        ours = loader.load_sweep_config(master, overrides)
        hydras = hydra_loader.load_sweep_config(master, overrides)
        assert OmegaConf.to_container(ours) == OmegaConf.to_container(hydras), job
        assert OmegaConf.is_struct(ours) and ours.hydra.overrides.task == overrides
    too_big = [*fixed, "optimizer=adam", "optimizer.lr=" + "9" * 400]  # a known shape
    for composer in (hydra_loader, loader):  # Hydra refuses the number, and so do we
        with pytest.raises(OverflowError):
            composer.load_sweep_config(master, too_big)


def _make_unique(base: str, queue) -> None:
    queue.put(unique_dir(base))


def _storage_id(url: str, queue) -> None:
    from ftlab.sweep.storage import lock_engine, make_storage

    queue.put((id(make_storage(url)), id(lock_engine(url))))


def test_a_process_opens_one_optuna_storage_per_url_and_a_child_opens_its_own(
    tmp_path: Path,
) -> None:
    """An in-process sweep's jobs reuse the sweeper's storage instead of opening one a trial; a
    forked child must never share its parent's database connections (the storage's, nor those
    of the engine that takes the study lock on PostgreSQL and MySQL)."""
    from ftlab.sweep.storage import lock_engine, make_storage

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage, engine = make_storage(url), lock_engine(url)
    assert make_storage(url) is storage and lock_engine(url) is engine
    assert make_storage(url, heartbeat_s=5) is not storage
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_storage_id, args=(url, queue))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    child_storage, child_engine = queue.get(timeout=5)
    assert child_storage != id(storage) and child_engine != id(engine)


def test_unique_dirs_never_collide_across_processes(tmp_path: Path) -> None:
    base = str(tmp_path / "outputs" / "same-second")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_make_unique, args=(base, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    made = {queue.get(timeout=10) for _ in workers}
    assert len(made) == 4 and all(Path(p).is_dir() and p.startswith(base + "-") for p in made)
    assert unique_dir(base) == unique_dir(base)  # one process: one folder per base


def test_how_a_run_ended() -> None:
    assert final_status(None, None, False) == "FINISHED"
    assert final_status(Interrupted, Interrupted(), True) == "KILLED"
    assert final_status(SystemExit, SystemExit(1), True) == "KILLED"  # Lightning's exit(1)
    assert final_status(SystemExit, SystemExit(None), False) == "FINISHED"
    assert final_status(SystemExit, SystemExit(2), False) == "FAILED"
    assert final_status(FtlabError, FtlabError("x"), False) == "FAILED"


def test_the_spool_hands_over_complete_records_in_order(tmp_path: Path) -> None:
    spool = MetricSpool(tmp_path)
    spool.append([("a", 1.0, 10, 0), ("b", 2.0, 10, 0)])
    spool.commit()
    records, offset = spool.unsent(1)
    assert records == [("a", 1.0, 10, 0)]
    spool.mark_sent(offset)
    spool.append([("a", 3.0, 11, 1)])
    spool.commit()
    records, offset = spool.unsent(10)
    assert records == [("b", 2.0, 10, 0), ("a", 3.0, 11, 1)]
    spool.mark_sent(offset)
    assert not spool.pending()
    (tmp_path / "metrics.jsonl").open("a").write('["c", 1.0, 12')  # a line being written
    assert spool.unsent(10)[0] == []


def test_batches_grouped_by_length_stay_a_function_of_seed_and_epoch() -> None:
    import torch

    from ftlab.data.sampling import EpochShuffle

    lengths = [(i * 7919) % 23 + 1 for i in range(1000)]

    def order(epoch: int, resume_at=None) -> list[int]:
        sampler = EpochShuffle(
            1000, 3, torch.Generator(), resume_at, lengths=lengths, batch_size=16
        )
        sampler.set_epoch(epoch)
        return list(sampler)

    first = order(0)
    assert sorted(first) == list(range(1000)) and first == order(0) and first != order(1)
    batches = [first[i : i + 16] for i in range(0, 1000, 16)]
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches[:-1]]
    assert sum(spread) / len(spread) < 3  # similar lengths in a batch (ungrouped: about 20)
    assert len(batches[-1]) == 1000 % 16  # the short batch last: DataLoader cuts at batch ends
    assert order(0, resume_at=(0, 32)) == first[32:]


def test_the_progress_bar_redraws_at_most_every_fifth_of_a_second_and_at_the_last_batch() -> None:
    from ftlab.callbacks.progress import EpochProgressBar

    bar = EpochProgressBar()
    assert bar.refresh_rate <= 5, (
        "Rich's own refresh thread would render the bar 100 times a second"
    )
    assert bar._redraw_due(1, 100)
    assert not bar._redraw_due(2, 100), "redrawn right after the last redraw"
    assert bar._redraw_due(100, 100), "the epoch's last batch must show"
    assert not bar._redraw_due(3, float("inf"))


def test_a_run_leaves_the_garbage_collector_on_and_unfrozen(tmp_path: Path) -> None:
    """A run pauses Python's collector while it sets up and freezes its setup while it fits; a
    sweep worker runs trial after trial in one process, so both must be undone however the run
    ends."""
    import gc

    from ftlab.train import train

    gc.enable()
    run = [*TINY_DIGITS_RUN, "logger.enabled=false", "test=false"]
    train(compose_train(run, str(tmp_path / "ok")))
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with pytest.raises(FtlabError, match="data.root"):
        train(compose_train([*run, "data=image_folder", "data.root=/nonexistent"], str(tmp_path)))
    assert gc.isenabled() and gc.get_freeze_count() == 0


@pytest.mark.parametrize("first", ["sweep_check", "worker", "job"])
def test_a_process_running_trial_after_trial_keeps_its_imports_frozen_and_collects_each_trial(
    tmp_path: Path, first: str
) -> None:
    """A process that runs multirun jobs freezes its imports for good, before the collector is
    back on: at the sweep's config check (a sweep's own process), at a worker's start (torch, to
    size its threads, then Lightning) or at its first job (a launcher's worker). Each job then
    neither unfreezes them nor leaves anything of its own frozen (a trial's model, frozen, would
    never be freed). In a fresh interpreter: the freeze is for life, and the imports must be its
    first."""
    import json
    import subprocess
    import sys

    run = [*TINY_DIGITS_RUN, "logger.enabled=false", "test=false"]
    child = subprocess.run(
        [sys.executable, "-c", JOBS_IN_ONE_PROCESS, json.dumps(run), str(tmp_path), first],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-3000:]
    found = json.loads(child.stdout.splitlines()[-1])
    assert found["collections_over_unfrozen_imports"] == 0
    (on_1, frozen), (on_2, still_frozen) = found["after_each_job"]
    assert on_1 and on_2 and frozen > 100_000, "torch and Lightning's objects were not frozen"
    # Frozen objects may still die by refcount; a job's own objects must not join them.
    assert 0.9 * frozen < still_frozen <= frozen, found
    assert found["modules_alive"] == 0, "a job's model outlived its job"


JOBS_IN_ONE_PROCESS = """
import gc, json, sys
from ftlab.config.setup import compose_train
from ftlab.train import train
assert "torch" not in sys.modules
walked = []
def watch(phase, info):
    if phase == "start" and "torch" in sys.modules and gc.get_freeze_count() == 0:
        walked.append(info["generation"])
gc.enable()
gc.callbacks.append(watch)
if sys.argv[3] == "sweep_check":  # as the sweeper's check does
    from ftlab.collector import import_for_trials
    import_for_trials()
elif sys.argv[3] == "worker":  # as a worker pool's process starts: pinned, then warmed up
    from ftlab.collector import import_for_trials
    from ftlab.sweep.workers import _pin
    _pin(None, 1)
    import_for_trials()
after_each_job = []
for index in range(2):
    train(compose_train(json.loads(sys.argv[1]), f"{sys.argv[2]}/{index}"), multirun=True)
    after_each_job.append((gc.isenabled(), gc.get_freeze_count()))
gc.callbacks.clear()
from ftlab.models.module import FineTuneModule
gc.collect()
alive = sum(isinstance(o, FineTuneModule) for o in gc.get_objects())
print(json.dumps({"collections_over_unfrozen_imports": len(walked),
                  "after_each_job": after_each_job, "modules_alive": alive}))
"""


@pytest.mark.parametrize(
    ("variable", "value", "other_rank"),
    [("RANK", "1", True), ("GROUP_RANK", "2", True), ("SLURM_PROCID", "3", True),
     ("LOCAL_RANK", "1", True), ("RANK", "0", False), ("SLURM_PROCID", "0", False)],
)  # fmt: skip
def test_ranks_other_than_0_start_no_tracking_helper(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, other_rank: bool
) -> None:
    """Whatever launched them (Lightning, torchrun, srun), ranks other than 0 record nothing,
    so they load no MLflow beside their training."""
    from ftlab.train import _started_as_other_rank

    for name in ("RANK", "GROUP_RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, value)
    assert _started_as_other_rank() is other_rank


def test_the_helpers_gpu_figures_are_those_of_the_training_processs_gpus() -> None:
    """The helper reads GPUs through nvidia-smi, which lists every GPU by its bus index: only
    those CUDA_VISIBLE_DEVICES shows are kept, numbered as the training process numbers them."""
    from ftlab.tracking.system_metrics import gpu_values_as_seen

    smi = "0, GPU-aaa, 100, 5\n1, GPU-bbb, 200, 50\n2, GPU-ccc, 300, [N/A]\n"
    assert gpu_values_as_seen(smi, "2,GPU-bbb") == {
        "system/gpu_0_memory_usage_megabytes": 300.0,
        "system/gpu_1_memory_usage_megabytes": 200.0,
        "system/gpu_1_utilization_percentage": 50.0,
    }
    assert len(gpu_values_as_seen(smi, None)) == 5
    assert gpu_values_as_seen(smi, "") == {}


def test_a_ddp_run_resumed_mid_epoch_gets_each_ranks_remaining_batches() -> None:
    """Under DDP, Lightning's sampler wrapper deals ftlab's order out to the ranks by position and
    expects it as long as the sampler says (it used to index past a cut order and crash). After k
    batches per rank, each rank's next full batches are those an uninterrupted epoch would have
    given it; the epoch's short last batch starts the same and is filled up with examples already
    trained (Lightning ends the epoch by its batch count, so nothing after it is trained)."""
    import torch
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    from ftlab.data.sampling import EpochShuffle

    size, batch, world, done = 480, 32, 2, 3

    def rank_batches(rank: int, resume_at=None) -> list[list[int]]:
        inner = EpochShuffle(size, 7, torch.Generator(), resume_at, keep_length=True)
        sampler = DistributedSamplerWrapper(inner, num_replicas=world, rank=rank, shuffle=False)
        sampler.set_epoch(2)
        indices = list(sampler)
        return [indices[i : i + batch] for i in range(0, len(indices), batch)]

    for rank in range(world):
        whole = rank_batches(rank)
        resumed = rank_batches(rank, resume_at=(2, done * batch * world))
        remaining = len(whole) - done
        assert resumed[: remaining - 1] == whole[done:-1]
        assert resumed[remaining - 1][: len(whole[-1])] == whole[-1]


ALLOCATE_AGAIN = """
import json, resource, torch
from ftlab import allocator

kept = allocator.keep_freed_memory()
faults = []
for step in range(40):  # freed blocks merge and fit the next one within about ten rounds
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(16 * 2**20)  # 64 MB: over the 32 MB glibc maps on their own by default
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del block
print(json.dumps({"kept": kept, "setting": allocator.malloc_setting(), "faults": faults[-20:]}))
"""


@pytest.mark.parametrize(
    ("environment", "setting"),
    [
        ({}, "keeps freed memory"),
        ({"FTLAB_MALLOC": "system"}, "left to the user's setting"),
        ({"MALLOC_TRIM_THRESHOLD_": "131072"}, "left to the user's setting"),
    ],
)
def test_malloc_keeps_freed_memory_unless_the_user_chose_otherwise(
    environment: dict[str, str], setting: str
) -> None:
    """A block freed and taken again step after step costs no page faults once ftlab keeps freed
    memory (16k a step, one per 4 KB page, with glibc's defaults); a user's own choice is left
    as it is, and recorded as theirs."""
    import json
    import os
    import subprocess
    import sys

    chosen = ("MALLOC_", "FTLAB_MALLOC", "GLIBC_TUNABLES", "LD_PRELOAD", "THP_MEM_ALLOC_ENABLE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(chosen)}
    done = subprocess.run(
        [sys.executable, "-c", ALLOCATE_AGAIN], env={**env, **environment}, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    kept = setting == "keeps freed memory"
    assert result["kept"] is kept and result["setting"] == setting
    faulting_rounds = sum(faults > 10_000 for faults in result["faults"])
    if kept:
        assert faulting_rounds == 0, result["faults"]
    elif "[always]" not in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text():
        assert faulting_rounds == 20, result["faults"]  # huge pages would fault 512x less


def test_the_last_save_is_told_apart_by_the_fit_loops_own_stop_conditions() -> None:
    """Whether the fit stops after this epoch: by steps, by epochs, or by a stop request once
    the minimum epochs and steps are met; -1 means no limit."""
    from types import SimpleNamespace

    from ftlab.callbacks.checkpoints import _fit_ends_after_this_epoch

    def ends(global_step=5, epochs=1, should_stop=False, **limits) -> bool:
        limits = {
            "max_steps": -1,
            "max_epochs": -1,
            "min_epochs": None,
            "min_steps": None,
            **limits,
        }
        progress = SimpleNamespace(current=SimpleNamespace(processed=epochs))
        loop = SimpleNamespace(epoch_progress=progress, **limits)
        trainer = SimpleNamespace(fit_loop=loop, global_step=global_step, should_stop=should_stop)
        return _fit_ends_after_this_epoch(trainer)

    assert not ends()
    assert ends(max_steps=5) and not ends(max_steps=6)
    assert ends(epochs=3, max_epochs=3) and not ends(epochs=2, max_epochs=3)
    assert ends(should_stop=True)
    assert not ends(should_stop=True, min_epochs=2) and ends(should_stop=True, min_epochs=1)
    assert not ends(should_stop=True, min_steps=6) and ends(should_stop=True, min_steps=5)


def test_training_that_leaves_a_non_finite_weight_fails(tmp_path: Path) -> None:
    """The fit's last step has no loss after it to show a divergence: the weights it leaves do."""
    import lightning.pytorch as L
    import torch

    from ftlab.callbacks.divergence import NonFiniteLoss

    class Overflows(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            return 1e30 * self.layer(batch[0]).sum()  # finite; its gradient times lr is not

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=1e30)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)))
    trainer = L.Trainer(
        max_steps=1, callbacks=[NonFiniteLoss()], default_root_dir=tmp_path, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    with pytest.raises(FtlabError, match=r"^weight layer\.(weight|bias) is -?inf at step 1"):
        trainer.fit(Overflows(), train_dataloaders=data)


def test_the_metric_names_the_checks_know_are_the_ones_logged() -> None:
    """`monitor.metric` is checked against names.TASK_METRICS before anything is built."""
    from ftlab.models.metrics import task_metrics
    from ftlab.names import CLASSIFICATION, REGRESSION, TASK_METRICS

    for task in (REGRESSION, CLASSIFICATION):
        logged = set(task_metrics(task, 3, prefix="val/").keys())
        assert logged == {f"val/{name}" for name in TASK_METRICS[task]}


def test_time_based_validation_intervals_are_accepted(tmp_path: Path) -> None:
    """Lightning takes a time for `val_check_interval` as for `max_time`."""
    for value in ("00:00:30:00", "{minutes: 30}", "0.5", "20"):
        overrides = [*TINY_DIGITS_RUN, f"trainer.val_check_interval={value}"]
        check_config(compose_train(overrides, tmp_path))


def test_a_login_in_the_tracking_uri_is_sent_as_a_header() -> None:
    """urllib cannot open `http://user:pw@host`; the reachability probe sends the login as
    MLflow's client does."""
    import base64

    from ftlab.tracking.run import _without_credentials

    address, headers = _without_credentials("http://alice:p%40ss@127.0.0.1:5000/prefix")
    assert address == "http://127.0.0.1:5000/prefix"
    assert headers == {"Authorization": "Basic " + base64.b64encode(b"alice:p@ss").decode()}
    assert _without_credentials("http://127.0.0.1:5000") == ("http://127.0.0.1:5000", {})


def test_a_full_disk_under_train_log_is_said_once_not_per_line(capsys) -> None:
    import contextlib
    import logging

    from ftlab.console import file_log

    full = logging.FileHandler("/dev/full")  # every write fails: No space left on device
    root = logging.getLogger()
    root.addHandler(full)
    log = file_log()
    try:
        for epoch in range(3):
            log.info("epoch %d", epoch)
    finally:
        root.removeHandler(full)
        log.removeHandler(full)
        log.propagate = True
        with contextlib.suppress(OSError):  # its buffer cannot be flushed either
            full.close()
    printed = capsys.readouterr().err
    assert printed.splitlines() == [
        "warning: cannot write /dev/full ([Errno 28] No space left on device)"
    ], printed
