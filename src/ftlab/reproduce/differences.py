"""What differs between the run being reproduced and the run reproducing it, besides the config:
code version, package versions, data and hardware. Reported before training starts and recorded
on the new run, so a metric that does not come back has its likely cause next to it."""

from __future__ import annotations

from typing import Any

from ftlab import __version__
from ftlab.names import REQUIREMENTS_ARTIFACT, TAG_VERSION
from ftlab.reproduce.source import artifact_text
from ftlab.tracking.environment import requirements_txt
from ftlab.tracking.identity import git_state, machine_tags

_CODE_TAGS = {"git.commit": "git commit", "git.dirty": "uncommitted changes"}
_HARDWARE_TAGS = {
    "host": "host",
    "platform": "platform",
    "python": "python",
    "torch": "torch",
    "device.type": "device type",
    "device.count": "device count",
}


def environment_differences(
    client: Any,
    original_run_id: str,
    root_dir: str,
    accelerator: str,
    devices: Any,
    fingerprint: str,
) -> list[dict[str, str]]:
    """[{"what", "original", "now"}, ...] for every fact that changed (empty: same everything)."""
    original = client.get_run(original_run_id)
    tags, params = original.data.tags, original.data.params
    now = {
        **git_state(root_dir),
        **machine_tags(accelerator, devices),
        TAG_VERSION: __version__,
    }
    found = []
    facts = {**_CODE_TAGS, TAG_VERSION: "ftlab version", **_HARDWARE_TAGS}
    for key, label in facts.items():
        if tags.get(key, "") != now.get(key, ""):
            found.append({"what": label, "original": tags.get(key, "?"), "now": now.get(key, "?")})
    if params.get("data.fingerprint") != fingerprint:
        found.append(
            {
                "what": "data fingerprint",
                "original": params.get("data.fingerprint", "?"),
                "now": fingerprint,
            }
        )
    found.extend(_package_differences(client, original_run_id))
    return found


def _package_differences(client: Any, run_id: str) -> list[dict[str, str]]:
    text = artifact_text(client, run_id, REQUIREMENTS_ARTIFACT)
    if text is None:  # an older run without the file: nothing to compare
        return []
    before, after = _pins(text), _pins(requirements_txt())
    return [
        {"what": f"package {name}", "original": before.get(name, "-"), "now": after.get(name, "-")}
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name) and name != "ftlab"
    ]


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        name, _, version = line.partition("==")
        if version:
            pins[name.strip()] = version.strip()
    return pins


def describe(differences: list[dict[str, str]]) -> str:
    if not differences:
        return "same code, packages, data and hardware as the original run"
    return "\n".join(f"  {d['what']}: {d['original']} -> {d['now']}" for d in differences)
