"""Everything Hydra must know before it composes ftlab's configs."""

from __future__ import annotations

from ftlab.config.resolvers import register_resolvers
from ftlab.config.schemas import register_schemas


def prepare_hydra() -> None:
    """Register the typed schemas and resolvers; safe to call more than once."""
    register_schemas()
    register_resolvers()


def compose_train(overrides: list[str], output_dir: str | None = None, with_hydra: bool = False):
    """The config `ftlab train OVERRIDES` would run, composed in-process (tests, benchmarks).

    `output_dir` stands in for the run folder Hydra would create; `with_hydra` keeps the `hydra:`
    section (the sweeper's settings live there).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from ftlab.config.locate import config_dir

    prepare_hydra()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=with_hydra)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg
