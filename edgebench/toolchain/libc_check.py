"""Whether a build's C library needs fit a device's: a build linked against a newer glibc than the
device has fails in the device's loader, so edgebench says so before pushing it."""

from __future__ import annotations

from edgebench.errors import EdgebenchError


def glibc_version(text: str) -> tuple:
    """"2.36" -> (2, 36); a part that is not a number ("2.35+deb") counts as far as its digits go."""
    parts = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_libc(target, manifest: dict) -> None:
    """A build linked against a newer glibc than the device's fails in its loader; say so before pushing."""
    needed, have = manifest.get("glibc_needed"), target.libc_version
    if target.libc != "glibc" or not needed or not have:
        return
    if glibc_version(needed) > glibc_version(have):
        raise EdgebenchError(f"the device's C library (glibc {have}) is older than the glibc {needed} this build "
                             f"needs: build with a toolchain for that glibc (toolchain_file in the device profile)")
