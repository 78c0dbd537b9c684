"""One error hierarchy for the whole controller.

Library and transport exceptions (yaml, gguf, paramiko, subprocess, the runner's
structured errors) are translated into these at the edge where they occur, so
the CLI can print one clear line and pick an exit code without knowing which
library failed.
"""

from __future__ import annotations


class EdgebenchError(Exception):
    """Base of every error edgebench reports to a user."""

    #: short machine-readable kind, also used by the runner's error events
    kind = "error"
    #: worth retrying after a pause: the same action may succeed once the network recovers
    transient = False


class ConfigError(EdgebenchError):
    """A device or benchmark profile is malformed, mistyped or has an unknown key."""

    kind = "config"

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None):
        self.file, self.line, self.key, self.reason = file, line, key, message
        where = file or "<config>"
        if line is not None:
            where += f":{line}"
        if key:
            where += f": {key}"
        super().__init__(f"{where}: {message}")


class DeviceNotFound(ConfigError):
    kind = "device-not-found"


class ProfileNotFound(ConfigError):
    """No benchmark profile at the path given (`file` is that path)."""

    kind = "profile-not-found"


class ModelFileError(EdgebenchError):
    """A model file is missing, truncated, foreign or fails its checksum."""

    kind = "model-file"


class SynthError(EdgebenchError):
    """A synthetic model spec is invalid or the model could not be built."""

    kind = "synth"


class TransportError(EdgebenchError):
    """Reaching or talking to a device failed."""

    kind = "transport"


class ConnectionLost(TransportError):
    kind = "connection-lost"
    transient = True


class Unreachable(TransportError):
    """No SSH session could be set up (refused, timed out, reset); not a key or login problem."""

    kind = "unreachable"
    transient = True


class DeviceBusy(TransportError):
    """Another controller holds the device's lock."""

    kind = "device-busy"


class HostKeyError(TransportError):
    kind = "host-key"


class DiskFullError(EdgebenchError):
    kind = "disk-full"


class RunnerError(EdgebenchError):
    """The on-device runner failed; carries its structured error event, and `cause`: the line of the
    engine's stderr that says why (its assertion or error), which the message then ends with."""

    kind = "runner"

    def __init__(self, message: str, *, kind: str | None = None, exit_code: int | None = None,
                 signal: int | None = None, stderr_tail: str = "", cause: str | None = None):
        if kind:
            self.kind = kind
        self.exit_code, self.signal, self.stderr_tail, self.cause = exit_code, signal, stderr_tail, cause
        super().__init__(with_cause(message, cause))


def with_cause(message: str, cause: str | None) -> str:
    """`message`, ending with the engine's own words for why, unless it already says them."""
    if not cause or cause in message:
        return message
    return f"{message}; the engine said: {cause}"


class RunnerTimeout(RunnerError):
    kind = "timeout"


class ResultsError(EdgebenchError):
    """A results directory is missing, foreign or of an unsupported schema."""

    kind = "results"


class PlanError(EdgebenchError):
    """A capacity plan cannot be made as asked (unknown preset or quant, bad context list, ...)."""

    kind = "plan"
