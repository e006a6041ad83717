"""What `ftlab reproduce` / `ftlab resume` tell the training process they launch.

They pass it through the environment, not the config: the config must stay exactly the logged
one, and Lightning's DDP ranks inherit the environment of the process that starts them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

RESUME_VARIABLE = "FTLAB_RESUME"
REPRODUCE_VARIABLE = "FTLAB_REPRODUCE"


@dataclass(frozen=True)
class ResumeRequest:
    """Continue `run_id` from `checkpoint`, in the same MLflow run. `store_checks`: the config
    came from a store and was not `--trust`ed, so its resolved values are checked for secrets
    (environment variables named in `allowed_env` excepted)."""

    run_id: str
    checkpoint: str
    store_checks: bool = True
    allowed_env: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReproduceRequest:
    """Run `run_id`'s config as a new run; `token` lets the launcher find that new run."""

    run_id: str
    token: str
    store_checks: bool = True
    allowed_env: tuple[str, ...] = ()


def as_environment(request: ResumeRequest | ReproduceRequest) -> dict[str, str]:
    variable = RESUME_VARIABLE if isinstance(request, ResumeRequest) else REPRODUCE_VARIABLE
    return {variable: json.dumps(asdict(request))}


def resume_request() -> ResumeRequest | None:
    raw = os.environ.get(RESUME_VARIABLE)
    return ResumeRequest(**json.loads(raw)) if raw else None


def reproduce_request() -> ReproduceRequest | None:
    raw = os.environ.get(REPRODUCE_VARIABLE)
    return ReproduceRequest(**json.loads(raw)) if raw else None
