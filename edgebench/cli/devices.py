"""`edgebench devices ...`: list, trust, check, release, import-ansible."""

from __future__ import annotations

import sys
from pathlib import Path

from edgebench.cli.common import (
    EXIT_ERROR,
    EXIT_FAILED_CELLS,
    EXIT_OK,
    add_devices_dir,
)
from edgebench.errors import EdgebenchError


def register(commands) -> None:
    devices = commands.add_parser("devices", help="list and inspect device profiles")
    device_commands = devices.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    listing = device_commands.add_parser("list", help="list device profiles",
                                         description="List the device profiles found in the devices directory, "
                                                     "and the built-in local device when no profile is named local.")
    add_devices_dir(listing)
    listing.set_defaults(handler=cmd_devices_list)

    trust = device_commands.add_parser(
        "trust", help="record a device's SSH host key after showing its fingerprint",
        description="Connect to the device, show the host key it presents and record it in edgebench's "
                    "known_hosts (~/.config/edgebench/known_hosts, or $EDGEBENCH_KNOWN_HOSTS). Nothing is "
                    "trusted without confirmation: answer the prompt, or pass the fingerprint you checked.")
    trust.add_argument("name", help="device name or profile file")
    trust.add_argument("--fingerprint", metavar="SHA256:...", help="trust only if the key has this fingerprint")
    trust.add_argument("--replace", action="store_true", help="replace a different key already recorded")
    add_devices_dir(trust)
    trust.set_defaults(handler=cmd_devices_trust)

    check = device_commands.add_parser(
        "check", help="connect and probe a device: CPU, RAM, OS, Python, engines, disk, sensors; test its engine",
        description="Connect to the device and report what edgebench will find there, then run a short "
                    "engine self-test (pp64 and tg16 on a few-MB synthetic model with each llama.cpp engine "
                    "the device has), so a broken engine is found before a long run. Exit 1 when the "
                    "self-test fails, or when the device has no engine that can run at all.")
    check.add_argument("name", help="device name or profile file")
    check.add_argument("--json", action="store_true", help="print the facts as JSON")
    check.add_argument("--no-self-test", action="store_true", help="only probe; do not run the engine self-test")
    add_devices_dir(check)
    check.set_defaults(handler=cmd_devices_check)

    release = device_commands.add_parser(
        "release", help="release the labgrid places of a device that a killed run left acquired",
        description="labgrid's locks never expire: a controller killed with -9 leaves its places acquired. "
                    "This releases every place the labgrid device NAME stands for (its `place:`, or each place "
                    "its `select:` matches) that is acquired by this host and user (LG_HOSTNAME/LG_USERNAME), "
                    "and nobody else's. `run --resume` of the killed run does the same for the places it "
                    "no longer needs.")
    release.add_argument("name", help="device name or profile file (transport: labgrid)")
    add_devices_dir(release)
    release.set_defaults(handler=cmd_devices_release)

    ansible = device_commands.add_parser(
        "import-ansible", help="write a device profile for each host of an Ansible YAML inventory",
        description="Write devices/<host>.yaml for each host of an Ansible YAML inventory: ansible_host, "
                    "ansible_port, ansible_user and ansible_ssh_private_key_file become host, port, user and "
                    "identity, groups become tags. Passwords are never written. Existing profiles are kept.")
    ansible.add_argument("inventory", type=Path, metavar="INVENTORY.yml", help="Ansible inventory in YAML")
    ansible.add_argument("--force", action="store_true", help="overwrite profiles that already exist")
    ansible.add_argument("--dry-run", action="store_true", help="print the profiles instead of writing them")
    add_devices_dir(ansible)
    ansible.set_defaults(handler=cmd_devices_import_ansible)


def cmd_devices_list(args, console) -> int:
    from rich.console import Console
    from rich.markup import escape

    from edgebench.cli.ui import print_table
    from edgebench.config.lookup import LOCAL, builtin_local, is_builtin, scan_devices
    from edgebench.config.transports import address

    devices, problems = scan_devices(args.devices_dir)
    # `-d local` works without a profile, so the list shows it; `-d all` leaves it out, lest a
    # fleet run also benchmark the controller
    if not any(d.name == LOCAL for d in devices):
        devices = sorted([*devices, builtin_local()], key=lambda d: d.name)
    rows = [[d.name, d.transport, d.device_class or "", ", ".join(d.tags), address(d) or "",
             "(built in: this machine)" if is_builtin(d) else d.source] for d in devices]
    print_table(console, ["name", "transport", "class", "tags", "host", "file"], rows)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    for problem in problems:
        errors.print(f"[red]error:[/] {escape(str(problem))}")
    # the good profiles are listed; a broken one still fails the command, so CI notices it
    return EXIT_ERROR if problems else EXIT_OK


