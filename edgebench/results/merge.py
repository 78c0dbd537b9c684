"""Joining run directories, e.g. the shards of a fleet run made by N controllers.

Runs belong together when they ran the same profile and no cell appears in two
of them; shards must also be shards of one split (same N, different i). The
sources are only read; the merged run is built beside its destination and
renamed into place whole.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from edgebench import __version__
from edgebench.errors import ResultsError
from edgebench.results.aggregate import run_rows
from edgebench.results.store import FILES, RUN_KIND, SCHEMA_VERSION, now_iso, read_jsonl, read_meta

JSONL = ("devices.jsonl",) + FILES
# a merged run's status: the worst of its sources'
_STATUS_ORDER = ("complete", "failed", "interrupted", "running")


def _profile_of(meta: dict) -> dict:
    return {k: v for k, v in (meta.get("profile") or {}).items() if k != "source"}


def check_mergeable(runs: list[tuple[Path, dict]]) -> None:
    if len(runs) < 2:
        raise ResultsError("merge needs at least two run directories")
    first_path, first = runs[0]
    owner: dict[str, Path] = {}
    for path, meta in runs:
        if _profile_of(meta) != _profile_of(first):
            raise ResultsError(f"{path} ran a different profile than {first_path} "
                               f"({meta['profile'].get('name')!r} vs {first['profile'].get('name')!r}, or its "
                               f"settings differ): their numbers are not one table")
        for cell in meta.get("cells", ()):
            if cell["id"] in owner:
                raise ResultsError(f"cell {cell['id']} is in both {owner[cell['id']]} and {path}: merging would "
                                   f"mix two measurements of it (the same run twice, or overlapping shards?)")
            owner[cell["id"]] = path
    shards = [meta.get("shard") for _, meta in runs]
    if any(shards):
        counts = {s.split("/")[1] for s in shards if s}
        if None in shards or len(counts) > 1:
            raise ResultsError(f"shards of different splits cannot be merged: {', '.join(map(str, shards))}")


def merge_runs(sources: list[Path], dest: Path) -> Path:
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ResultsError(f"{dest} already exists and is not empty: merge writes a new run directory")
    runs = [(Path(p), read_meta(Path(p))) for p in sources]
    check_mergeable(runs)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        for name in JSONL:
            with open(partial / name, "w") as out:
                for path, _ in runs:
                    for record in read_jsonl(path / name):
                        out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        statuses = [meta.get("status", "running") for _, meta in runs]
        first = runs[0][1]
        meta = {"schema_version": SCHEMA_VERSION, "kind": RUN_KIND, "run_id": dest.name,
                "edgebench_version": __version__, "created": now_iso(), "finished": now_iso(),
                "status": max(statuses, key=lambda s: _STATUS_ORDER.index(s) if s in _STATUS_ORDER else 0),
                "shard": None, "profile": first["profile"],
                "devices": {k: v for _, m in runs for k, v in (m.get("devices") or {}).items()},
                "cells": [cell for _, m in runs for cell in m.get("cells", ())],
                "merged_from": [{"run_id": m.get("run_id"), "path": str(p), "shard": m.get("shard"),
                                 "status": m.get("status")} for p, m in runs]}
        (partial / "run.json").write_text(json.dumps(meta, indent=2, default=str))
        summary = {"schema_version": SCHEMA_VERSION, "run_id": dest.name, "rows": run_rows(partial)}
        (partial / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.replace(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return dest
