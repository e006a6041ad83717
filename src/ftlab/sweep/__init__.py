"""Optuna sweeps driven from Hydra: the search space, the sweeper, and the job's link to its trial."""

from ftlab.names import TRIAL_KEY

__all__ = ["TRIAL_KEY"]
