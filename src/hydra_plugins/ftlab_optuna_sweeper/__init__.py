"""ftlab's Hydra plugins: the Optuna sweeper."""
