"""The callback the startup benchmark adds to `ftlab train` from the command line:
`+callbacks.first_step={_target_: first_step.FirstStep, out: FILE}` with `benchmarks/` on
PYTHONPATH. Lightning is loaded by then, so importing it here costs nothing extra."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import lightning.pytorch as L
from probes import MARKS, mark


class FirstStep(L.Callback):
    """At the end of the first optimizer step: write the time marks to `out` and end the process,
    since nothing after that step is measured (the temporary store is thrown away)."""

    def __init__(self, out: str) -> None:
        self.out = out

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        mark("first step")
        with open(self.out, "w") as file:
            json.dump(MARKS, file)
        sys.stdout.flush()
        os._exit(0)
