"""The Python environment of a run, as a requirements file anyone can install from."""

from __future__ import annotations

from importlib import metadata


def requirements_txt() -> str:
    """Every installed distribution as `name==version`, sorted, one per line."""
    pins = {
        (dist.metadata["Name"] or "").lower(): dist.version for dist in metadata.distributions()
    }
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()) if name)
