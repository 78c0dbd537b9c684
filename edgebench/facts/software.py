"""Software the runner depends on: python3 and the helper tools."""

from __future__ import annotations

import re

from .base import fact, key_values

# The runner zipapp is written for Python 3.8.
MIN_PYTHON = (3, 8)

TOOLS = ("sha256sum", "shasum", "llama-bench", "nvidia-smi", "tegrastats", "vcgencmd",
         "termux-battery-status", "df")

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?\S*$")


# $python: the device profile's `python` (python3 when it has none), the interpreter the runner uses
@fact("python", """
p=$(command -v "$python") || exit 0
printf 'path=%s\\n' "$p"
"$p" -c 'import sys; print(sys.version.split()[0])'
""", argument="python")
def parse_python(stdout: str, exit_code: int) -> dict:
    path = key_values(stdout).get("path") or None
    # the version is the last line; warnings python3 prints on stderr come before it
    versions = [line.strip() for line in stdout.splitlines() if _VERSION.match(line.strip())]
    if not versions:
        raise ValueError("no version line")
    version = versions[-1]
    major, minor = (int(x) for x in _VERSION.match(version).group(1, 2))
    return {"path": path, "version": version, "at_least_3_8": (major, minor) >= MIN_PYTHON}


@fact("tools", f"""
for t in {" ".join(TOOLS)}; do
  if p=$(command -v "$t" 2>/dev/null); then printf '%s %s\\n' "$t" "$p"; else printf '%s -\\n' "$t"; fi
done
""")
def parse_tools(stdout: str, exit_code: int) -> dict[str, str | None]:
    """Tool -> its path, or None when it is not on PATH."""
    found = {}
    for line in stdout.splitlines():
        name, _, path = line.partition(" ")
        if name in TOOLS:
            found[name] = None if path in ("-", "") else path
    if not found:
        raise ValueError("no tool lines")
    return found
