"""A device's last probe, kept on the controller: `devices check` writes it, `plan` reads it where the
device's profile gives no facts, and says how old it is."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgebench.outputs import write_whole
from edgebench.paths import state_root


@dataclass(frozen=True)
class StoredProbe:
    facts: dict
    date: str          # ISO 8601, UTC
    path: Path


def probe_path(device_name: str) -> Path:
    return state_root() / "probes" / f"{device_name}.json"


def remember(device_name: str, facts: dict, date: str) -> Path:
    """Keep the facts, whole and atomically (a reader never sees half a file)."""
    path = probe_path(device_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_whole(path, json.dumps({"device": device_name, "date": date, "facts": facts}, indent=1, default=str))


def recall(device_name: str) -> StoredProbe | None:
    """The last probe kept for this device; none where there is none or it cannot be read (a plan goes on
    without it)."""
    path = probe_path(device_name)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("facts"), dict) or not isinstance(data.get("date"), str):
        return None
    return StoredProbe(data["facts"], data["date"], path)
