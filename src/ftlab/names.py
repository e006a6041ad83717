"""Names that one part of ftlab writes and another reads back: run tags, artifact paths, config
keys, task names. Each is spelled here once; a reader and its writer import the same constant."""

# ------------------------------------------------------------------ tasks
REGRESSION = "regression"
CLASSIFICATION = "classification"
# What models/metrics.py logs per task, under train/, val/ and test/ (besides the loss).
TASK_METRICS = {REGRESSION: ("mse", "mae", "pearson"), CLASSIFICATION: ("acc", "f1_macro")}

# ------------------------------------------------------------------ config keys
TRIAL_KEY = "optuna_trial"  # the sweeper's link to a job's trial: study, trial_id, number, parent
# The sweeper hands the storage URL to its jobs through the environment, never as a config value:
# a URL with a password would otherwise be logged with every trial's config.
STORAGE_VARIABLE = "FTLAB_OPTUNA_STORAGE"

# ------------------------------------------------------------------ trial user attrs
PRUNED_AT = "pruned_at_epoch"  # the epoch a pruned trial stopped at (also a key of train's result)
OBJECTIVE_ERROR = "objective_error"  # why a job has no objective value (a key of train's result)
MLFLOW_RUN_ATTR = "mlflow_run_id"  # the job's MLflow run

# ------------------------------------------------------------------ run tags
TAG_VERSION = "ftlab.version"
TAG_SEED = "ftlab.seed"
TAG_OUTPUT_DIR = "ftlab.output_dir"  # the run's folder, where `ftlab resume` looks first
TAG_WEIGHTS = "ftlab.weights_sha256"  # what `reproduce --check` compares beside metrics
TAG_MODEL_URI = "ftlab.model_uri"  # models:/m-... of the logged model
TAG_BACKBONE_SOURCE = "ftlab.backbone_source"  # lineage: the checkpoint or model it started from
TAG_TRAINABLE = "ftlab.trainable_params"
TAG_MALLOC = "ftlab.malloc"  # whether malloc keeps freed memory (ftlab.allocator)
TAG_HEARTBEAT = "ftlab.heartbeat"  # unix seconds of the training process's last sign of life
TAG_ERROR = "ftlab.error"
TAG_REPRODUCES = "ftlab.reproduces"
TAG_REPRODUCE_TOKEN = "ftlab.reproduce_token"
TAG_DIFFERENCES = "ftlab.reproduce.differences"
TAG_RESUME_COUNT = "ftlab.resume_count"
TAG_RESUMED_FROM = "ftlab.resumed_from"
TAG_STUDY = "ftlab.study"
TAG_SWEEP_PARENT = "ftlab.sweep_parent"
TAG_TRIAL_NUMBER = "ftlab.trial_number"
TAG_TRIAL_STATE = "ftlab.trial_state"  # RUNNING, COMPLETE, PRUNED or FAIL
TAG_PRUNED_AT = "ftlab.pruned_at_epoch"
TAG_BEST_TRIAL = "ftlab.best_trial"
TAG_WORLD_SIZE = "ftlab.world_size"  # training processes, all nodes together
TAG_NUM_NODES = "ftlab.num_nodes"
TAG_GLOBAL_BATCH = "ftlab.global_batch_size"  # examples per optimizer step, all processes

# ------------------------------------------------------------------ artifacts of a run
CONFIG_ARTIFACT = "config.yaml"  # the resolved config, redacted
HYDRA_CONFIG_ARTIFACT = ".hydra/config.yaml"  # as composed, interpolations kept: reproduce reads it
HYDRA_OVERRIDES_ARTIFACT = ".hydra/overrides.yaml"
REQUIREMENTS_ARTIFACT = "environment/requirements.txt"
GIT_DIFF_ARTIFACT = "environment/git_diff.patch"
DATA_SUMMARY_ARTIFACT = "data/summary.json"
CHECKPOINTS_DIR = "checkpoints"  # in the run's folder and among its artifacts
LAST_CHECKPOINT = "last.ckpt"  # what `ftlab resume` starts from
DIFFERENCES_ARTIFACT = "reproduce/differences.json"
TRACEBACK_ARTIFACT = "error/traceback.txt"
TEST_REPORT_DIR = "test_report"
POINTER_MODEL = "model"  # runs:/ID/model: the pointer to the run's logged model
POINTER_URI_KEY = "model_uri"  # the pointer model's model_config key naming the real model
