#!/usr/bin/env python3
"""An emulated Arm board: Debian 12 arm64 with its own kernel under qemu-system-aarch64.

It is a real aarch64 system (its own /proc/cpuinfo, a real 2 GiB RAM limit, a real OOM killer),
reached over SSH on a loopback port like any device. The tests boot it (tests/board_fixtures.py);
a user can start the same board by hand to try edgebench without hardware:

    python tests/arm_board.py start          # builds the image once (~16 min), boots (~1-2 min)
    python tests/arm_board.py start --print-device > devices/board.yaml

Two layers, so that a boot never changes what is cached:
- the *image*: a root filesystem from ``debootstrap --arch=arm64`` made into an ext4 disk, with its
  kernel and initrd beside it. It is built once and cached under a directory named by a hash of its
  recipe (``RECIPE`` below), so changing the recipe builds a new one and never reuses a stale one.
- the *seed*: a small second disk made per boot with the SSH keys. A unit in the image copies them
  into place before sshd starts (like cloud-init's NoCloud seed), so keys are the fixture's, made
  fresh, and trust goes through ``edgebench devices trust`` as for any device. Each boot writes to a
  qcow2 overlay of the image, thrown away at the end.

Facts and gotchas behind the recipe: ../shared/reference/arm-board.md.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"

# What debootstrap makes (the slow part, ~15 min cold): its hash names the cached root filesystem.
BASE = {
    "suite": "bookworm",
    "arch": "arm64",
    "mirror": MIRROR,
    # minbase leaves out Debian's "important" packages (man-db, cron, ...), whose configuration
    # under qemu-user is most of a cold build; these are what the board needs to boot and serve SSH.
    "variant": "minbase",
    "include": [
        "systemd-sysv", "udev", "kmod", "dbus", "iproute2", "procps",
        "openssh-server", "python3", "linux-image-arm64",
    ],
}
# Bump when the configuration written into the root filesystem (configure_rootfs) changes: the
# image's key is the base's and this, so a new configuration makes a new image in seconds.
CONFIG_VERSION = 3

# The board's size: 4 cores and 2 GiB like a small SBC; "-cpu max" advertises the features
# phones and Pis have (asimddp, i8mm, sve, bf16), which decide llama.cpp's build flags.
CPUS = 4
MEMORY_MIB = 2048
CPU_MODEL = "max"

SEED_UNIT = """\
[Unit]
Description=Install the SSH keys from the edgebench seed disk
Before=ssh.service
DefaultDependencies=no
After=local-fs.target

[Service]
Type=oneshot
# the script waits for the disk itself: under emulation beside other work udev may take longer to
# name it than systemd's 90 s wait for a device unit, and sshd would then start without host keys
TimeoutStartSec=15min
ExecStart=/usr/local/sbin/edgebench-seed

[Install]
WantedBy=multi-user.target
"""

SEED_SCRIPT = """\
#!/bin/sh
# Copy the keys from the seed disk (made per boot by tests/arm_board.py) into place.
set -e
# by its label (qemu numbers virtio-mmio disks in the reverse order of its command line), probed by
# blkid itself rather than through udev's links, for up to 15 minutes
seed=""
for _ in $(seq 900); do
    seed=$(blkid -L edgebench-seed) && break
    sleep 1
done
[ -n "$seed" ] || { echo "edgebench-seed: no disk labelled edgebench-seed" >&2; exit 1; }
mkdir -p /run/seed
mount -o ro "$seed" /run/seed
install -d -m 700 /root/.ssh
install -m 600 /run/seed/authorized_keys /root/.ssh/authorized_keys
install -m 600 /run/seed/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key
install -m 644 /run/seed/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ed25519_key.pub
umount /run/seed
"""

NETWORK = """\
[Match]
Name=e*

