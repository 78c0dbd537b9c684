"""`edgebench install-engine -d DEVICE`: probe the device, build llama.cpp for it here (or, with
--on-device, there), install it there."""

from __future__ import annotations

import time

from edgebench.cli.common import EXIT_OK


def _build_there(transport, target, facts: dict, source, say):
    from edgebench.transport.device_compile import build_on_device

    termux = bool((facts.get("termux") or {}).get("is_termux")) if isinstance(facts.get("termux"), dict) else False
    started = time.monotonic()
    build = build_on_device(transport, target, source=source, termux=termux, log=say)
    say(f"build {build.key} ready in {time.monotonic() - started:.0f} s on {transport.device.name}: {build.path}")
    return build


def install_on_device(args, console) -> int:
    from edgebench.config import find_device
    from edgebench.facts.device_probe import probe_with
    from edgebench.facts.stored import remember
    from edgebench.results.records import now_iso
    from edgebench.toolchain.device_build import build_engine
    from edgebench.toolchain.libc_check import check_libc
    from edgebench.toolchain.target import target_from_probe
    from edgebench.transport import open_transport
    from edgebench.transport.device_compile import install_device_build
    from edgebench.transport.engine_push import install_engine

    def say(text: str) -> None:
        console.print(text, markup=False)

    device = find_device(args.device, args.devices_dir)
    with open_transport(device) as transport:
        probe = probe_with(transport)
        remember(device.name, probe["facts"], now_iso())
        target = target_from_probe(probe["facts"])
        say(f"{device.name}: {target.describe()}")
        started = time.monotonic()
        if args.on_device:
            build_there = _build_there(transport, target, probe["facts"], args.source, say)
            started = time.monotonic()
            installed = install_device_build(transport, build_there)
        else:
            build = build_engine(target, source=args.source, toolchain_file=device.toolchain_file, log=say)
            say(f"build {build.key} ready in {time.monotonic() - started:.0f} s: {build.directory}")
            check_libc(target, build.manifest)
            started = time.monotonic()
            installed = install_engine(transport, build)
        pushed = installed.archive
        sent = "already there" if pushed.skipped else f"{pushed.sent_bytes / 1e6:.1f} MB sent"
        say(f"installed on {device.name} in {time.monotonic() - started:.0f} s ({sent}): {installed.path}")
    engines = "llama-bench" + (" and llama.cpp (in-process)" if installed.bindings else "")
    say(f"engines: {engines}")
    if not installed.bindings:
        say(f"in-process engine not offered: {installed.build.get('in_process_unavailable')}")
    return EXIT_OK
