"""Time marks inside a real `ftlab train` process, for the startup benchmark.

Marks are seconds since the process started (which the exec of `ftlab train` into
`python -m ftlab.train` keeps). `first_step.FirstStep` writes them out.

`python benchmarks/probes.py OVERRIDES` runs `ftlab.train` as `python -m ftlab.train` would, with
a time mark at each phase boundary of `train()`: ftlab's own functions are wrapped before they are
called (train.py looks them up at call time), nothing else changes.
"""

from __future__ import annotations

import functools
import os
import runpy
import sys
import time
from collections.abc import Callable
from typing import Any

MARKS: dict[str, float] = {}


def process_age() -> float:
    """Seconds since this process started. On Linux from its start tick and the boot clock
    (10 ms steps); psutil's create time adds the boot time, which Linux rounds to whole seconds."""
    try:
        with open("/proc/self/stat") as file:
            start_ticks = int(file.read().rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, AttributeError, ValueError):
        import psutil

        return time.time() - psutil.Process().create_time()


def mark(name: str) -> None:
    """Seconds from process start to now, kept under `name` (the first time only)."""
    MARKS.setdefault(name, process_age())


def _wrap(
    owner: Any,
    attr: str,
    before: str | None = None,
    after: str | None = None,
    then: Callable[[], None] | None = None,
) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if before:
            mark(before)
        result = original(*args, **kwargs)
        if after:
            mark(after)
        if then:
            then()
        return result

    setattr(owner, attr, timed)


def _install_phase_marks() -> None:
    import ftlab.config.checks
    import ftlab.console

    # check_config is train()'s first call: interpreter, Hydra and compose are done by then.
    _wrap(ftlab.config.checks, "check_config", before="config composed")
    original_quiet = ftlab.console.quiet_lightning

    def after_heavy_imports() -> None:
        # train() calls quiet_lightning right after importing Lightning and the builders.
        mark("heavy imports")
        from ftlab import builders

        _wrap(builders, "build_datamodule", before="config printed", after="data")
        _wrap(builders, "build_model", after="model")
        _wrap(builders, "build_trainer", after="trainer", then=_mark_record_start)
        original_quiet()

    ftlab.console.quiet_lightning = after_heavy_imports


def _mark_record_start() -> None:
    # train() imports the tracking record module right after the trainer is built; so does this,
    # so the import's cost stays in the MLflow phase.
    import ftlab.tracking.record

    _wrap(ftlab.tracking.record, "record_start", after="mlflow run")


def main() -> None:
    mark("python started")
    _install_phase_marks()
    sys.argv = ["ftlab.train", *sys.argv[1:]]
    runpy.run_module("ftlab.train", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    import probes  # one module object, so first_step.FirstStep sees the same MARKS

    probes.main()
