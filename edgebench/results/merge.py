"""Joining run directories, e.g. the shards of a fleet run made by N controllers.

Runs belong together when they ran the same profile and no cell appears in two
of them; shards must also be shards of one split (same N, different i). The
sources are only read; the merged run is built beside its destination and
renamed into place whole. Records are copied as they were written, each with its
own version (results/records.py).
"""

from __future__ import annotations

from pathlib import Path

from edgebench.errors import ResultsError
from edgebench.outputs import replacing
from edgebench.results.aggregate import run_rows
from edgebench.results.header import STATUS_ORDER, MergedFrom, RunHeader
from edgebench.results.records import now_iso
from edgebench.results.store import copy_records, read_header, write_header, write_summary


def _profile_of(header: RunHeader) -> dict:
    return {k: v for k, v in (header.profile or {}).items() if k != "source"}


def check_mergeable(runs: list[tuple[Path, RunHeader]]) -> None:
    if len(runs) < 2:
        raise ResultsError("merge needs at least two run directories")
    first_path, first = runs[0]
    owner: dict[str, Path] = {}
    seen: dict[str, Path] = {}
    # by run id, not only by cells: an ab run lists no cells up front (its rounds decide them)
    for path, header in runs:
        if header.run_id in seen:
            raise ResultsError(f"{path} is the same run as {seen[header.run_id]} (run {header.run_id}): merging "
                               f"would count each of its measurements twice")
        seen[header.run_id] = path
    for path, header in runs:
        if header.ab is not None:
            raise ResultsError(f"{path} is an ab run, one interleaved experiment with its own verdicts: it cannot "
                               f"be merged with other runs (compare it, or report it, as it is)")
        if _profile_of(header) != _profile_of(first):
            raise ResultsError(f"{path} ran a different profile than {first_path} "
                               f"({(header.profile or {}).get('name')!r} vs {(first.profile or {}).get('name')!r}, "
                               f"or its settings differ): their numbers are not one table")
        for cell in header.cells:
            if cell.id in owner:
                raise ResultsError(f"cell {cell.id} is in both {owner[cell.id]} and {path}: merging would "
                                   f"mix two measurements of it (the same run twice, or overlapping shards?)")
            owner[cell.id] = path
    shards = [header.shard for _, header in runs]
    if any(shards):
        counts = {s.split("/")[1] for s in shards if s}
        if None in shards or len(counts) > 1:
            raise ResultsError(f"shards of different splits cannot be merged: {', '.join(map(str, shards))}")


def merged_header(run_id: str, runs: list[tuple[Path, RunHeader]]) -> RunHeader:
    """The sources' plans as one: the first one's profile, every device and cell, the worst status."""
    statuses = [header.status for _, header in runs]
    now = now_iso()
    return RunHeader(
        run_id=run_id, created=now, finished=now, command=None, shard=None, profile=runs[0][1].profile,
        status=max(statuses, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 0),
        devices={k: v for _, header in runs for k, v in (header.devices or {}).items()},
        cells=tuple(cell for _, header in runs for cell in header.cells),
        merged_from=tuple(MergedFrom(h.run_id, str(p), h.shard, h.status) for p, h in runs))


def merge_runs(sources: list[Path], dest: Path) -> Path:
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ResultsError(f"{dest} already exists and is not empty: merge writes a new run directory")
    runs = [(Path(p), read_header(Path(p))) for p in sources]
    check_mergeable(runs)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dest) as partial:  # an empty folder there (checked above) makes way
        partial.mkdir()
        copy_records([path for path, _ in runs], partial)
        write_header(partial, merged_header(dest.name, runs))
        write_summary(partial, dest.name, run_rows(partial))
    return dest