[Network]
DHCP=ipv4
"""

SSHD_CONFIG = """\
# edgebench board: one host key (the seed's), keys only
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
PermitRootLogin prohibit-password
UseDNS no
"""


def _key(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def cache_root() -> Path:
    base = os.environ.get("EDGEBENCH_BOARD_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgebench-board")
    return Path(base)


def base_dir() -> Path:
    return cache_root() / f"rootfs-{BASE['suite']}-{BASE['arch']}-{_key(BASE)}"


def image_dir() -> Path:
    return cache_root() / f"image-{BASE['suite']}-{BASE['arch']}-{_key([BASE, CONFIG_VERSION])}"


class BoardError(RuntimeError):
    """One sentence saying what is missing or what failed."""


def missing_tools() -> list[str]:
    """The Debian packages the board needs on this machine that are not installed."""
    need = {
        "qemu-system-aarch64": "qemu-system-arm", "qemu-img": "qemu-utils",
        "debootstrap": "debootstrap", "mkfs.ext4": "e2fsprogs", "ssh-keygen": "openssh-client",
    }
    packages = [pkg for tool, pkg in need.items() if not shutil.which(tool)]
    if not Path("/usr/libexec/qemu-binfmt/aarch64-binfmt-P").exists() and not shutil.which("qemu-aarch64-static"):
        packages.append("qemu-user-static")
    return packages


def _register_binfmt() -> None:
    """Make arm64 binaries run through qemu-user, for debootstrap's second stage."""
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], check=True)
    if (binfmt / "qemu-aarch64").exists():
        return
    line = Path("/usr/lib/binfmt.d/qemu-aarch64.conf").read_text().strip()
    (binfmt / "register").write_text(line)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def configure_rootfs(root: Path) -> None:
    """What the board needs beyond its packages; versioned by CONFIG_VERSION."""
    _write(root / "etc/hostname", "edgebench-board\n")
    _write(root / "etc/hosts", "127.0.0.1 localhost\n127.0.1.1 edgebench-board\n")
    _write(root / "etc/fstab", "LABEL=board / ext4 rw,relatime 0 1\n")
    _write(root / "etc/systemd/network/20-wired.network", NETWORK)
    _write(root / "etc/ssh/sshd_config.d/edgebench.conf", SSHD_CONFIG)
    _write(root / "etc/systemd/system/edgebench-seed.service", SEED_UNIT)
    _write(root / "usr/local/sbin/edgebench-seed", SEED_SCRIPT, 0o755)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit, target in (("systemd-networkd.service", "/lib/systemd/system/systemd-networkd.service"),
                         ("edgebench-seed.service", "/etc/systemd/system/edgebench-seed.service")):
        link = wants / unit
        if not link.is_symlink():
            link.symlink_to(target)
    # the host keys debootstrap made are replaced per boot by the seed's; none stays in the image
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    # no root password: keys only (the seed's authorized_keys)
    shadow = root / "etc/shadow"
    shadow.write_text("".join(("root:*:" + line.split(":", 2)[2]) if line.startswith("root:") else line
                              for line in shadow.read_text().splitlines(keepends=True)))


