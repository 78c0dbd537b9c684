"""`edgebench devices trust`: see the key a device presents, then record it on purpose."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import paramiko

from edgebench.errors import ConfigError
from edgebench.transport import hostkeys
from edgebench.transport.sshconn import fetch_host_key, open_client, parse_jump, resolve_target


@dataclass(frozen=True)
class PresentedKey:
    host: str
    port: int
    key: paramiko.PKey

    @property
    def entry(self) -> str:
        return hostkeys.host_entry(self.host, self.port)

    @property
    def key_type(self) -> str:
        return self.key.get_name()

    @property
    def fingerprint(self) -> str:
        return hostkeys.fingerprint(self.key)

    @property
    def already_trusted(self) -> bool:
        return hostkeys.recorded_keys(self.host, self.port).get(self.key_type) == self.key


def presented_key(device) -> PresentedKey:
    if device.transport == "labgrid":
        return _labgrid_presented_key(device)
    if device.transport != "ssh":
        raise ConfigError("only ssh and labgrid devices have host keys", file=device.source, key="transport")
    target = resolve_target(device)
    sock = jump = None
    if target.proxy_jump:
        # the jump host itself must already be trusted: trust it first under its own profile
        jump = open_client(parse_jump(target.proxy_jump, target.name, target.identities))
        sock = jump.get_transport().open_channel("direct-tcpip", (target.host, target.port), ("127.0.0.1", 0))
    try:
        return PresentedKey(target.host, target.port, fetch_host_key(target.host, target.port, sock=sock))
    finally:
        if jump:
            jump.close()


def record_presented(presented: PresentedKey, *, replace: bool) -> Path:
    return hostkeys.record(presented.host, presented.port, presented.key, replace=replace)


def _labgrid_presented_key(device) -> PresentedKey:
    """A place's key, under the address its NetworkService gives, through the lab's tunnel if it has one."""
    from edgebench.transport import labgrid_place

    if device.place is None:
        raise ConfigError("a `select:` device stands for many places: trust each through a profile with "
                          "`place: NAME`", file=device.source, key="select")
    route = labgrid_place.route_of(labgrid_place.coordinator_address(device.coordinator), device.place)
    sock = paramiko.ProxyCommand(route.proxy_command) if route.proxy_command else None
    return PresentedKey(route.address, route.port, fetch_host_key(route.address, route.port, sock=sock))