def cmd_devices_trust(args, console) -> int:
    from rich.markup import escape

    from edgebench.config import find_device
    from edgebench.transport import trust

    device = find_device(args.name, args.devices_dir)
    presented = trust.presented_key(device)
    console.print(f"{device.name} ({presented.entry}) presents {presented.key_type} key {presented.fingerprint}")
    # a fingerprint the user checked is compared first: "already trusted" must not answer a key that
    # differs from the one they expect
    if args.fingerprint and args.fingerprint.strip() != presented.fingerprint:
        raise EdgebenchError(f"fingerprint mismatch: expected {args.fingerprint}, the device presents "
                             f"{presented.fingerprint}; nothing was recorded")
    if presented.already_trusted:
        console.print("already trusted")
        return EXIT_OK
    if not args.fingerprint:
        if not sys.stdin.isatty():
            raise EdgebenchError("not a terminal: pass --fingerprint SHA256:... (checked on the device with "
                                 "ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) to trust non-interactively")
        if console.input(escape("Trust this key? [y/N] ")).strip().lower() not in ("y", "yes"):
            console.print("not trusted: nothing was recorded")
            return EXIT_FAILED_CELLS  # 1: declined, so not done; 3 is kept for what went wrong
    path = trust.record_presented(presented, replace=args.replace)
    console.print(f"trusted: recorded in {path}")
    return EXIT_OK


def cmd_devices_release(args, console) -> int:
    from rich.markup import escape

    from edgebench.config import find_device

    device = find_device(args.name, args.devices_dir)
    if device.transport != "labgrid":
        raise EdgebenchError(f"{device.name} is a {device.transport} device: only labgrid devices have places "
                             f"to release")
    from edgebench.transport import labgrid_place
    from edgebench.transport.labgrid import place_filter

    coordinator = labgrid_place.coordinator_address(device.coordinator)
    released = labgrid_place.release_mine(coordinator, place_filter(device))
    for place, lab in released:
        console.print(f"released place {escape(place)} (lab {escape(lab or '?')})", soft_wrap=True)
    if not released:
        console.print(f"no place of {escape(device.name)} is acquired by {escape(labgrid_place.owner_name())}",
                      soft_wrap=True)
    return EXIT_OK


def cmd_devices_check(args, console) -> int:
    import json

    from edgebench.config import find_device
    from edgebench.facts.device_probe import facts_rows, probe_device, self_test_failed

    device = find_device(args.name, args.devices_dir)
    facts = probe_device(device, engine_self_test=not args.no_self_test)
    if args.json:
        sys.stdout.write(json.dumps(facts, indent=2, default=str) + "\n")
    else:
        from edgebench.cli.ui import print_table
        print_table(console, ["fact", "value"], facts_rows(facts))
    return EXIT_FAILED_CELLS if self_test_failed(facts) else EXIT_OK


def cmd_devices_import_ansible(args, console) -> int:
    from rich.console import Console
    from rich.markup import escape

    from edgebench.config import device_dirs
    from edgebench.config.ansible import load_inventory, plan_profiles, write_profiles

    inventory = load_inventory(args.inventory)
    for warning in inventory.warnings:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[yellow]warning:[/] {escape(warning)}")
    # the first devices directory: the one a device name is looked up in first
    planned = plan_profiles(inventory, device_dirs(args.devices_dir)[0])
    if args.dry_run:
        for item in planned:
            action = "skip (exists)" if item.exists and not args.force else "overwrite" if item.exists else "write"
            sys.stdout.write(f"# would {action} {item.path}\n{item.text}\n")
        return EXIT_OK
    written, skipped = write_profiles(planned, force=args.force)
    for path in written:
        console.print(f"wrote {escape(str(path))}", soft_wrap=True)
    for path in skipped:
        console.print(f"[yellow]kept {escape(str(path))}: it already exists (--force overwrites it)[/]",
                      soft_wrap=True)
    console.print(f"{len(written)} profile(s) written, {len(skipped)} kept")
    return EXIT_OK
