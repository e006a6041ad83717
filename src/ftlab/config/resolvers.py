"""OmegaConf resolvers that ftlab configs use (`${ftlab.cwd:}`)."""

from __future__ import annotations

import os

from omegaconf import OmegaConf


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("ftlab.cwd"):
        OmegaConf.register_new_resolver("ftlab.cwd", os.getcwd)
