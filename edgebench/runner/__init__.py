"""The on-device runner: stdlib-only, Python >= 3.8, shipped as one zipapp.

It reads one JSON job from stdin and prints JSON-lines events to stdout. Its
helper modes, `store` and `lock`, are the device's half of the controller's
push and device lock (see entry.py).
Only relative imports are used here because the zipapp packs this package
under its own top-level name.
"""

RUNNER_VERSION = "2"
# 2: the `cooling` event; the controller refuses a runner of another protocol
PROTOCOL_VERSION = 2
