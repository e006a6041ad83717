"""A seeded tiny run logs the same first losses as when this file was recorded (1e-5).

A refactor that changes numerics (data order, init, loss, optimizer, schedule) fails here.
Re-record deliberately with: FTLAB_RECORD_REGRESSION=1 pytest tests/test_regression.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import all_runs, local_store, run_ftlab

RECORDED = Path(__file__).parent / "data" / "regression_losses.json"
RUN = [
    "experiment=digits_scratch",
    "data.max_samples=300",
    "model.backbone.width=8",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "seed=7",
]
FIRST_STEPS = 8


def test_first_logged_losses_match_the_recording(workdir: Path) -> None:
    result = run_ftlab("train", *RUN, "hydra.run.dir=out", cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = all_runs(local_store(workdir))
    history = MlflowClient(local_store(workdir)).get_metric_history(run.info.run_id, "train/loss")
    losses = [m.value for m in sorted(history, key=lambda m: m.step)][:FIRST_STEPS]
    assert len(losses) == FIRST_STEPS
    if os.environ.get("FTLAB_RECORD_REGRESSION"):
        RECORDED.write_text(json.dumps({"overrides": RUN, "train/loss": losses}, indent=2) + "\n")
    recorded = json.loads(RECORDED.read_text())
    assert recorded["overrides"] == RUN
    assert losses == pytest.approx(recorded["train/loss"], abs=1e-5, rel=0)
