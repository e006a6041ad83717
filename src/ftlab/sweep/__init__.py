"""Optuna sweeps driven from Hydra: the search space, the sweeper, and the job's link to its trial."""

# The config key the sweeper sets on each job: study, storage, trial_id, number, parent_run_id.
TRIAL_KEY = "optuna_trial"
