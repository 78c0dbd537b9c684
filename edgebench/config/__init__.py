"""Device and benchmark profiles: YAML parsed once into frozen, validated objects.

Every problem in a file is a ConfigError naming the file, the line and the key path.
"""

from edgebench.config.device import DeviceFacts, DeviceLimits, DeviceProfile, TelemetryPaths, load_device, parse_device
from edgebench.config.lookup import device_dirs, find_device, list_devices, load_profile, select_devices
from edgebench.config.profile import (
                                     BenchProfile,
                                     CooldownOptions,
                                     EngineOptions,
                                     ModelRef,
                                     TelemetryOptions,
                                     parse_profile,
)
from edgebench.runner.testspec import TestSpec, parse_test

__all__ = [
    "BenchProfile", "CooldownOptions", "DeviceFacts", "DeviceLimits", "DeviceProfile", "EngineOptions",
    "ModelRef", "TelemetryOptions", "TelemetryPaths", "TestSpec", "device_dirs", "find_device",
    "list_devices", "load_device", "load_profile", "parse_device", "parse_profile", "parse_test", "select_devices",
]
