"""Host-key trust: edgebench's own known_hosts, read together with the user's.

Unknown and changed keys are refused at connect time; a key is trusted only by
`edgebench devices trust`, which shows its fingerprint first and never replaces
a recorded key unless told to.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import paramiko

from edgebench.errors import HostKeyError
from edgebench.outputs import replacing

KNOWN_HOSTS_ENV = "EDGEBENCH_KNOWN_HOSTS"


def edgebench_known_hosts() -> Path:
    env = os.environ.get(KNOWN_HOSTS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".config" / "edgebench" / "known_hosts"


def user_known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"


def host_entry(host: str, port: int) -> str:
    """known_hosts spelling: a non-22 port is written `[host]:port`, as OpenSSH does."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# the files as last parsed, by their paths, sizes and times: a fleet of hundreds of devices opens
# hundreds of connections, and parsing every entry for each was most of the controller's CPU at 256
_PARSED: dict[tuple, paramiko.HostKeys] = {}


def _stamp(path: Path) -> tuple:
    try:
        found = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def load_known_hosts() -> paramiko.HostKeys:
    """Both files' keys; read them, never change them (parsed once while the files stay the same)."""
    paths = (user_known_hosts(), edgebench_known_hosts())
    stamp = tuple(_stamp(path) for path in paths)
    cached = _PARSED.get(stamp)
    if cached is not None:
        return cached
    keys = paramiko.HostKeys()
    for path in paths:
        if path.is_file():
            try:
                keys.load(str(path))
            except (OSError, paramiko.SSHException) as exc:
                raise HostKeyError(f"cannot read known hosts file {path}: {exc}") from exc
    _PARSED.clear()
    _PARSED[stamp] = keys
    return keys


def recorded_keys(host: str, port: int) -> dict[str, paramiko.PKey]:
    return dict(load_known_hosts().lookup(host_entry(host, port)) or {})


def record(host: str, port: int, key: paramiko.PKey, *, replace: bool = False) -> Path:
    """Add the key to edgebench's known_hosts; a different recorded key of the same type needs replace."""
    entry = host_entry(host, port)
    path = edgebench_known_hosts()
    keys = paramiko.HostKeys()
    if path.is_file():
        keys.load(str(path))
    current = (keys.lookup(entry) or {}).get(key.get_name())
    if current is not None and current != key and not replace:
        raise HostKeyError(f"{entry} already has a different {key.get_name()} key recorded "
                           f"({fingerprint(current)}); pass --replace to trust the new one")
    if current is not None and current != key:
        del keys[entry]
    keys.add(entry, key.get_name(), key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as partial:
        keys.save(str(partial))
    return path


def check_presented_key(host: str, port: int, key: paramiko.PKey, device_name: str) -> None:
    """Refuse an unknown or changed key with a message that says what to do."""
    known = recorded_keys(host, port)
    entry = host_entry(host, port)
    if known.get(key.get_name()) == key:
        return
    if known:
        recorded = ", ".join(f"{name} {fingerprint(k)}" for name, k in known.items())
        raise HostKeyError(
            f"HOST KEY CHANGED for {entry} (device {device_name}): it presented {key.get_name()} "
            f"{fingerprint(key)} but {recorded} is recorded. This can mean someone is intercepting the "
            f"connection, or the device was reinstalled. If you are sure, run: edgebench devices trust "
            f"{device_name} --replace")
    raise HostKeyError(
        f"unknown host key for {entry} (device {device_name}): {key.get_name()} {fingerprint(key)}. "
        f"Check it on the device (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub, or $PREFIX/etc/ssh on Termux), "
        f"then run: edgebench devices trust {device_name}")
