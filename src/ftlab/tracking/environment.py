"""The Python environment of a run, as a requirements file anyone can install from."""

from __future__ import annotations

from importlib import metadata


def requirements_txt() -> str:
    """Every installed distribution as `name==version`, sorted, one per line."""
    pins = dict(filter(None, (_name_and_version(dist) for dist in metadata.distributions())))
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def _name_and_version(dist: metadata.Distribution) -> tuple[str, str] | None:
    """Read only the header lines of METADATA: `dist.metadata` parses the whole file (long
    descriptions included), which made this the slowest part of starting a run."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    name = version = ""
    for line in text.splitlines():
        if not line:  # the headers end at the first blank line
            break
        if line.startswith("Name:"):
            name = line[5:].strip().lower()
        elif line.startswith("Version:"):
            version = line[8:].strip()
    return (name, version) if name and version else None
