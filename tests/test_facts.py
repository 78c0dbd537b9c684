"""Device probe facts: every parser on recorded outputs of five devices, and the real probe script
run by real shells on this machine (hostile workdirs, missing commands, refusals)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import require

from edgebench.facts import (
    FACTS,
    FactOutputError,
    fact_command,
    fact_script,
    is_unavailable,
    parse_fact_output,
    shell_path,
)

FIXTURES = Path(__file__).parent / "fixtures" / "fact_script"

NOT_TERMUX = {"is_termux": False, "prefix": None, "version": None}
ARM_NO_SVE = {"asimd": True, "asimdhp": True, "asimddp": True, "fphp": True, "i8mm": False, "bf16": False,
              "sve": False, "sve2": False}
# AVX2 with FMA, F16C and BMI2, no AVX-VNNI, no AVX-512
X86_AVX2 = {"sse4_2": True, "avx": True, "avx2": True, "bmi2": True, "fma": True, "f16c": True, "avx_vnni": False,
            **dict.fromkeys(("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw", "avx512vbmi", "avx512_vnni",
                             "avx512_bf16"), False)}
NO_TOOLS = dict.fromkeys(("sha256sum", "shasum", "llama-bench", "nvidia-smi", "tegrastats", "vcgencmd",
                          "termux-battery-status", "df"))
TERMUX = "/data/data/com.termux/files/usr"
KIB = 1024


def _cluster(part, name, cpus):
    return {"part": part, "implementer": "0x41", "name": name, "description": name, "count": len(cpus),
            "cpus": list(cpus)}


EXPECTED = {
    "rpi5": {
        "arch": "aarch64",
        "kernel": {"system": "Linux", "release": "6.6.31+rpt-rpi-2712"},
        "hostname": "pi5-bench",
        "os": {"id": "debian", "name": "Debian GNU/Linux 12 (bookworm)", "version_id": "12"},
        "termux": NOT_TERMUX,
        "selinux": None,
        "cpu": {"model": "Raspberry Pi 5 Model B Rev 1.0", "isa": "arm", "logical_cores": 4, "physical_cores": 4,
                "online_cores": 4, "clusters": [_cluster("0xd0b", "Cortex-A76", range(4))], "features": ARM_NO_SVE},
        "cpufreq_max_khz": {"policy0": 2400000},
        "memory": {"total_bytes": 8245808 * KIB, "available_bytes": 7512340 * KIB, "swap_total_bytes": 102384 * KIB},
        "disk": {"path": "/home/pi/edgebench", "workdir_exists": True, "filesystem": "/dev/mmcblk0p2", "mount": "/",
                 "total_bytes": 61091560 * KIB, "used_bytes": 7405332 * KIB, "available_bytes": 51157288 * KIB},
        "python": {"path": "/usr/bin/python3", "version": "3.11.2", "at_least_3_8": True},
        "tools": {**NO_TOOLS, "sha256sum": "/usr/bin/sha256sum", "shasum": "/usr/bin/shasum",
                  "llama-bench": "/usr/local/bin/llama-bench", "vcgencmd": "/usr/bin/vcgencmd", "df": "/usr/bin/df"},
        "libc": {"name": "glibc", "version": "2.36"},
        "gpu": None,
        # 0x50000: under-voltage and throttling have happened since boot, neither is happening now
        "throttled": {"raw": "0x50000", "under_voltage": False, "arm_freq_capped": False, "throttled": False,
                      "soft_temp_limit": False, "under_voltage_occurred": True, "arm_freq_capped_occurred": False,
                      "throttled_occurred": True, "soft_temp_limit_occurred": False},
    },
    "termux_pixel8": {
        "arch": "aarch64",
        "kernel": {"system": "Linux", "release": "5.15.137-android14-11-gbf4f9bc41c3b-ab11664771"},
        "hostname": "localhost",
        "os": {"id": "android", "name": "Android 14", "version_id": "14", "sdk": 34, "model": "Pixel 8",
               "manufacturer": "Google"},
        "termux": {"is_termux": True, "prefix": TERMUX, "version": "0.118.1"},
        "selinux": "unavailable: permission denied",
        "cpu": {"model": "4x Cortex-A510 + 4x Cortex-A715 + 1x Cortex-X3", "isa": "arm", "logical_cores": 9,
                "physical_cores": 9, "online_cores": 9,
                "clusters": [_cluster("0xd46", "Cortex-A510", range(0, 4)),
                             _cluster("0xd4d", "Cortex-A715", range(4, 8)),
                             _cluster("0xd4e", "Cortex-X3", [8])],
                "features": dict.fromkeys(ARM_NO_SVE, True)},
        "cpufreq_max_khz": {"policy0": 1704000, "policy4": 2367000, "policy8": 2910000},
        "memory": {"total_bytes": 7805364 * KIB, "available_bytes": 2894532 * KIB, "swap_total_bytes": 3902680 * KIB},
        # toybox df: -k after -P cancels -P, so "1K-blocks" and "Use%"
        "disk": {"path": "/data/data/com.termux/files/home", "workdir_exists": False, "filesystem": "/dev/block/dm-46",
                 "mount": "/data/data/com.termux", "total_bytes": 115183940 * KIB, "used_bytes": 48213572 * KIB,
                 "available_bytes": 66839824 * KIB},
        "python": {"path": f"{TERMUX}/bin/python3", "version": "3.12.4", "at_least_3_8": True},
        "tools": {**NO_TOOLS, "sha256sum": f"{TERMUX}/bin/sha256sum", "llama-bench": f"{TERMUX}/bin/llama-bench",
                  "termux-battery-status": f"{TERMUX}/bin/termux-battery-status", "df": f"{TERMUX}/bin/df"},
        "libc": {"name": "bionic", "version": "34"},
        "gpu": None,
        "throttled": None,
    },
    "jetson_orin_nano": {
        "arch": "aarch64",
        "kernel": {"system": "Linux", "release": "5.10.120-tegra"},
        "hostname": "orin-nano",
        "os": {"id": "ubuntu", "name": "Ubuntu 20.04.6 LTS", "version_id": "20.04"},
        "termux": NOT_TERMUX,
        "selinux": None,
        "cpu": {"model": "6x Cortex-A78AE", "isa": "arm", "logical_cores": 6, "physical_cores": 6, "online_cores": 6,
                "clusters": [_cluster("0xd42", "Cortex-A78AE", range(6))], "features": ARM_NO_SVE},
        "cpufreq_max_khz": {"policy0": 1510400, "policy4": 1510400},
        "memory": {"total_bytes": 7620440 * KIB, "available_bytes": 6098732 * KIB, "swap_total_bytes": 3810208 * KIB},
        "disk": {"path": "/home/jetson", "workdir_exists": False, "filesystem": "/dev/nvme0n1p1", "mount": "/",
                 "total_bytes": 238222072 * KIB, "used_bytes": 31854712 * KIB, "available_bytes": 194179112 * KIB},
        "python": {"path": "/usr/bin/python3", "version": "3.8.10", "at_least_3_8": True},
        "tools": {**NO_TOOLS, "sha256sum": "/usr/bin/sha256sum", "shasum": "/usr/bin/shasum",
                  "tegrastats": "/usr/bin/tegrastats", "df": "/usr/bin/df"},
        "libc": {"name": "glibc", "version": "2.31"},
        "gpu": {"jetson": {"l4t": "35.4.1", "board": "t186ref",
                           "raw": "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
                                  "DATE: Tue Aug  1 19:57:35 UTC 2023"},
                "nvidia": None},
        "throttled": None,
    },
    "x86_laptop": {
        "arch": "x86_64",
        "kernel": {"system": "Linux", "release": "6.8.9-300.fc40.x86_64"},
        "hostname": "alex-laptop",
        "os": {"id": "fedora", "name": "Fedora Linux 40 (Workstation Edition)", "version_id": "40"},
        "termux": NOT_TERMUX,
        "selinux": "enforcing",
        # 6 P-cores with two threads each + 8 E-cores
        "cpu": {"model": "13th Gen Intel(R) Core(TM) i7-13700H", "isa": "x86", "logical_cores": 20,
                "physical_cores": 14, "online_cores": 20, "clusters": None,
                "features": {**X86_AVX2, "avx_vnni": True}},
        # glob order is policy0 policy1 policy10 ...; the value is in numeric order
        "cpufreq_max_khz": {**{f"policy{n}": 5000000 for n in range(12)},
                            **{f"policy{n}": 3700000 for n in range(12, 20)}},
        "memory": {"total_bytes": 32471508 * KIB, "available_bytes": 24338912 * KIB, "swap_total_bytes": 8388604 * KIB},
        "disk": {"path": "/home/alex/edgebench", "workdir_exists": True, "filesystem": "/dev/nvme0n1p3",
                 "mount": "/home", "total_bytes": 998483968 * KIB, "used_bytes": 212637520 * KIB,
                 "available_bytes": 783972992 * KIB},
        "python": {"path": "/usr/bin/python3", "version": "3.12.3", "at_least_3_8": True},
        "tools": {**NO_TOOLS, "sha256sum": "/usr/bin/sha256sum", "shasum": "/usr/bin/shasum",
                  "llama-bench": "/home/alex/.local/bin/llama-bench", "nvidia-smi": "/usr/bin/nvidia-smi",
                  "df": "/usr/bin/df"},
        "libc": {"name": "glibc", "version": "2.39"},
        "gpu": {"jetson": None, "nvidia": [{"index": 0, "name": "NVIDIA GeForce RTX 4060 Laptop GPU",
                                            "uuid": "GPU-3c8e2f4a-91b7-5d06-a2e4-7f1b9c0d6e58"}]},
        "throttled": None,
    },
    # recorded by running fact_script("~/edgebench/work") with `sh -c` (dash) in a Debian 12 container
    "debian_container": {
        "arch": "x86_64",
        "kernel": {"system": "Linux", "release": "6.18.44-fc-v595"},
        "hostname": "vm",
        "os": {"id": "debian", "name": "Debian GNU/Linux 12 (bookworm)", "version_id": "12"},
        "termux": NOT_TERMUX,
        "selinux": None,
        "cpu": {"model": "AMD EPYC", "isa": "x86", "logical_cores": 2, "physical_cores": 2, "online_cores": 2,
                "clusters": None,
                "features": X86_AVX2},
        "cpufreq_max_khz": None,  # a VM has no cpufreq policies
        "memory": {"total_bytes": 24684096 * KIB, "available_bytes": 23774752 * KIB, "swap_total_bytes": 0},
        "disk": {"path": "/root", "workdir_exists": False, "filesystem": "/dev/vda", "mount": "/",
                 "total_bytes": 264212084 * KIB, "used_bytes": 25300888 * KIB, "available_bytes": 81090024 * KIB},
        "python": {"path": "/root/.pyenv/versions/3.11.7/bin/python3", "version": "3.11.7", "at_least_3_8": True},
        "tools": {**NO_TOOLS, "sha256sum": "/usr/bin/sha256sum", "shasum": "/usr/bin/shasum", "df": "/usr/bin/df"},
        "libc": {"name": "glibc", "version": "2.36"},
        "gpu": None,
        "throttled": None,
    },
}


def fixture(device: str) -> str:
    return (FIXTURES / f"{device}.txt").read_text()


# ---------------------------------------------------------------- recorded outputs


@pytest.mark.parametrize("device", sorted(EXPECTED))
def test_fixture_parses_every_fact(device):
    parsed = parse_fact_output(fixture(device))
    assert list(parsed) == list(FACTS)
    assert set(EXPECTED[device]) == set(FACTS)


@pytest.mark.parametrize("device,name", [(d, n) for d in sorted(EXPECTED) for n in EXPECTED[d]])
def test_fixture_fact_value(device, name):
    assert parse_fact_output(fixture(device))[name] == EXPECTED[device][name]


def _sections(output: str) -> dict[str, tuple[str, int]]:
    """An independent reading of the marker format, to feed each parser its own output."""
    nonce = re.search(r"^@@edgebench-probe 1 (\w+)$", output, re.M).group(1)
    found = re.finditer(rf"^@@edgebench-probe {nonce} begin (\w+)\n(.*?)\n@@edgebench-probe {nonce} end \1 (\d+)$",
                        output, re.M | re.S)
    return {m.group(1): (m.group(2), int(m.group(3))) for m in found}


@pytest.mark.parametrize("device", sorted(EXPECTED))
def test_each_parser_on_its_own_section(device):
    sections = _sections(fixture(device))
    assert set(sections) == set(FACTS)
    for name, (body, status) in sections.items():
        assert FACTS[name].parse(body, status) == EXPECTED[device][name], name


# ---------------------------------------------------------------- parser edge cases


def test_permission_denied_is_unavailable_whatever_the_fact():
    denied = "cat: /proc/cpuinfo: Permission denied\n"
    for name in FACTS:
        assert FACTS[name].parse(denied, 1) == "unavailable: permission denied", name
    assert FACTS["memory"].parse("cat: /proc/meminfo: Operation not permitted", 0) == "unavailable: permission denied"


def test_missing_and_failing_commands_are_unavailable():
    assert FACTS["arch"].parse("sh: 1: uname: not found\n", 127) == "unavailable: command not found"
    assert FACTS["throttled"].parse("VCHI initialization failed\n", 255) == \
        "unavailable: exit status 255: VCHI initialization failed"
    assert FACTS["throttled"].parse("", 0) is None
    assert FACTS["memory"].parse("", 2) == "unavailable: exit status 2"


def test_unrecognised_output_is_unavailable_not_an_error():
    assert FACTS["throttled"].parse("garbage\n", 0).startswith("unavailable: unparseable output")
    assert FACTS["selinux"].parse("Maybe\n", 0).startswith("unavailable: unparseable output")
    assert FACTS["memory"].parse("MemFree: 1 kB\n", 0).startswith("unavailable: unparseable output")


def test_cpufreq_policy_refused_by_selinux():
    out = ("policy0 1804800\n"
           "policy4 cat: /sys/devices/system/cpu/cpufreq/policy4/cpuinfo_max_freq: Permission denied\n"
           "policy7 3187200\n")
    assert FACTS["cpufreq_max_khz"].parse(out, 0) == {
        "policy0": 1804800, "policy4": "unavailable: permission denied", "policy7": 3187200}
    all_denied = "policy0 cat: /sys/devices/system/cpu/cpufreq/policy0/cpuinfo_max_freq: Permission denied\n"
    assert FACTS["cpufreq_max_khz"].parse(all_denied, 0) == "unavailable: permission denied"


def test_cpu_older_android_with_hardware_line_and_qualcomm_parts():
    block = ("processor\t: {n}\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics "
             "fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x51\nCPU architecture: 8\n"
             "CPU variant\t: 0xd\nCPU part\t: {part}\nCPU revision\t: 14\n\n")
    cpuinfo = "".join(block.format(n=n, part="0x805" if n < 6 else "0x804") for n in range(8))
    value = FACTS["cpu"].parse("nproc=8\n" + cpuinfo + "Hardware\t: Qualcomm Technologies, Inc SM8150\n", 0)
    assert value["model"] == "Qualcomm Technologies, Inc SM8150"
    assert [(c["name"], c["description"], c["count"]) for c in value["clusters"]] == [
        (None, "Qualcomm part 0x805", 6), (None, "Qualcomm part 0x804", 2)]
    assert value["features"]["asimddp"] and not value["features"]["i8mm"]


def test_cpu_feature_counts_only_when_every_core_has_it():
    two = ("processor\t: 0\nFeatures\t: fp asimd i8mm\nCPU implementer\t: 0x41\nCPU part\t: 0xd4d\n\n"
           "processor\t: 1\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU part\t: 0xd46\n\n")
    value = FACTS["cpu"].parse("nproc=\n" + two, 0)
    assert value["features"]["asimd"] and not value["features"]["i8mm"]
    assert value["online_cores"] is None
    assert value["model"] == "1x Cortex-A715 + 1x Cortex-A510"


def test_memory_without_memavailable_is_none_not_estimated():
    value = FACTS["memory"].parse("MemTotal:  1000 kB\nMemFree:  500 kB\nSwapTotal:  0 kB\n", 0)
    assert value == {"total_bytes": 1024000, "available_bytes": None, "swap_total_bytes": 0}


def test_os_release_quoting_and_android_without_model():
    release = "source=os-release\nNAME='Alpine Linux'\nID=alpine\nVERSION_ID=3.20.1\n"
    assert FACTS["os"].parse(release, 0) == {"id": "alpine", "name": "Alpine Linux", "version_id": "3.20.1"}
    props = "source=getprop\nro.build.version.release=13\nro.build.version.sdk=\nro.product.model=\n"
    assert FACTS["os"].parse(props, 0) == {"id": "android", "name": "Android 13", "version_id": "13", "sdk": None,
                                           "model": None, "manufacturer": None}


@pytest.mark.parametrize("output,expected", [
    ("glibc 2.36\n", {"name": "glibc", "version": "2.36"}),  # getconf GNU_LIBC_VERSION, Debian 12
    # ldd --version where getconf is missing: Debian's, then upstream's first line
    ("ldd (Debian GLIBC 2.36-9+deb12u14) 2.36\nCopyright (C) 2022 Free Software Foundation, Inc.\n",
     {"name": "glibc", "version": "2.36"}),
    ("ldd (GNU libc) 2.39\nCopyright (C) 2024 Free Software Foundation, Inc.\n", {"name": "glibc", "version": "2.39"}),
    # Alpine's /lib/ld-musl-aarch64.so.1 run with no arguments
    ("musl libc (aarch64)\nVersion 1.2.5\n", {"name": "musl", "version": "1.2.5"}),
    ("bionic api=34\n", {"name": "bionic", "version": "34"}),
    ("bionic api=\n", {"name": "bionic", "version": None}),
])
def test_libc_outputs(output, expected):
    assert FACTS["libc"].parse(output, 0) == expected


def test_libc_that_is_not_recognised_is_unavailable():
    assert FACTS["libc"].parse("uClibc 0.9.33\n", 0) == "unavailable: unparseable output (unknown C library line " \
                                                         "'uClibc 0.9.33')"


def test_termux_detected_from_home_when_prefix_was_not_passed_on():
    out = "prefix=\nversion=\nhome=/data/data/com.termux/files/home\n"
    assert FACTS["termux"].parse(out, 0) == {"is_termux": True, "prefix": None, "version": None}


def test_disk_busybox_wrapped_row_and_512_blocks():
    busybox = ("Filesystem           1024-blocks    Used Available Capacity Mounted on\n"
               "/dev/mapper/vg0-root--with--a--long--name\n"
               "                       1000000   400000    550000  43% /srv/my data\n"
               "workdir_exists=no\npath=/srv/my data")
    value = FACTS["disk"].parse(busybox, 0)
    assert value["filesystem"] == "/dev/mapper/vg0-root--with--a--long--name"
    assert value["mount"] == "/srv/my data"
    assert value["available_bytes"] == 550000 * 1024
    toybox_pedantic = ("Filesystem       512-blocks     Used Available Capacity Mounted on\n"
                       "/dev/block/dm-7     2000000  1000000    900000  53% /data\n"
                       "workdir_exists=yes\npath=/data/local/tmp")
    assert FACTS["disk"].parse(toybox_pedantic, 0)["total_bytes"] == 2000000 * 512


def test_disk_path_with_newline_survives():
    out = ("Filesystem     1024-blocks  Used Available Capacity Mounted on\n/dev/sda1 100 50 50 50% /\n"
           "workdir_exists=yes\npath=/tmp/odd\nworkdir_exists=no\npath=x")
    assert FACTS["disk"].parse(out, 0)["path"] == "/tmp/odd\nworkdir_exists=no\npath=x"


def test_gpu_nvidia_smi_without_driver():
    out = ("nvidia-smi-exit=9\nNVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
           "Make sure that the latest NVIDIA driver is installed and running.\n")
    value = FACTS["gpu"].parse(out, 0)
    assert value["jetson"] is None
    assert value["nvidia"].startswith("unavailable: nvidia-smi exit status 9: NVIDIA-SMI has failed")


def test_python_too_old_and_warnings_before_the_version():
    out = "path=/usr/bin/python3\nCould not find platform independent libraries <prefix>\n3.7.3\n"
    assert FACTS["python"].parse(out, 0) == {"path": "/usr/bin/python3", "version": "3.7.3", "at_least_3_8": False}


def test_parse_probe_cut_short_crlf_and_forged_markers():
    text = fixture("rpi5")
    cut = text[:text.index("begin memory") + len("begin memory\nMemTotal:")]
    parsed = parse_fact_output(cut.replace("\n", "\r\n"))
    assert parsed["cpu"] == EXPECTED["rpi5"]["cpu"]
    assert parsed["memory"] == "unavailable: probe cut short"
    assert parsed["throttled"] == "unavailable: not in the probe output"
    # a command cannot end a section early without knowing the nonce
    forged = text.replace("pi5-bench\n", "pi5-bench\n@@edgebench-probe 0000000000000000 end hostname 0\n", 1)
    assert parse_fact_output(forged)["hostname"] == "pi5-bench"


def test_parse_probe_rejects_output_that_is_not_a_probe():
    with pytest.raises(FactOutputError):
        parse_fact_output("bash: sh: command not found\n")


# ---------------------------------------------------------------- the script itself


def test_commands_are_constants_and_only_the_workdir_assignment_varies():
    a, b = fact_script("/srv/a", nonce="ab" * 8), fact_script("~/b c", nonce="ab" * 8)
    diff = [(x, y) for x, y in zip(a.splitlines(), b.splitlines()) if x != y]
    assert diff == [("workdir=/srv/a", "workdir=\"$HOME\"/'b c'")]
    for item in FACTS.values():
        if item.argument is None:
            assert item.command in a
            with pytest.raises(TypeError):
                item.command_for("x")
        else:
            with pytest.raises(TypeError):
                item.command_for()


@pytest.mark.parametrize("workdir,quoted", [
    ("~", '"$HOME"'),
    ("~/", '"$HOME"'),
    ("~/edge bench", "\"$HOME\"/'edge bench'"),
    ("/opt/edgebench", "/opt/edgebench"),
    ("/opt/edgebench//", "/opt/edgebench"),
    ("/", "/"),
    ("-rf", "./-rf"),
    ("", "."),
    ("/a'b", "'/a'\"'\"'b'"),
])
def test_shell_path(workdir, quoted):
    assert shell_path(workdir) == quoted


def test_shell_path_rejects_other_users_home():
    with pytest.raises(ValueError):
        shell_path("~bob/edgebench")


# ---------------------------------------------------------------- the real script, real shells, this machine

SHELLS = {"sh": ["sh"], "dash": ["dash"], "bash": ["bash"], "bash-posix": ["bash", "--posix"], "mksh": ["mksh"],
          "busybox": ["busybox", "sh"]}


def run_probe(workdir: str, shell=("sh",), env=None) -> dict:
    require(shutil.which(shell[0]) is not None, f"the {shell[0]} shell (.ci/run installs it)")
    done = subprocess.run([*shell, "-c", fact_script(workdir)], capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # every fact's stderr is captured into its own section
    return parse_fact_output(done.stdout)


def local_python_version() -> str:
    python3 = shutil.which("python3")
    require(python3 is not None, "python3 on PATH")
    return subprocess.run([python3, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                          text=True, check=True).stdout.strip()


def assert_same_disk(disk: dict, directory: Path) -> None:
    usage = shutil.disk_usage(directory)
    assert os.stat(disk["mount"]).st_dev == os.stat(directory).st_dev
    assert abs(disk["total_bytes"] - usage.total) <= 1 << 20
    # other processes write meanwhile
    assert abs(disk["available_bytes"] - usage.free) <= 256 << 20


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_real_probe_on_this_machine(shell, tmp_path):
    parsed = run_probe(str(tmp_path / "not" / "yet"), SHELLS[shell])
    assert parsed["arch"] == platform.machine()
    assert parsed["kernel"] == {"system": platform.system(), "release": platform.release()}
    assert parsed["hostname"] == platform.node()
    assert parsed["python"]["version"] == local_python_version()
    assert parsed["python"]["path"] == shutil.which("python3")
    assert parsed["disk"]["path"] == str(tmp_path)
    assert parsed["disk"]["workdir_exists"] is False
    assert_same_disk(parsed["disk"], tmp_path)
    assert parsed["cpu"]["logical_cores"] >= 1
    assert parsed["cpu"]["online_cores"] == len(os.sched_getaffinity(0))
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    assert parsed["memory"]["total_bytes"] == total_kib * 1024
    assert parsed["tools"]["df"] == shutil.which("df")
    assert parsed["termux"] == NOT_TERMUX


def test_real_probe_existing_workdir_and_tilde(tmp_path):
    (tmp_path / "work").mkdir()
    env = {**os.environ, "HOME": str(tmp_path)}
    parsed = run_probe("~/work", env=env)
    assert parsed["disk"]["path"] == str(tmp_path / "work")
    assert parsed["disk"]["workdir_exists"] is True
    assert run_probe("~", env=env)["disk"]["path"] == str(tmp_path)


HOSTILE = "we ird; $(touch {canary}) `touch {canary}` 'q\" \n$HOME ${{IFS}}*;rm -rf x"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_hostile_workdir_is_never_executed(shell, tmp_path):
    canary = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    workdir = tmp_path / HOSTILE.format(canary=canary) / "sub"
    for where in (str(workdir), "~/" + HOSTILE.format(canary=canary)):
        parsed = run_probe(where, SHELLS[shell], env={**os.environ, "HOME": str(tmp_path)})
        assert not canary.exists()
        assert parsed["disk"]["path"] == str(tmp_path)
        assert parsed["disk"]["workdir_exists"] is False
        assert_same_disk(parsed["disk"], tmp_path)
    assert sorted(os.listdir(tmp_path)) == []


def test_hostile_workdir_that_exists(tmp_path):
    canary = tmp_path / "canary"
    weird = tmp_path / HOSTILE.format(canary=canary)  # the canary's slashes make it a few nested directories
    weird.mkdir(parents=True)
    parsed = run_probe(str(weird) + "/")
    assert not canary.exists()
    assert parsed["disk"]["path"] == str(weird)


def test_probe_command_for_ssh_exec(tmp_path):
    # what an SSH server does with an exec request: the login shell runs the string
    command = fact_command(str(tmp_path))
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert parse_fact_output(done.stdout)["disk"]["path"] == str(tmp_path)


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/mksh"])
def test_no_commands_at_all(shell, tmp_path):
    require(os.path.exists(shell), f"{shell} (.ci/run installs mksh)")
    # a PATH with nothing on it: every external command is missing
    parsed = run_probe(str(tmp_path), [shell], env={"PATH": str(tmp_path / "empty")})
    assert list(parsed) == list(FACTS)
    for name in ("arch", "kernel", "hostname", "cpu", "memory", "disk"):
        assert parsed[name] == "unavailable: command not found", name
    for name in ("python", "selinux", "gpu", "throttled", "cpufreq_max_khz"):
        assert parsed[name] is None or is_unavailable(parsed[name]), name
    assert parsed["python"] is None
    assert parsed["tools"] in (NO_TOOLS, "unavailable: command not found")  # mksh has no printf builtin


def _fake_tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_device_tools_through_the_real_shell(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Android's getenforce when SELinux keeps apps out of selinuxfs
    _fake_tool(bin_dir, "getenforce", "echo \"getenforce: Couldn't get enforcing status: Permission denied\" >&2\n"
                                      "exit 1\n")
    _fake_tool(bin_dir, "vcgencmd", 'test "$1" = get_throttled && echo throttled=0xe0005\n')
    _fake_tool(bin_dir, "nvidia-smi", "echo \"NVIDIA-SMI has failed because it couldn't communicate with the "
                                      "NVIDIA driver.\"\nexit 9\n")
    _fake_tool(bin_dir, "python3", "echo 'Python 2 is not what you want' >&2; exit 1\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    parsed = run_probe(str(tmp_path), env=env)
    assert parsed["selinux"] == "unavailable: permission denied"
    throttled = parsed["throttled"]
    assert throttled["under_voltage"] and throttled["throttled"] and not throttled["arm_freq_capped"]
    assert throttled["arm_freq_capped_occurred"] and throttled["throttled_occurred"]
    assert throttled["soft_temp_limit_occurred"] and not throttled["under_voltage_occurred"]
    assert parsed["gpu"]["nvidia"].startswith("unavailable: nvidia-smi exit status 9")
    assert parsed["python"].startswith("unavailable: exit status 1")
    assert parsed["tools"]["vcgencmd"] == str(bin_dir / "vcgencmd")
