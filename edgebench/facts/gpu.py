"""Accelerators: a Jetson's L4T release, and NVIDIA GPUs as nvidia-smi lists them."""

from __future__ import annotations

import re

from .base import fact, unavailable

_L4T = re.compile(r"R(?P<major>\d+) \(release\), REVISION: (?P<revision>[\d.]+)")
_BOARD = re.compile(r"BOARD: (?P<board>[^,\s]+)")
_GPU = re.compile(r"^GPU (?P<index>\d+): (?P<name>.+?)(?: \(UUID: (?P<uuid>[^)]+)\))?$")


@fact("gpu", """
if [ -r /etc/nv_tegra_release ]; then printf 'tegra='; head -n 1 /etc/nv_tegra_release; fi
if command -v nvidia-smi >/dev/null 2>&1; then
  o=$(nvidia-smi -L 2>&1)
  printf 'nvidia-smi-exit=%s\\n%s\\n' "$?" "$o"
fi
""")
def parse_gpu(stdout: str, exit_code: int) -> dict:
    lines = stdout.splitlines()
    jetson = None
    nvidia: list[dict] | str | None = None
    for i, line in enumerate(lines):
        if line.startswith("tegra="):
            jetson = _jetson(line[len("tegra="):])
        elif line.startswith("nvidia-smi-exit="):
            nvidia = _nvidia(int(line.partition("=")[2]), lines[i + 1:])
            break  # nvidia-smi's output runs to the end
    return {"jetson": jetson, "nvidia": nvidia}


def _jetson(line: str) -> dict:
    release = _L4T.search(line)
    board = _BOARD.search(line)
    return {
        "l4t": f"{release['major']}.{release['revision']}" if release else None,
        "board": board["board"] if board else None,
        "raw": line.strip(),
    }


def _nvidia(exit_code: int, lines: list[str]) -> list[dict] | str:
    text = [line.strip() for line in lines if line.strip()]
    if exit_code != 0:
        # typically "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver"
        return unavailable(f"nvidia-smi exit status {exit_code}" + (f": {text[0][:200]}" if text else ""))
    gpus = []
    for line in text:
        found = _GPU.match(line)
        if found:
            gpus.append({"index": int(found["index"]), "name": found["name"], "uuid": found["uuid"]})
    return gpus
