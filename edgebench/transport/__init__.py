"""Transport plug-ins, looked up by the device profile's `transport` name.

A transport is one module here, named in TRANSPORTS, holding its DECLARATION (the profile settings
it reads, declaration.py) and TRANSPORT (its class, taking the device profile).
"""

from __future__ import annotations

from importlib import import_module

from edgebench.errors import ConfigError

# name -> module; the first is the default of a profile that names none
TRANSPORTS = {
    "local": "edgebench.transport.local",
    "ssh": "edgebench.transport.ssh",
}


def declared(name: str):
    """The transport's TransportDeclaration, or None when there is no such transport."""
    module = TRANSPORTS.get(name)
    return import_module(module).DECLARATION if module else None


def declarations() -> dict:
    """name -> TransportDeclaration, for every transport, in TRANSPORTS' order."""
    return {name: declared(name) for name in TRANSPORTS}


def open_transport(device):
    module = TRANSPORTS.get(device.transport)
    if module is None:
        raise ConfigError(f"transport {device.transport!r} is not available; known: {', '.join(TRANSPORTS)}",
                          file=getattr(device, "source", None), key="transport")
    return import_module(module).TRANSPORT(device)
