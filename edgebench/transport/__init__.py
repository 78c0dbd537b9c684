"""Transport plug-ins, looked up by the device profile's `transport` name.

A transport is one module here, named in TRANSPORTS, holding its DECLARATION (the profile settings
it reads, declaration.py) and TRANSPORT (its class, taking the device profile).
"""

from __future__ import annotations

import threading
from importlib import import_module
from typing import Callable, Mapping

from edgebench.errors import ConfigError

# name -> module; the first is the default of a profile that names none
TRANSPORTS = {
    "local": "edgebench.transport.local",
    "ssh": "edgebench.transport.ssh",
    "labgrid": "edgebench.transport.labgrid",
}


def declared(name: str):
    """The transport's TransportDeclaration, or None when there is no such transport."""
    module = TRANSPORTS.get(name)
    return import_module(module).DECLARATION if module else None


def declarations() -> dict:
    """name -> TransportDeclaration, for every transport, in TRANSPORTS' order."""
    return {name: declared(name) for name in TRANSPORTS}


def transport_class(device):
    module = TRANSPORTS.get(device.transport)
    if module is None:
        raise ConfigError(f"transport {device.transport!r} is not available; known: {', '.join(TRANSPORTS)}",
                          file=getattr(device, "source", None), key="transport")
    return import_module(module).TRANSPORT


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
