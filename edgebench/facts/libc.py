"""The C library a device's binaries link against: glibc (and its version), musl, or Android's bionic.

A llama.cpp cross-built on the controller needs the device's C library to be at least as new as the one
it was linked against (glibc's versioned symbols), so the build half of `devices` compares the two.
"""

from __future__ import annotations

import re

from .base import fact, first_line

# Android's linker lives in /system/bin, and bionic has neither getconf's GNU_LIBC_VERSION nor ldd;
# its version is the platform's API level, which getprop tells.
# musl's dynamic loader, run with no arguments, prints "musl libc (ARCH)" and "Version X" and exits 1.
_COMMAND = """
PATH=$PATH:/system/bin
if [ -e /system/bin/linker64 ] || [ -e /system/bin/linker ]; then
  printf 'bionic api=%s\\n' "$(getprop ro.build.version.sdk 2>/dev/null)"
  exit 0
fi
getconf GNU_LIBC_VERSION 2>/dev/null && exit 0
for loader in /lib/ld-musl-*.so.1; do
  if [ -x "$loader" ]; then "$loader" 2>&1 | head -n 2; exit 0; fi
done
command -v ldd >/dev/null 2>&1 || exit 0
ldd --version 2>&1 | head -n 2
"""

_GETCONF = re.compile(r"^glibc (\d+\.\d+(?:\.\d+)?)$")
# "ldd (Debian GLIBC 2.36-9+deb12u4) 2.36", "ldd (GNU libc) 2.39"
_LDD_GLIBC = re.compile(r"^ldd \(.*(?:GLIBC|GNU libc).*\) (\d+\.\d+(?:\.\d+)?)$", re.IGNORECASE)
_MUSL_VERSION = re.compile(r"^Version (\d+\.\d+(?:\.\d+)?)$", re.MULTILINE)


@fact("libc", _COMMAND)
def parse_libc(stdout: str, exit_code: int) -> dict:
    """{"name": "glibc" | "musl" | "bionic", "version": "2.36" | "1.2.4" | the Android API level | None}."""
    line = first_line(stdout)
    if line.startswith("bionic api="):
        api = line.partition("=")[2].strip()
        return {"name": "bionic", "version": api if api.isdigit() else None}
    if line.startswith("musl libc"):
        version = _MUSL_VERSION.search(stdout)
        return {"name": "musl", "version": version[1] if version else None}
    glibc = _GETCONF.match(line) or _LDD_GLIBC.match(line)
    if glibc:
        return {"name": "glibc", "version": glibc[1]}
    raise ValueError(f"unknown C library line {line[:80]!r}")
