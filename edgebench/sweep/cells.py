"""Profile + devices → cells: the unit that is measured, stored and (later) resumed."""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.config import BenchProfile, DeviceProfile


@dataclass(frozen=True)
class Cell:
    device: DeviceProfile
    model: object  # config.ModelRef
    test: object  # config.TestSpec
    threads: int | None
    # an A/B run's variant ("A" or "B": which profile the cell uses) and round (from 1); None in a plain run
    variant: str | None = None
    round: int | None = None

    @property
    def id(self) -> str:
        """Unique in a run: an A/B cell's id starts with its variant and round (`B3:`)."""
        base = f"{self.device.name}/{self.model.name}/{self.test.name}/t{self.threads or 'auto'}"
        return f"{self.variant}{self.round}:{base}" if self.variant else base


def plan_cells(profile: BenchProfile, devices: list[DeviceProfile]) -> list[Cell]:
    """Device-major, then model, so each model is placed on each device once."""
    threads = profile.engine.threads or (None,)
    return [Cell(device, model, test, n)
            for device in devices
            for model in profile.models
            for n in threads
            for test in profile.tests]


def parse_shard(text: str) -> tuple[int, int]:
    """`i/N` with 1 <= i <= N."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 1 <= int(index) <= int(count):
        raise ValueError(f"--shard takes i/N with 1 <= i <= N, e.g. 2/4; got {text!r}")
    return int(index), int(count)


def shard_cells(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """Shard i of N takes every N-th device (by name) with all of its cells: N controllers with the
    same profile and devices cover every cell exactly once, and no device is measured by two
    controllers at the same time."""
    names = sorted({cell.device.name for cell in cells})
    mine = {name for position, name in enumerate(names) if position % count == index - 1}
    return [cell for cell in cells if cell.device.name in mine]
