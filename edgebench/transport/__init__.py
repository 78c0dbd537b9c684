"""Transport plug-ins, looked up by the device profile's `transport` name."""

from __future__ import annotations

import threading
from importlib import import_module
from typing import Callable, Mapping

from edgebench.errors import ConfigError

_TRANSPORTS = {
    "local": "edgebench.transport.local:LocalTransport",
    "ssh": "edgebench.transport.ssh:SshTransport",
    "labgrid": "edgebench.transport.labgrid:LabgridTransport",
}


def transport_class(device):
    target = _TRANSPORTS.get(device.transport)
    if target is None:
        raise ConfigError(f"transport {device.transport!r} is not available; known: {', '.join(_TRANSPORTS)}",
                          file=getattr(device, "source", None), key="transport")
    module, _, cls = target.partition(":")
    return getattr(import_module(module), cls)


def open_transport(device):
    return transport_class(device)(device)


def claim(device, cancel: threading.Event | None = None,
          progress: Callable[[str], None] | None = None) -> Mapping[str, str] | None:
    """Wait for the device where a transport shares it (a labgrid place) and hold it until `let_go`,
    across reconnects; where it ran (`place`, `lab`), for the run's records, or None."""
    return transport_class(device).claim(device, cancel, progress)


def let_go(device) -> None:
    transport_class(device).let_go(device)


def settle_claim(device, where: Mapping[str, str], needed: bool) -> str | None:
    """A resumed run's answer to what its stopped run held (`where`, from run.json): take it over when
    `needed`, else let it go; a sentence saying which, or None when nothing was held any more."""
    return transport_class(device).settle_claim(device, where, needed)