def build_base(log=print) -> Path:
    """debootstrap's root filesystem, built once (root needed) and cached by BASE."""
    out = base_dir()
    if (out / "rootfs").is_dir():
        return out
    packages = missing_tools()
    if packages:
        raise BoardError(f"the emulated board needs these packages: apt-get install {' '.join(packages)}")
    if os.geteuid() != 0:
        raise BoardError("building the board's image needs root (debootstrap and binfmt_misc)")
    _register_binfmt()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=out.name + ".build-", dir=out.parent))
    started = time.monotonic()
    log(f"building the board's root filesystem in {work} (debootstrap, about 15 minutes cold)")
    cmd = ["debootstrap", f"--variant={BASE['variant']}", f"--arch={BASE['arch']}",
           "--include=" + ",".join(BASE["include"]), BASE["suite"], str(work / "rootfs"), BASE["mirror"]]
    with open(work / "debootstrap.log", "w") as debootstrap_log:
        done = subprocess.run(cmd, stdout=debootstrap_log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise BoardError(f"debootstrap failed (exit {done.returncode}); its log: {work / 'debootstrap.log'}")
    (work / "base.json").write_text(json.dumps({"base": BASE, "build_s": round(time.monotonic() - started, 1)},
                                               indent=2) + "\n")
    work.rename(out)
    log(f"root filesystem built in {time.monotonic() - started:.0f} s: {out}")
    return out


def build_image(log=print) -> Path:
    """The bootable image (disk, kernel, initrd), made from the cached base in seconds."""
    out = image_dir()
    if (out / "board.img").exists():
        return out
    base = build_base(log) / "rootfs"
    work = Path(tempfile.mkdtemp(prefix=out.name + ".build-", dir=out.parent))
    root = work / "rootfs"
    subprocess.run(["cp", "-a", str(base), str(root)], check=True)
    configure_rootfs(root)
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise BoardError(f"debootstrap left no kernel or initrd in {base / 'boot'}")
    shutil.copy(kernels[-1], work / "vmlinuz")
    shutil.copy(initrds[-1], work / "initrd.img")
    subprocess.run(["truncate", "-s", "6G", str(work / "board.img")], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "board", "-d", str(root), str(work / "board.img")], check=True)
    shutil.rmtree(root)
    work.rename(out)
    # an image of an older configuration is never booted again: its 6 GB go
    for stale in out.parent.glob("image-*"):
        if stale != out and not stale.name.startswith(out.name):
            shutil.rmtree(stale, ignore_errors=True)
    log(f"board image made: {out}")
    return out



def _die_with_parent() -> None:
    # a test process killed hard (SIGKILL, OOM) takes its board with it instead of leaving qemu running;
    # the signal follows the thread that started it, so boards start from the main thread
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)


def _fingerprint(public_key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key)], check=True, capture_output=True, text=True).stdout
    return out.split()[1]


