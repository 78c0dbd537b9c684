"""What a llama.cpp build for a device must target: CPU architecture, OS, C library and SIMD features,
read from the device's probe facts, and the CMake flags that say it to llama.cpp's ggml-cpu.

The flags follow ggml/src/ggml-cpu/CMakeLists.txt: a build off the device never uses GGML_NATIVE (that
would describe the controller's CPU); on Arm, GGML_CPU_ARM_ARCH becomes `-march=` verbatim; on x86-64
each GGML_* instruction-set switch is set explicitly, because their defaults differ between a native
and a cross build (ggml/CMakeLists.txt turns them all off when CMAKE_CROSSCOMPILING).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgebench.errors import EdgebenchError

# what `uname -m` may say, and the name edgebench builds under
ARCH_NAMES = {"aarch64": "aarch64", "arm64": "aarch64", "armv7l": "armv7l", "armv8l": "armv7l",
              "x86_64": "x86_64", "amd64": "x86_64"}
SUPPORTED = "aarch64, armv7l and x86_64 Linux or Android devices"

# cpuinfo's name -> GCC's `-march=...+ext` name, in the order llama.cpp's own CPU variants add them;
# these are the extensions ggml-cpu's Arm kernels test for (__ARM_FEATURE_*), plus bf16.
# fphp (scalar) and asimdhp (vector) half precision together make GCC's +fp16.
ARM_EXTENSIONS = (("asimddp", "dotprod"), ("asimdhp", "fp16"), ("sve", "sve"), ("i8mm", "i8mm"),
                  ("sve2", "sve2"), ("bf16", "bf16"))

# cpuinfo's name -> ggml's switch; GGML_AVX512 needs all five of its base extensions (it passes -mavx512f,
# -mavx512cd, -mavx512vl, -mavx512dq and -mavx512bw)
X86_SWITCHES = (("sse4_2", "GGML_SSE42"), ("avx", "GGML_AVX"), ("avx2", "GGML_AVX2"), ("bmi2", "GGML_BMI2"),
                ("fma", "GGML_FMA"), ("f16c", "GGML_F16C"), ("avx_vnni", "GGML_AVX_VNNI"),
                ("avx512vbmi", "GGML_AVX512_VBMI"), ("avx512_vnni", "GGML_AVX512_VNNI"),
                ("avx512_bf16", "GGML_AVX512_BF16"))
AVX512_BASE = ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")
# AMX faults under some hypervisors that advertise it (see llama_cpp_wheel.py); never worth the risk
AMX_OFF = ("-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF")


@dataclass(frozen=True)
class BuildTarget:
    """`arch` as edgebench names it (aarch64, armv7l, x86_64); `os` linux or android; `libc` glibc, musl or
    bionic with its version where known (bionic's is the Android API level); `features` the cpuinfo names
    of the SIMD features every core has, sorted."""

    arch: str
    os: str
    libc: str
    libc_version: str | None
    features: tuple[str, ...]

    @property
    def triple(self) -> str:
        """The GNU target triple, as cross compilers and the NDK name themselves."""
        if self.os == "android":
            return {"aarch64": "aarch64-linux-android", "armv7l": "armv7a-linux-androideabi",
                    "x86_64": "x86_64-linux-android"}[self.arch]
        cpu = {"aarch64": "aarch64", "armv7l": "arm", "x86_64": "x86_64"}[self.arch]
        abi = {"glibc": "gnu", "musl": "musl"}[self.libc]
        return f"{cpu}-linux-{abi}eabihf" if self.arch == "armv7l" else f"{cpu}-linux-{abi}"

    def arm_arch(self) -> str:
        """GGML_CPU_ARM_ARCH: the base architecture and exactly the extensions the device reports."""
        if self.arch == "armv7l":
            # a 32-bit kernel names its features differently (neon, vfpv4), which the probe does not read,
            # so the build keeps to what every armhf device runs: the compiler's default FPU
            return "armv7-a"
        has = set(self.features)
        extensions = [name for feature, name in ARM_EXTENSIONS if feature in has and
                      (feature != "asimdhp" or "fphp" in has)]
        # every extension here needs Armv8.2-A; naming the base 8.2 and each extension, rather than 8.6-a,
        # turns on nothing the device did not report (8.6-a would imply bf16 and i8mm)
        return "armv8.2-a" + "".join(f"+{name}" for name in extensions) if extensions else "armv8-a"

    def cmake_flags(self) -> tuple[str, ...]:
        return (*self._cpu_flags(), *self._android_flags())

    def _cpu_flags(self) -> tuple[str, ...]:
        if self.arch in ("aarch64", "armv7l"):
            return ("-DGGML_NATIVE=OFF", f"-DGGML_CPU_ARM_ARCH={self.arm_arch()}")
        has = set(self.features)
        switches = [f"-D{switch}={'ON' if feature in has else 'OFF'}" for feature, switch in X86_SWITCHES]
        avx512 = "ON" if has.issuperset(AVX512_BASE) else "OFF"
        return ("-DGGML_NATIVE=OFF", *switches, f"-DGGML_AVX512={avx512}", *AMX_OFF)

    def _android_flags(self) -> tuple[str, ...]:
        """What llama.cpp's docs/android.md sets for an NDK build: the ABI (the NDK's default is 32-bit
        armeabi-v7a), the API level (the device's own; 28 where unknown, as the docs use), and neither
        OpenMP (the NDK's runtime is not installed with the build) nor llamafile (it does not support Android)."""
        if self.os != "android":
            return ()
        abi = {"aarch64": "arm64-v8a", "armv7l": "armeabi-v7a", "x86_64": "x86_64"}[self.arch]
        return (f"-DANDROID_ABI={abi}", f"-DANDROID_PLATFORM=android-{self.libc_version or 28}",
                "-DGGML_OPENMP=OFF", "-DGGML_LLAMAFILE=OFF")

    def describe(self) -> str:
        """e.g. "aarch64 Linux (glibc 2.36), armv8.2-a+dotprod+fp16"."""
        system = "Android" if self.os == "android" else "Linux"
        libc = f"{self.libc} {self.libc_version}" if self.libc_version else self.libc
        if self.libc == "bionic" and self.libc_version:
            libc = f"bionic, API {self.libc_version}"
        if self.arch == "x86_64":
            simd = "+".join(f for f, _ in X86_SWITCHES if f in self.features) or "baseline x86-64"
        else:
            simd = self.arm_arch()
        return f"{self.arch} {system} ({libc}), {simd}"


def target_from_probe(facts: dict[str, Any]) -> BuildTarget:
    """The build target of a probed device (`devices check`'s facts: arch, kernel, os, termux, libc, cpu)."""
    raw_arch = facts.get("arch")
    # a fact the probe could not read is "unavailable: why" (facts/base.py), never an architecture
    if not isinstance(raw_arch, str) or raw_arch.startswith("unavailable:"):
        raise EdgebenchError(f"edgebench cannot build llama.cpp for a device whose architecture its probe did not "
                             f"read ({raw_arch}): it builds for {SUPPORTED}")
    arch = ARCH_NAMES.get(raw_arch.lower())
    kernel = facts.get("kernel") if isinstance(facts.get("kernel"), dict) else {}
    system = kernel.get("system") or "Linux"
    if arch is None or system != "Linux":
        said = " ".join(str(part) for part in (system, raw_arch) if part)
        raise EdgebenchError(f"edgebench cannot build llama.cpp for a {said} device: it builds for {SUPPORTED}")
    os_id = (facts.get("os") or {}).get("id") if isinstance(facts.get("os"), dict) else None
    termux = facts.get("termux") if isinstance(facts.get("termux"), dict) else {}
    android = os_id == "android" or bool(termux.get("is_termux"))
    libc, version = _libc(facts.get("libc"), android)
    cpu = facts.get("cpu") if isinstance(facts.get("cpu"), dict) else {}
    features = cpu.get("features") if isinstance(cpu.get("features"), dict) else {}
    return BuildTarget(arch=arch, os="android" if android else "linux", libc=libc, libc_version=version,
                       features=tuple(sorted(name for name, present in features.items() if present)))


def _libc(fact: Any, android: bool) -> tuple[str, str | None]:
    if android:
        # bionic whatever the probe said: Android has no other C library for native binaries
        version = fact.get("version") if isinstance(fact, dict) and fact.get("name") == "bionic" else None
        return "bionic", version
    if isinstance(fact, dict) and fact.get("name") in ("glibc", "musl"):
        return fact["name"], fact.get("version")
    # a probe from before the libc fact (or one that could not read it): Linux devices are glibc
    # far more often than not, and the manifest's glibc_needed lets the push step check it anyway
    return "glibc", None
