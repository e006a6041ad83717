"""Where tracking happens: the MLflow store, the run's life cycle, and the Lightning logger."""
