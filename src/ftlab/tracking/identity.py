"""Facts that identify a run beyond its config: code version, machine, devices."""

from __future__ import annotations

import platform
import socket
import subprocess
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def git_state(root: str | Path) -> dict[str, str]:
    """Commit, branch and dirty flag of the git checkout at `root` ({} outside git)."""
    root = Path(root)
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {}
    status = _git(root, "status", "--porcelain", "--untracked-files=no") or ""
    return {
        "git.commit": commit.strip(),
        "git.branch": (_git(root, "rev-parse", "--abbrev-ref", "HEAD") or "").strip(),
        "git.dirty": str(bool(status.strip())).lower(),
    }


def git_diff(root: str | Path) -> str:
    """The uncommitted change against HEAD ('' when clean or outside git)."""
    return _git(Path(root), "diff", "HEAD") or ""


def machine_tags(accelerator: str, devices: object) -> dict[str, str]:
    import torch

    use_gpu = accelerator in ("gpu", "cuda") or (
        accelerator == "auto" and torch.cuda.is_available()
    )
    if use_gpu and torch.cuda.is_available():
        count = torch.cuda.device_count() if devices in (-1, "auto") else _device_count(devices)
        device_type = torch.cuda.get_device_name(0)
    else:
        count = _device_count(devices)
        device_type = "cpu"
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device.type": device_type,
        "device.count": str(count),
    }


def _device_count(devices: object) -> int:
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, list | tuple):
        return len(devices)
    return 1
