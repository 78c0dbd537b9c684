"""What a device's llama.cpp build targets, from its probe facts (recorded ones, and this machine's own):
the CMake flags llama.cpp's ggml-cpu reads, the triple, and which compiler builds it (issue 25)."""

from __future__ import annotations

import platform
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from edgebench.errors import EdgebenchError
from edgebench.facts import FACTS, parse_fact_output
from edgebench.toolchain.cross import compiler_for, cross_toolchain
from edgebench.toolchain.target import BuildTarget, target_from_probe

FIXTURES = Path(__file__).parent / "fixtures" / "fact_script"

# the emulated Arm board's line (/work/shared/reference/arm-board.md: qemu -cpu max)
BOARD_FEATURES = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc "
                  "dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp "
                  "sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm svebf16 "
                  "i8mm bf16 dgh rng bti")
BOARD_ARCH = "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16+sve+i8mm+sve2+bf16"
# a Raspberry Pi 4's Cortex-A72: Armv8.0, no half precision, no dot product
PI4_FEATURES = "fp asimd evtstrm crc32 cpuid"


def cpuinfo(features: str, cores: int = 4, part: str = "0x051") -> str:
    blocks = [f"processor\t: {n}\nBogoMIPS\t: 2000.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
              f"CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {part}\nCPU revision\t: 0\n" for n in range(cores)]
    return f"nproc={cores}\n" + "\n".join(blocks)


def debian_arm(features: str, part: str = "0x051") -> dict:
    """Probe facts of an arm64 Debian 12 device with this cpuinfo Features line, parsed by the real parsers."""
    return {
        "arch": FACTS["arch"].parse("aarch64\n", 0),
        "kernel": FACTS["kernel"].parse("Linux 6.1.0-28-arm64\n", 0),
        "os": FACTS["os"].parse('source=os-release\nID=debian\nVERSION_ID="12"\n', 0),
        "termux": FACTS["termux"].parse("prefix=\nversion=\nhome=/root\n", 0),
        "libc": FACTS["libc"].parse("glibc 2.36\n", 0),
        "cpu": FACTS["cpu"].parse(cpuinfo(features, part=part), 0),
    }


def recorded(device: str) -> dict:
    return parse_fact_output((FIXTURES / f"{device}.txt").read_text())


def test_the_arm_boards_features_become_its_march():
    target = target_from_probe(debian_arm(BOARD_FEATURES))
    assert target == BuildTarget("aarch64", "linux", "glibc", "2.36",
                                 ("asimd", "asimddp", "asimdhp", "bf16", "fphp", "i8mm", "sve", "sve2"))
    assert target.cmake_flags() == ("-DGGML_NATIVE=OFF", BOARD_ARCH)
    assert target.triple == "aarch64-linux-gnu"
    assert target.describe() == "aarch64 Linux (glibc 2.36), armv8.2-a+dotprod+fp16+sve+i8mm+sve2+bf16"


def test_a_pi5_gets_dotprod_and_fp16_but_no_i8mm():
    target = target_from_probe(recorded("rpi5"))  # Cortex-A76, recorded on the device
    assert target.cmake_flags() == ("-DGGML_NATIVE=OFF", "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16")
    assert (target.triple, target.libc, target.libc_version) == ("aarch64-linux-gnu", "glibc", "2.36")


def test_a_pi4_is_plain_armv8():
    target = target_from_probe(debian_arm(PI4_FEATURES, part="0xd08"))
    assert target.features == ("asimd",)
    assert target.cmake_flags() == ("-DGGML_NATIVE=OFF", "-DGGML_CPU_ARM_ARCH=armv8-a")


def test_half_precision_needs_both_its_scalar_and_vector_halves():
    target = target_from_probe(debian_arm("fp asimd asimdhp asimddp"))
    assert target.arm_arch() == "armv8.2-a+dotprod"


def test_this_machine_builds_for_what_its_cpu_reports():
    facts = {name: FACTS[name].parse(*_run(FACTS[name].command)) for name in ("arch", "kernel", "os", "termux",
                                                                                 "libc", "cpu")}
    target = target_from_probe(facts)
    assert target.libc == "glibc" and target.libc_version == platform.libc_ver()[1]
    assert compiler_for(target).description == "this machine's own compiler"
    if target.arch != "x86_64":  # an Arm controller: its Features line, as the board's tests check
        assert any(flag.startswith("-DGGML_CPU_ARM_ARCH=") for flag in target.cmake_flags())
        return
    flags = set(open("/proc/cpuinfo").read().partition("\nflags")[2].partition("\n")[0].split())
    built = dict(flag[2:].split("=") for flag in target.cmake_flags())
    assert built["GGML_NATIVE"] == "OFF"
    assert built["GGML_AVX2"] == ("ON" if "avx2" in flags else "OFF")
    assert built["GGML_FMA"] == ("ON" if "fma" in flags else "OFF")
    assert built["GGML_AVX512"] == ("ON" if {"avx512f", "avx512bw", "avx512vl"} <= flags else "OFF")
    # AMX faults under hypervisors that advertise it, so never
    assert built["GGML_AMX_TILE"] == built["GGML_AMX_INT8"] == built["GGML_AMX_BF16"] == "OFF"
    assert target.triple == "x86_64-linux-gnu"


