"""An engine's `cores: fastest` made concrete for one device: the cpu_mask of its fastest core cluster, from
the device's probe (the run's own, else the last one `devices check` kept), and as many threads as that
cluster has cores where the profile sets no thread count. On a CPU of one core type, fastest is every core.

The controller decides it, not the runner, so the cell's recorded options (and its row) name the mask the
cell ran with; a device whose probe cannot tell its cores apart fails the cell, one sentence saying why.
"""

from __future__ import annotations

from edgebench.errors import EdgebenchError
from edgebench.facts.cpu_clusters import fastest_cpus
from edgebench.runner.engines.cpu_mask import cpus_mask


class CoresError(EdgebenchError):
    """The device's probe cannot say which of its cores `cores:` asks for."""

    kind = "cores"


def place_on_cores(options: dict, threads: int | None, cpu_fact, device: str) -> tuple[dict, int | None]:
    """(the engine options with `cores` turned into their cpu_mask, the thread count to run with).
    Options without `cores` (or with `cores: all`) come back as they are."""
    if options.get("cores", "all") == "all":
        return options, threads
    try:
        cpus = fastest_cpus(cpu_fact)
    except ValueError as why:
        raise CoresError(f"device {device}: engine.cores: fastest cannot be placed because {why}; run "
                         f"`edgebench devices check {device}`, or set engine.cpu_mask instead") from None
    return {**options, "cpu_mask": cpus_mask(cpus)}, threads or len(cpus)
