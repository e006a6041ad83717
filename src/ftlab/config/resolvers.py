"""OmegaConf resolvers that ftlab configs use (`${ftlab.cwd:}`, `${ftlab.unique_dir:BASE}`)."""

from __future__ import annotations

import functools
import os
import secrets
from pathlib import Path

from omegaconf import OmegaConf

RUN_DIR_PATTERN = "${ftlab.unique_dir:outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}}"
SWEEP_DIR_PATTERN = "${ftlab.unique_dir:multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}}"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("ftlab.cwd"):
        OmegaConf.register_new_resolver("ftlab.cwd", os.getcwd)
    if not OmegaConf.has_resolver("ftlab.unique_dir"):
        OmegaConf.register_new_resolver("ftlab.unique_dir", unique_dir)


@functools.cache
def unique_dir(base: str) -> str:
    """`BASE-<6 hex>`, created here with an exclusive mkdir: two runs started in the same second
    (in any two processes) never share a folder. The same BASE gives the same folder within one
    process, however often Hydra resolves it."""
    Path(base).parent.mkdir(parents=True, exist_ok=True)
    while True:
        candidate = f"{base}-{secrets.token_hex(3)}"
        try:
            Path(candidate).mkdir()
        except FileExistsError:
            continue
        return candidate


def add_default_output_dirs(argv: list[str]) -> None:
    """A run from a saved config (`--config-path DIR --config-name config`) does not compose
    ftlab's hydra/default.yaml: give it the same unique output folders on the command line."""
    if not any(
        a in ("--config-path", "-cp", "--config-dir", "-cd")
        or a.startswith(("--config-path=", "--config-dir="))
        for a in argv
    ):
        return
    keys = {a.split("=", 1)[0].lstrip("+") for a in argv}
    multirun = "-m" in argv or "--multirun" in argv
    if multirun and "hydra.sweep.dir" not in keys:
        argv.append(f"hydra.sweep.dir='{SWEEP_DIR_PATTERN}'")
    if not multirun and "hydra.run.dir" not in keys:
        argv.append(f"hydra.run.dir='{RUN_DIR_PATTERN}'")
