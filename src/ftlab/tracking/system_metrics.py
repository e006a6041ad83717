"""CPU, memory and GPU use, sampled into the run as `system/*` metrics (MLflow's own names).

ftlab samples them itself rather than through MLflow's monitor: that monitor stops for good at the
first failed call, so one tracking-server outage ended a run's system metrics; these go through
the run's spool like every other metric.
"""

from __future__ import annotations

import contextlib
import os


class SystemSampler:
    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process(os.getpid())
        psutil.cpu_percent(interval=None)  # the first reading is since this call

    def sample(self) -> dict[str, float]:
        memory = self._psutil.virtual_memory()
        values = {
            "system/cpu_utilization_percentage": self._psutil.cpu_percent(interval=None),
            "system/system_memory_usage_megabytes": (memory.total - memory.available) / 2**20,
            "system/system_memory_usage_percentage": memory.percent,
            "system/process_memory_rss_megabytes": self._process.memory_info().rss / 2**20,
        }
        values.update(_gpu_values())
        return values


def _gpu_values() -> dict[str, float]:
    import sys

    torch = sys.modules.get("torch")  # never the reason torch (or CUDA) starts
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    values = {}
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        values[f"system/gpu_{index}_memory_usage_megabytes"] = (total - free) / 2**20
        with contextlib.suppress(Exception):  # utilization needs pynvml, which may be absent
            values[f"system/gpu_{index}_utilization_percentage"] = float(
                torch.cuda.utilization(index)
            )
    return values
