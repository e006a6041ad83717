"""Finding the shipped `conf/` directory."""

from __future__ import annotations

import os
from pathlib import Path

from ftlab.errors import FtlabError


def config_dir() -> Path:
    """The directory holding `train.yaml` and the config groups.

    `FTLAB_CONFIG_DIR` wins; otherwise `conf/` at the root of the source checkout
    (ftlab is installed editable, so the package lives in `<root>/src/ftlab`).
    """
    override = os.environ.get("FTLAB_CONFIG_DIR")
    candidate = Path(override) if override else Path(__file__).resolve().parents[3] / "conf"
    if not (candidate / "train.yaml").is_file():
        source = "FTLAB_CONFIG_DIR" if override else "the ftlab checkout"
        raise FtlabError(
            f"no train.yaml in {candidate} (from {source}); install ftlab with `pip install -e .`"
        )
    return candidate