def _banner(port: int, timeout: float = 2.0) -> bool:
    """True once sshd answers with its version line (the guest's sshd, not qemu's forwarder alone)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


@dataclass
class Board:
    """One boot of the board: its SSH address, keys and the qemu process. Stop it with stop()."""

    workdir: Path
    image: Path = field(default_factory=image_dir)
    cpus: int = CPUS
    memory_mib: int = MEMORY_MIB
    port: int = 0
    process: subprocess.Popen | None = None
    boot_s: float | None = None

    @property
    def identity(self) -> Path:
        return self.workdir / "id_ed25519"

    @property
    def host_key(self) -> Path:
        return self.workdir / "seed" / "ssh_host_ed25519_key.pub"

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.host_key)

    @property
    def console_log(self) -> Path:
        return self.workdir / "console.log"

    def device_yaml(self, name: str = "board") -> str:
        """A device profile for this boot; trust its host key with `edgebench devices trust`."""
        return (f"name: {name}\ntransport: ssh\nclass: sbc\nhost: 127.0.0.1\nport: {self.port}\n"
                f"user: root\nidentity: {self.identity}\n")

    def _seed(self) -> Path:
        seed = self.workdir / "seed"
        seed.mkdir(parents=True, exist_ok=True)
        _keygen(self.identity, "edgebench-board-client")
        _keygen(seed / "ssh_host_ed25519_key", "edgebench-board-host")
        shutil.copy(self.identity.with_suffix(".pub"), seed / "authorized_keys")
        disk = self.workdir / "seed.img"
        subprocess.run(["truncate", "-s", "8M", str(disk)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "edgebench-seed", "-d", str(seed), str(disk)], check=True)
        return disk

    def command(self, seed: Path, overlay: Path) -> list[str]:
        return [
            "qemu-system-aarch64", "-M", "virt", "-cpu", CPU_MODEL, "-smp", str(self.cpus), "-m", str(self.memory_mib),
            "-display", "none", "-monitor", "none", "-serial", f"file:{self.console_log}",
            "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"),
            "-append", "root=LABEL=board rw console=ttyAMA0 quiet",
            "-drive", f"file={overlay},if=none,format=qcow2,id=root",
            "-device", "virtio-blk-device,drive=root",
            "-drive", f"file={seed},if=none,format=raw,id=seed,readonly=on",
            "-device", "virtio-blk-device,drive=seed",
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-device", "virtio-net-device,netdev=net0",
        ]

    def start(self, timeout_s: float = 600, log=print) -> Board:
        packages = missing_tools()
        if packages:
            raise BoardError(f"the emulated board needs these packages: apt-get install {' '.join(packages)}")
        self.image = build_image(log)
        self.workdir.mkdir(parents=True, exist_ok=True)
        seed = self._seed()
        overlay = self.workdir / "overlay.qcow2"
        # every boot writes to its own overlay: the cached image stays as built
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.image / "board.img"),
                        str(overlay)], check=True)
        self.port = self.port or _free_port()
        started = time.monotonic()
        with open(self.workdir / "qemu.log", "w") as qemu_log:
            self.process = subprocess.Popen(self.command(seed, overlay), stdin=subprocess.DEVNULL, stdout=qemu_log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_die_with_parent)
        while not _banner(self.port):
            if self.process.poll() is not None:
                raise BoardError(f"qemu exited with {self.process.returncode}; see {self.workdir / 'qemu.log'}")
            if time.monotonic() - started > timeout_s:
                self.stop()
                raise BoardError(f"the board's sshd did not answer within {timeout_s:.0f} s; its console: "
                                 f"{self.console_log}")
            time.sleep(2)
        self.boot_s = time.monotonic() - started
        log(f"board up in {self.boot_s:.0f} s: ssh -p {self.port} -i {self.identity} root@127.0.0.1")
        return self

    def ssh(self, command: str, timeout_s: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """A command on the board through the openssh client, for fixtures and tests (edgebench uses paramiko)."""
        known = self.workdir / "known_hosts"
        known.write_text(f"[127.0.0.1]:{self.port} {self.host_key.read_text().split(' ', 2)[0]} "
                         f"{self.host_key.read_text().split(' ', 2)[1]}\n")
        argv = ["ssh", "-p", str(self.port), "-i", str(self.identity), "-o", f"UserKnownHostsFile={known}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@127.0.0.1", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=check)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        overlay = self.workdir / "overlay.qcow2"
        if overlay.exists():
            overlay.unlink()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the board's image (cached by its recipe)")
    build.add_argument("--engine", action="store_true",
                       help="also cross-build the board's llama.cpp (what `install-engine -d` builds for it; cached), "
                            "so that no test waits for a cold build")
    start = sub.add_parser("start", help="boot the board and keep it up until Ctrl-C")
    start.add_argument("--dir", type=Path, default=None, help="where this boot's keys and logs go "
                       "(default: a new temporary directory)")
    start.add_argument("--port", type=int, default=0, help="the loopback port for its sshd (default: a free one)")
    start.add_argument("--name", default="board", help="the device name in the printed profile")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(build_image())
            if args.engine:
                print(build_board_engine().directory)
        elif args.command == "start":
            return _start(args)
    except BoardError as exc:
        print(f"arm_board: {exc}", file=sys.stderr)
        return 1
    return 0


def build_board_engine():
    """The llama.cpp build for the board's CPU, as `install-engine -d` makes it from the board's probe: the
    probe of `-cpu max` is the one tests/test_engine_target.py keeps (BOARD_FEATURES)."""
    from test_device_build import BOARD

    from edgebench.toolchain.device_build import build_engine
    return build_engine(BOARD, log=lambda text: print(text, file=sys.stderr))


def _interrupted(signum, frame):
    raise KeyboardInterrupt  # `kill` stops the board as Ctrl-C does, through _start's finally


def _start(args) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    board = Board(args.dir or Path(tempfile.mkdtemp(prefix="edgebench-board-")), port=args.port)
    board.start(log=lambda text: print(text, file=sys.stderr))
    try:
        profile = Path.cwd() / "devices" / f"{args.name}.yaml"
        print(f"# a device profile for it (e.g. save as {profile}):\n{board.device_yaml(args.name)}")
        print(f"# then trust its host key:\nedgebench devices trust {args.name} --fingerprint {board.fingerprint}")
        print("# the board runs until Ctrl-C", flush=True)
        while board.process.poll() is None:
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        board.stop()


if __name__ == "__main__":
    sys.exit(main())
