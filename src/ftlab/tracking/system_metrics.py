"""CPU, memory and GPU use, sampled into the run as `system/*` metrics (MLflow's own names).

ftlab samples them itself rather than through MLflow's monitor: that monitor stops for good at the
first failed call, so one tracking-server outage ended a run's system metrics; these go through
the run's spool like every other metric.
"""

from __future__ import annotations

import contextlib
import os


class SystemSampler:
    def __init__(self, pid: int | None = None, cuda: bool = False) -> None:
        """`pid`: the training process, when another process (ftlab's tracking helper) samples;
        `cuda`: whether that process trains on CUDA GPUs (this one can tell by itself)."""
        import psutil

        self._psutil = psutil
        self._process = psutil.Process(pid or os.getpid())
        self._elsewhere = self._process.pid != os.getpid()
        self._cuda = cuda
        psutil.cpu_percent(interval=None)  # the first reading is since this call

    def sample(self) -> dict[str, float]:
        memory = self._psutil.virtual_memory()
        values = {
            "system/cpu_utilization_percentage": self._psutil.cpu_percent(interval=None),
            "system/system_memory_usage_megabytes": (memory.total - memory.available) / 2**20,
            "system/system_memory_usage_percentage": memory.percent,
        }
        with contextlib.suppress(self._psutil.Error):  # the training process just ended
            rss = self._process.memory_info().rss
            values["system/process_memory_rss_megabytes"] = rss / 2**20
        if not self._elsewhere:
            values.update(_gpu_values())
        elif self._cuda:
            values.update(_gpu_values_from_nvidia_smi())
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


def _gpu_values_from_nvidia_smi() -> dict[str, float]:
    """The same GPU figures, read by a process without a CUDA context of its own: the driver's
    `nvidia-smi`, for the GPUs `CUDA_VISIBLE_DEVICES` shows (numbered as the training process
    sees them), none where it is absent."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {}
    query = ["--query-gpu=index,uuid,memory.used,utilization.gpu", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run([smi, *query], capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return {}
    return gpu_values_as_seen(out.stdout, os.environ.get("CUDA_VISIBLE_DEVICES"))


def gpu_values_as_seen(smi_csv: str, visible: str | None) -> dict[str, float]:
    """`nvidia-smi`'s rows (index, uuid, memory used MiB, utilization %) for the GPUs `visible`
    (CUDA_VISIBLE_DEVICES: indices or UUIDs; None: all) lists, numbered in that order, as CUDA
    numbers them for the training process."""
    rows = [[part.strip() for part in line.split(",")] for line in smi_csv.splitlines()]
    rows = [row for row in rows if len(row) == 4]
    if visible is not None:
        wanted = [entry.strip() for entry in visible.split(",") if entry.strip()]
        rows = [row for entry in wanted for row in rows if entry in (row[0], row[1])]
    values = {}
    for local, (_, _, used_mb, utilization) in enumerate(rows):
        for name, text in (
            ("memory_usage_megabytes", used_mb),
            ("utilization_percentage", utilization),
        ):
            with contextlib.suppress(ValueError):  # "[N/A]", as MIG devices say
                values[f"system/gpu_{local}_{name}"] = float(text)
    return values
