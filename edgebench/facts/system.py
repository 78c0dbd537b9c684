"""Who the device is: architecture, kernel, host name, OS release, Termux, SELinux."""

from __future__ import annotations

import re
import shlex

from .base import fact, first_line, key_values

# Android keeps getprop and getenforce in /system/bin, which a Termux sshd
# session's PATH ($PREFIX/bin only) does not include.
_ANDROID_PATH = "PATH=$PATH:/system/bin"

_GETPROPS = {
    "ro.build.version.release": "version_id",
    "ro.build.version.sdk": "sdk",
    "ro.product.model": "model",
    "ro.product.manufacturer": "manufacturer",
}

_TERMUX_TREE = re.compile(r"/data/(data|user/\d+)/com\.termux/")


@fact("arch", "uname -m")
def parse_arch(stdout: str, exit_code: int) -> str:
    return first_line(stdout)


@fact("kernel", "uname -sr")
def parse_kernel(stdout: str, exit_code: int) -> dict:
    system, _, release = first_line(stdout).partition(" ")
    return {"system": system, "release": release or None}


@fact("hostname", "uname -n")  # POSIX; a `hostname` binary is missing on minimal images
def parse_hostname(stdout: str, exit_code: int) -> str:
    return first_line(stdout)


@fact("os", f"""
for f in /etc/os-release /usr/lib/os-release; do
  if [ -r "$f" ]; then echo source=os-release; cat "$f"; exit; fi
done
{_ANDROID_PATH}
command -v getprop >/dev/null 2>&1 || exit 0
echo source=getprop
for p in {" ".join(_GETPROPS)}; do printf '%s=%s\\n' "$p" "$(getprop "$p")"; done
""")
def parse_os(stdout: str, exit_code: int) -> dict:
    source, _, rest = stdout.partition("\n")
    values = key_values(rest)
    if source == "source=getprop":
        android = {field: values.get(prop) or None for prop, field in _GETPROPS.items()}
        sdk = android["sdk"]
        android["sdk"] = int(sdk) if sdk and sdk.isdigit() else None
        name = f"Android {android['version_id']}" if android["version_id"] else "Android"
        return {"id": "android", "name": name, **android}
    if source != "source=os-release":
        raise ValueError(f"unknown source line {source[:80]!r}")
    release = {key: _unquote(value) for key, value in values.items()}
    return {
        "id": release.get("ID") or None,
        "name": release.get("PRETTY_NAME") or release.get("NAME") or None,
        "version_id": release.get("VERSION_ID") or None,
    }


def _unquote(value: str) -> str:
    # os-release values use shell quoting
    try:
        return " ".join(shlex.split(value))
    except ValueError:
        return value.strip("\"'")


@fact("termux", """printf 'prefix=%s\\nversion=%s\\nhome=%s\\n' "${PREFIX-}" "${TERMUX_VERSION-}" "${HOME-}" """)
def parse_termux(stdout: str, exit_code: int) -> dict:
    values = key_values(stdout)
    prefix, home = values.get("prefix") or None, values.get("home") or ""
    # sshd may not pass PREFIX on to the session; HOME under the app's data tree
    # tells the same story
    inside = any(_TERMUX_TREE.match((path or "") + "/") for path in (prefix, home))
    return {"is_termux": inside, "prefix": prefix, "version": values.get("version") or None}


@fact("selinux", f"""
{_ANDROID_PATH}
command -v getenforce >/dev/null 2>&1 || exit 0
getenforce
""")
def parse_selinux(stdout: str, exit_code: int) -> str:
    mode = first_line(stdout).lower()
    if mode not in ("enforcing", "permissive", "disabled"):
        raise ValueError(f"getenforce printed {mode[:80]!r}")
    return mode
