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

    @property
    def id(self) -> str:
        return f"{self.device.name}/{self.model.name}/{self.test.name}/t{self.threads or 'auto'}"


def plan_cells(profile: BenchProfile, devices: list[DeviceProfile]) -> list[Cell]:
    """Device-major, then model, so each model is placed on each device once."""
    threads = profile.engine.threads or (None,)
    return [Cell(device, model, test, n)
            for device in devices
            for model in profile.models
            for n in threads
            for test in profile.tests]
