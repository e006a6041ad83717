"""ftlab: fine-tuning experiments composed by Hydra, trained by Lightning, tracked in MLflow."""

__version__ = "0.1.0"
