"""The `ftlab` command. Kept free of heavy imports so `ftlab --help` answers at once.

`ftlab train ...` replaces this process with `python -m ftlab.train ...`: the training command line
is then a plain Hydra one that Lightning's DDP launcher can re-execute for every rank.
"""

from __future__ import annotations

import argparse
import os
import sys

SUBCOMMANDS = {
    "train": "fine-tune a model (Hydra overrides; -m for a sweep; --help lists config groups)",
    "ui": "serve the MLflow UI for this project's tracking store on 127.0.0.1",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftlab",
        description="Fine-tuning experiments: Hydra configs, Lightning training, MLflow tracking, Optuna sweeps.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("train", help=SUBCOMMANDS["train"], add_help=False)
    ui = commands.add_parser("ui", help=SUBCOMMANDS["ui"])
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument(
        "--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or ./mlruns/mlflow.db"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        os.execv(sys.executable, [sys.executable, "-m", "ftlab.train", *argv[1:]])
    args = _parser().parse_args(argv)
    if args.command == "ui":
        from ftlab.tracking.ui import serve

        return serve(args.port, args.tracking_uri)
    _parser().print_help()
    return 0 if args.command is None and not argv else 2


if __name__ == "__main__":
    sys.exit(main())
