"""Transport plug-ins, looked up by the device profile's `transport` name."""

from __future__ import annotations

from importlib import import_module

from edgebench.errors import ConfigError

_TRANSPORTS = {
    "local": "edgebench.transport.local:LocalTransport",
    "ssh": "edgebench.transport.ssh:SshTransport",
}


def open_transport(device):
    target = _TRANSPORTS.get(device.transport)
    if target is None:
        raise ConfigError(f"transport {device.transport!r} is not available; known: {', '.join(_TRANSPORTS)}",
                          file=getattr(device, "source", None), key="transport")
    module, _, cls = target.partition(":")
    return getattr(import_module(module), cls)(device)
