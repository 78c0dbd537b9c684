"""run.json: the header of a run directory, what the run set out to do and how it went.

Its layout has its own version, `schema_version`, written in it; results/records.py says how the
jsonl records are versioned and why each carries its own.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Mapping

from edgebench import __version__
from edgebench.results.records import RecordError, now_iso

SCHEMA_VERSION = 1  # run.json's layout
RUN_KIND = "edgebench-run"


@dataclass(frozen=True)
class PlannedCell:
    """A cell the run set out to measure."""

    id: str
    device: str | None = None
    model: str | None = None
    test: str | None = None
    n_threads: int | None = None

    @classmethod
    def of(cls, cell) -> PlannedCell:
        """From a cells.Cell."""
        return cls(cell.id, cell.device.name, cell.model.name, cell.test.name, cell.threads)

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping) -> PlannedCell:
        if not isinstance(data, Mapping) or data.get("id") is None:
            raise RecordError("has a planned cell without an 'id'")
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class AbDesign:
    """An `ab` run's variants (each a profile, as stored), its rounds, and what judged them: the thresholds
    in force (variant B's profile, overridden by `--threshold`) and alpha. A run written before these were
    stored reads them as unknown (empty, None); the loader (results/model.py) takes variant B's thresholds."""

    variants: Mapping[str, Mapping[str, Any]]
    rounds: int
    max_rounds: int
    thresholds: Mapping[str, float] = field(default_factory=dict)
    alpha: float | None = None

    def to_json(self) -> dict:
        return {"variants": self.variants, "rounds": self.rounds, "max_rounds": self.max_rounds,
                "thresholds": dict(self.thresholds), "alpha": self.alpha}

    @classmethod
    def from_json(cls, data: Mapping | None) -> AbDesign | None:
        if data is None:
            return None
        return cls(data.get("variants") or {}, data.get("rounds"), data.get("max_rounds"),
                   data.get("thresholds") or {}, data.get("alpha"))


@dataclass(frozen=True)
class Resumed:
    """One `run --resume`: when, and how many cells it set out to measure."""

    at: str
    cells: int

    def to_json(self) -> dict:
        return {"at": self.at, "cells": self.cells}

    @classmethod
    def from_json(cls, data: Mapping) -> Resumed:
        return cls(data.get("at"), data.get("cells"))


@dataclass(frozen=True)
class MergedFrom:
    """A run that `merge` joined into this one."""

    run_id: str | None
    path: str
    shard: str | None
    status: str | None

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping) -> MergedFrom:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


# a run's status, from best to worst: a merged run's is the worst of its sources'
STATUS_ORDER = ("complete", "failed", "interrupted", "running")


@dataclass(frozen=True, kw_only=True)
class RunHeader:
    """run.json: what the run set out to do, with which edgebench, and how it went. Rewritten (whole,
    atomically) when the run ends or is resumed; `extra` keeps keys this edgebench does not know."""

    run_id: str | None = None
    status: str = "running"
    shard: str | None = None
    profile: Mapping[str, Any] | None = None
    devices: Mapping[str, Mapping[str, Any]] | None = None
    cells: tuple[PlannedCell, ...] = ()
    ab: AbDesign | None = None
    created: str | None = field(default_factory=now_iso)
    finished: str | None = None
    command: tuple[str, ...] | None = field(default_factory=lambda: tuple(sys.argv))
    edgebench_version: str | None = __version__
    resumed: tuple[Resumed, ...] = ()
    merged_from: tuple[MergedFrom, ...] = ()
    # device -> where a shared device ran (its labgrid place, lab and coordinator), the latest of each
    places: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS: ClassVar[tuple[str, ...]] = ("schema_version", "kind", "run_id", "edgebench_version", "created",
                                        "command", "status", "shard", "profile", "devices", "cells", "ab",
                                        "merged_from", "finished", "resumed", "places")

    def ended(self, status: str) -> RunHeader:
        return replace(self, status=status, finished=now_iso())

    def placed(self, device: str, where: Mapping[str, Any]) -> RunHeader:
        return replace(self, places={**self.places, device: dict(where)})

    def resuming(self, n_cells: int) -> RunHeader:
        return replace(self, status="running", resumed=self.resumed + (Resumed(now_iso(), n_cells),))

    def to_json(self) -> dict:
        header = {"schema_version": SCHEMA_VERSION, "kind": RUN_KIND, "run_id": self.run_id,
                  "edgebench_version": self.edgebench_version, "created": self.created}
        if self.command is not None:
            header["command"] = list(self.command)
        header.update(status=self.status, shard=self.shard, profile=self.profile, devices=self.devices,
                      cells=[c.to_json() for c in self.cells])
        optional = {"ab": self.ab and self.ab.to_json(),
                    "merged_from": [m.to_json() for m in self.merged_from] or None,
                    "finished": self.finished, "resumed": [r.to_json() for r in self.resumed] or None,
                    "places": dict(self.places) or None}
        header.update({k: v for k, v in optional.items() if v is not None})
        header.update(self.extra)
        return header

    @classmethod
    def from_json(cls, data: Mapping) -> RunHeader:
        if not isinstance(data, Mapping) or data.get("kind") != RUN_KIND:
            raise RecordError("is not an edgebench run")
        version = data.get("schema_version", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise RecordError(f"has schema version {version}; this edgebench reads up to {SCHEMA_VERSION}: "
                              f"upgrade edgebench")
        command = data.get("command")
        return cls(run_id=data.get("run_id"), status=data.get("status", "running"), shard=data.get("shard"),
                   profile=data.get("profile"), devices=data.get("devices"),
                   cells=tuple(PlannedCell.from_json(c) for c in data.get("cells") or ()),
                   ab=AbDesign.from_json(data.get("ab")), created=data.get("created"), finished=data.get("finished"),
                   command=None if command is None else tuple(command),
                   edgebench_version=data.get("edgebench_version"),
                   resumed=tuple(Resumed.from_json(r) for r in data.get("resumed") or ()),
                   merged_from=tuple(MergedFrom.from_json(m) for m in data.get("merged_from") or ()),
                   places=data.get("places") or {},
                   extra={k: v for k, v in data.items() if k not in cls._KEYS})
