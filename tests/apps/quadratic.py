"""A plain Hydra app (not ftlab's) for sweeper tests: its minimum, exactly 0.0, is at x=2, y=-1.
`objectives=2` returns two values (a multi-objective sweep)."""

import time

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="quadratic")
def main(cfg: DictConfig):
    if cfg.fail:
        raise RuntimeError("this trial was told to fail")
    time.sleep(cfg.sleep)  # trials of unequal length: a worker pool's use shows
    distance = (cfg.x - 2) ** 2 + (cfg.y + 1) ** 2
    if cfg.objectives == 2:
        return [distance, abs(cfg.x)]
    return distance


def extend_space(cfg: DictConfig, trial) -> None:
    """A custom search space: what Hydra's grammar cannot say (a range that depends on x)."""
    trial.suggest_float("z", 0.0, max(1.0, float(trial.params["x"])))


if __name__ == "__main__":
    main()