@pytest.mark.parametrize("missing,avx512", [((), "ON"), (("avx512dq",), "OFF")])
def test_avx512_needs_all_five_base_extensions(missing, avx512):
    features = {"sse4_2", "avx", "avx2", "bmi2", "fma", "f16c", "avx512f", "avx512cd", "avx512vl", "avx512dq",
                "avx512bw", "avx512_vnni"} - set(missing)
    target = BuildTarget("x86_64", "linux", "glibc", "2.39", tuple(sorted(features)))
    built = dict(flag[2:].split("=") for flag in target.cmake_flags())
    assert built["GGML_AVX512"] == avx512
    assert built["GGML_AVX512_VNNI"] == "ON" and built["GGML_AVX512_BF16"] == "OFF"
    assert built["GGML_AVX_VNNI"] == "OFF"


def test_an_android_phone_is_bionic_and_needs_the_ndk(tmp_path):
    target = target_from_probe(recorded("termux_pixel8"))
    assert (target.os, target.libc, target.libc_version) == ("android", "bionic", "34")
    assert target.triple == "aarch64-linux-android"
    # the recorded Pixel 8 reports every Arm feature the probe asks about, as the board does
    assert target.cmake_flags() == ("-DGGML_NATIVE=OFF", BOARD_ARCH,
                                    "-DANDROID_ABI=arm64-v8a", "-DANDROID_PLATFORM=android-34", "-DGGML_OPENMP=OFF",
                                    "-DGGML_LLAMAFILE=OFF")
    assert target.describe().startswith("aarch64 Android (bionic, API 34), armv8.2-a+dotprod+fp16")
    with pytest.raises(EdgebenchError) as raised:
        compiler_for(target)
    assert str(raised.value) == ("building llama.cpp for Android needs the NDK's compiler: set `toolchain_file:` in "
                                 "the device profile to the Android NDK's build/cmake/android.toolchain.cmake")
    ndk = tmp_path / "android.toolchain.cmake"
    ndk.write_text("set(ANDROID_ABI arm64-v8a)\n")
    chosen = compiler_for(target, ndk)
    assert chosen.toolchain_file == ndk.resolve() and chosen.toolchain_text == ndk.read_text()
    with pytest.raises(EdgebenchError, match=r"^the toolchain file .*/nowhere.cmake \(the device profile's "
                                             r"toolchain_file\) does not exist$"):
        compiler_for(target, tmp_path / "nowhere.cmake")


def test_termux_alone_says_android():
    facts = {**debian_arm(BOARD_FEATURES), "os": "unavailable: permission denied",
             "termux": {"is_termux": True, "prefix": "/data/data/com.termux/files/usr", "version": None}}
    assert target_from_probe(facts).os == "android"


@pytest.mark.parametrize("arch,system", [("riscv64", "Linux"), ("aarch64", "Darwin")])
def test_an_unsupported_device_is_one_sentence_naming_what_is(arch, system):
    facts = {**debian_arm(PI4_FEATURES), "arch": arch, "kernel": {"system": system, "release": "x"}}
    with pytest.raises(EdgebenchError) as raised:
        target_from_probe(facts)
    assert str(raised.value) == (f"edgebench cannot build llama.cpp for a {system} {arch} device: it builds for "
                                 "aarch64, armv7l and x86_64 Linux or Android devices")


def test_an_unread_architecture_is_said_so():
    facts = {**debian_arm(PI4_FEATURES), "arch": "unavailable: command not found"}
    with pytest.raises(EdgebenchError) as raised:
        target_from_probe(facts)
    assert str(raised.value) == ("edgebench cannot build llama.cpp for a device whose architecture its probe did not "
                                 "read (unavailable: command not found): it builds for aarch64, armv7l and x86_64 "
                                 "Linux or Android devices")


def test_a_missing_cross_compiler_names_the_debian_packages(tmp_path):
    target = target_from_probe(debian_arm(BOARD_FEATURES))
    if platform.machine() == "aarch64":  # the board is native there: an x86-64 device is the foreign one
        target = replace(target, arch="x86_64", features=())
    with pytest.raises(EdgebenchError) as raised:
        compiler_for(target, search_path=str(tmp_path))  # a PATH with no compilers on it
    package = target.triple.replace("_", "-")
    assert str(raised.value) == (
        f"no {target.triple} cross compiler is installed here: install it with `apt-get install "
        f"gcc-{package} g++-{package}` or name a CMake toolchain file as `toolchain_file:` in the "
        "device profile")


def test_the_generated_toolchain_file_searches_only_the_sysroot_for_libraries():
    target = target_from_probe(debian_arm(BOARD_FEATURES))
    text = cross_toolchain(target, "/usr/bin/aarch64-linux-gnu-gcc", "/usr/bin/aarch64-linux-gnu-g++")
    assert "set(CMAKE_SYSTEM_NAME Linux)" in text and "set(CMAKE_SYSTEM_PROCESSOR aarch64)" in text
    assert "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)" in text
    assert "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)" in text
    assert "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)" in text


def test_a_probe_without_the_libc_fact_is_taken_for_glibc():
    facts = debian_arm(PI4_FEATURES)
    del facts["libc"]
    assert (target_from_probe(facts).libc, target_from_probe(facts).libc_version) == ("glibc", None)


def _run(command: str) -> tuple[str, int]:
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return done.stdout + done.stderr, done.returncode
