"""`ftlab dashboard`: optuna-dashboard (an optional dependency: `pip install ftlab[dashboard]`) on
a sweep's study storage, bound to 127.0.0.1. Each trial carries its MLflow run id
(`mlflow_run_id`), and the objective axis is named after `optimized_metric`."""

from __future__ import annotations

import subprocess
import sys

from ftlab.errors import FtlabError
from ftlab.redact import redact_text
from ftlab.sweep.storage import default_storage_url


def serve_dashboard(storage: str | None, port: int, host: str = "127.0.0.1") -> int:
    import importlib.util

    if importlib.util.find_spec("optuna_dashboard") is None:
        raise FtlabError(
            "ftlab dashboard needs optuna-dashboard: pip install 'ftlab[dashboard]' "
            "(or pip install optuna-dashboard)"
        )
    url = storage or default_storage_url()
    print(f"optuna-dashboard for {redact_text(url)}: http://{host}:{port}/ (Ctrl-C stops it)")
    program = "from optuna_dashboard._cli import main; import sys; sys.exit(main())"
    command = [sys.executable, "-c", program, url, "--host", host, "--port", str(port)]
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0
