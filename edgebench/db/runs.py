"""Runs read back from the database: a run directory rebuilt from its stored files, and named baselines."""

from __future__ import annotations

import json
from pathlib import Path

from edgebench.errors import EdgebenchError


def has_run(db, run_id: str) -> bool:
    return bool(db.query("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)))


def materialize(db, run_id: str, dest: Path) -> Path:
    """Write the run's stored files into `dest`/<run_id> and return that directory. A file is its parts in
    order (a run that `run --db` is still loading has one per cell)."""
    parts = db.query("SELECT name, content FROM run_files WHERE run_id = ? ORDER BY name, part", (run_id,))
    if not parts:
        raise EdgebenchError(f"no run {run_id!r} in the database {db.url}")
    files: dict[str, list[str]] = {}
    for name, content in parts:
        files.setdefault(name, []).append(content)
    path = Path(dest) / run_id
    path.mkdir(parents=True, exist_ok=True)
    for name, contents in files.items():
        (path / name).write_text("".join(contents))
    return path


def save_baseline(db, name: str, run_id: str) -> None:
    with db.transaction():
        db.execute("DELETE FROM baselines WHERE name = ?", (name,))
        db.execute("INSERT INTO baselines (name, run_id) VALUES (?, ?)", (name, run_id))


def baseline_run(db, name: str) -> str | None:
    found = db.query("SELECT run_id FROM baselines WHERE name = ?", (name,))
    return found[0][0] if found else None


def list_baselines(db) -> list[tuple[str, str, str | None, str | None, list[str]]]:
    """Each named baseline: name, run_id, the run's profile name, when it was created, and its devices."""
    found = []
    for name, run_id, profile, created, header in db.query(
            "SELECT b.name, b.run_id, r.profile_name, r.created, r.header FROM baselines b "
            "LEFT JOIN runs r ON r.run_id = b.run_id ORDER BY b.name"):
        devices = sorted((json.loads(header).get("devices") or {}) if header else {})
        found.append((name, run_id, profile, created, devices))
    return found
