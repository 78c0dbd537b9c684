"""The device side of `edgebench install-engine -d DEVICE --on-device`: build llama.cpp here, with this
device's own cmake and compiler, into a cache that outlives any workdir.

    python3 runner.pyz engine build SOURCE_ARCHIVE KEY SPEC_JSON

    <cache>/<key>/                 a finished build: bin/ (the tools and the libraries they need), build.json
    <cache>/.work-<key>/           a build in progress (src/, build/); an interrupted build (a dropped
                                   connection, Ctrl-C) leaves it, and the next call goes on from there
    <cache>/logs/<key>.log         the build's log
    <cache> is $XDG_CACHE_HOME/edgebench-device/engine-builds, else ~/.cache/edgebench-device/engine-builds

SOURCE_ARCHIVE `-` only looks in the cache ({"absent": true} when the build is not there).
SPEC_JSON (from the controller): {"flags": [...], "commit": ..., "number": ..., "manifest": {...}}, the
CMake flags (the cross build's, from the device's probe), what git says of the source there, and the
build.json fields the controller knows. Prints JSON lines: {"pid"}, {"stage"}, {"progress": [done, total]},
then {"built": FOLDER, "cached": bool, "manifest": {...}}; or {"missing": [...]} (exit 6), or {"failed":
STAGE, "log": PATH} (exit 7). Its stdin is the controller's channel: when that closes, the build stops.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

from .elf_needs import newest, read_needs
from .engine_unpack import UnpackFailure, extract

EXIT_USAGE, EXIT_MISSING, EXIT_FAILED = 2, 6, 7
TOOLS = ("llama-bench", "llama-perplexity", "llama-fit-params")
# what every device of the OS has, so a build need not carry it (libgomp is not among them: the emulated
# Arm board had no OpenMP runtime)
BASE_SYSTEM = {
    "linux": re.compile(r"(libc\.so(\.6)?|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|"
                        r"ld-linux[\w.-]*\.so\.\d|ld-musl-\w+\.so\.1|libstdc\+\+\.so\.6|libgcc_s\.so\.1)"),
    "android": re.compile(r"(libc|libm|libdl|liblog|libc\+\+_shared)\.so"),
}
# a compiler job of ggml's CPU kernels takes most of this; a 2 GiB board building with -j4 would swap or
# meet its OOM killer
MEMORY_PER_JOB = 768 << 20
_NINJA = re.compile(r"^\[(\d+)/(\d+)\]")
_MAKE = re.compile(r"^\[\s*(\d+)%\]")


class BuildFailure(Exception):
    def __init__(self, report, code):
        Exception.__init__(self, json.dumps(report))
        self.report, self.code = report, code


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "edgebench-device", "engine-builds")


def _say(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def missing_tools(env):
    """What the build needs that this device lacks, in words."""
    def has(*names):
        return any(shutil.which(name, path=env.get("PATH")) for name in names if name)
    lacking = []
    if not has("cmake"):
        lacking.append("cmake")
    if not has(env.get("CXX"), "c++", "g++", "clang++"):
        lacking.append("C++ compiler")
    elif not has(env.get("CC"), "cc", "gcc", "clang"):
        lacking.append("C compiler")
    if not has("ninja", "make"):
        lacking.append("make or ninja")
    return lacking


def _fake_git(path, commit, number):
    """llama.cpp's CMake asks git for the commit and the commit count (cmake/build-info.cmake). The source
    came without its .git, and a repository around the cache on the device is not its history, so CMake
    asks this instead: it answers with what git said of the source on the controller, and nothing else."""
    answers = {"--version": "git version 2.0.0 (edgebench)", "rev-parse --short HEAD": commit,
               "rev-list --count HEAD": None if number is None else str(number)}
    with open(path, "w") as f:
        f.write("#!%s\nimport sys\nanswer = %r.get(' '.join(sys.argv[1:]))\n"
                "print(answer) if answer else sys.exit(1)\n" % (sys.executable, answers))
    os.chmod(path, 0o755)


def jobs():
    cpus = os.cpu_count() or 1
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) << 10 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return cpus
    return max(1, min(cpus, available // MEMORY_PER_JOB))


class Build:
    def __init__(self, archive, key, spec, root=None):
        self.archive, self.key, self.spec = archive, key, spec
        self.root = root or cache_dir()
        self.final = os.path.join(self.root, key)
        self.work = os.path.join(self.root, ".work-" + key)
        self.log_path = os.path.join(self.root, "logs", key + ".log")
        self.child = None
        self.stage = "starting"
        self.stopped = threading.Event()

    def stop(self, *_):
        """The controller is gone or asked to stop: end the compiler jobs; what they finished stays for
        the next call."""
        self.stopped.set()
        child = self.child
        if child is not None and child.poll() is None:
            try:
                os.killpg(child.pid, signal.SIGTERM)
            except OSError:
                pass

    def _run(self, stage, argv, log, env):
        log.write("$ %s\n" % " ".join(argv))
        log.flush()
        self.stage = stage
        _say(stage=stage)
        self.child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=env, start_new_session=True)
        shown, last = None, ""
        for raw in self.child.stdout:
            last = raw.decode("utf-8", "replace").strip() or last
            log.write(raw.decode("utf-8", "replace"))
            log.flush()  # a user may follow the log on the device
            ninja, make = _NINJA.match(raw.decode("ascii", "replace")), _MAKE.match(raw.decode("ascii", "replace"))
            done = (int(ninja.group(1)), int(ninja.group(2))) if ninja else (int(make.group(1)), 100) if make else None
            if done and (shown is None or done[0] * 100 // done[1] != shown[0] * 100 // shown[1]):
                _say(progress=list(done))
                shown = done
        log.flush()
        code = self.child.wait()
        # stopped by this controller, or by a signal from elsewhere (ninja: "interrupted by user"): not a
        # broken source, so what was compiled stays for the next call
        if self.stopped.is_set() or code < 0 or "interrupted" in last:
            raise BuildFailure({"stopped": stage}, EXIT_FAILED)
        if code != 0:
            shutil.rmtree(self.work, ignore_errors=True)  # a broken source: nothing to resume
            raise BuildFailure({"failed": stage, "log": self.log_path}, EXIT_FAILED)

    def run(self):
        if os.path.isfile(os.path.join(self.final, "build.json")):
            return self._report(cached=True)
        env = dict(os.environ, LC_ALL="C")  # an English log, so its error lines read the same everywhere
        lacking = missing_tools(env)
        if lacking:
            raise BuildFailure({"missing": lacking}, EXIT_MISSING)
        if self.archive == "-":  # the controller only asks whether it is built, before it sends the source
            return {"absent": True}
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        lock = open(os.path.join(self.root, self.key + ".lock"), "a")
        if not self._lock(lock):
            raise BuildFailure({"stopped": "waiting"}, EXIT_FAILED)
        if os.path.isfile(os.path.join(self.final, "build.json")):  # another controller built it meanwhile
            return self._report(cached=True)
        started = time.monotonic()
        source, build_dir = os.path.join(self.work, "src"), os.path.join(self.work, "build")
        resumed = os.path.isfile(os.path.join(self.work, "unpacked"))
        with open(self.log_path, "a" if resumed else "w") as log:
            if not resumed:
                self.stage = "unpacking"
                _say(stage="unpacking")
                shutil.rmtree(self.work, ignore_errors=True)
                extract(self.archive, source)
                _fake_git(os.path.join(self.work, "git"), self.spec.get("commit"), self.spec.get("number"))
                open(os.path.join(self.work, "unpacked"), "w").close()
            if not os.path.isfile(os.path.join(self.work, "configured")):
                generator = ["-G", "Ninja"] if shutil.which("ninja", path=env.get("PATH")) else []
                self._run("configuring", ["cmake", "-S", source, "-B", build_dir] + generator +
                          ["-DGIT_EXECUTABLE=" + os.path.join(self.work, "git")] + list(self.spec["flags"]), log, env)
                open(os.path.join(self.work, "configured"), "w").close()
            self._run("compiling", ["cmake", "--build", build_dir, "--target"] + list(TOOLS) +
                      ["-j", str(jobs())], log, env)
        self.stage = "collecting"
        out = os.path.join(self.work, "engine")
        shutil.rmtree(out, ignore_errors=True)
        compiler = c_compiler(build_dir)
        collected = collect(build_dir, os.path.join(out, "bin"), compiler, self.spec["manifest"]["target"]["os"])
        manifest = self._manifest(build_dir, os.path.join(out, "bin"), collected, compiler,
                                  time.monotonic() - started, resumed)
        with open(os.path.join(out, "build.json"), "w") as f:
            f.write(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(self.final, ignore_errors=True)
        os.rename(out, self.final)
        shutil.rmtree(self.work, ignore_errors=True)
        return self._report(cached=False)

    def _lock(self, lock):
        """One build of a key at a time (a second controller waits for the first, then finds its build)."""
        told = False
        while not self.stopped.is_set():
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError:
                if not told:
                    _say(stage="waiting for another build of this engine on the device")
                    told = True
                time.sleep(1)
        return False

    def _manifest(self, build_dir, bin_dir, collected, compiler, seconds, resumed):
        infos = dict((name, read_needs(os.path.join(bin_dir, name))) for name in collected)
        commit, number = build_info(build_dir)
        manifest = dict(self.spec["manifest"])
        manifest.update({
            "build_commit": commit, "build_number": number,
            "compiler": "the device's own compiler", "compiler_version": compiler_version(compiler),
            "toolchain_file": None,
            "machine": sorted(set(info["machine"] for info in infos.values())),
            "glibc_needed": newest([info["versions"].get("GLIBC") for info in infos.values()]),
            "glibcxx_needed": newest([info["versions"].get("GLIBCXX") for info in infos.values()]),
            "files": dict((name, _sha256(os.path.join(bin_dir, name))) for name in sorted(collected)),
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(seconds, 1), "built_on_device": True, "resumed": resumed,
        })
        return manifest

    def _report(self, cached):
        with open(os.path.join(self.final, "build.json")) as f:
            manifest = json.load(f)
        return {"built": self.final, "cached": cached, "manifest": manifest}


def collect(build_dir, out, compiler, target_os):
    """The tools and, following their NEEDED entries, every library the build made or the compiler links
    from its own library path (its OpenMP runtime), copied under the names asked for, each `libX.so.N`
    also as `libX.so` (the name llama-cpp-python loads); what else they need is the base system's."""
    made = {}
    for directory, _, names in os.walk(build_dir):
        for name in names:
            if name.startswith("lib") and ".so" in name and os.path.isfile(os.path.join(directory, name)):
                made.setdefault(name, os.path.join(directory, name))
    base_system = BASE_SYSTEM[target_os]
    os.makedirs(out)
    collected = []
    wanted = [(tool, os.path.join(build_dir, "bin", tool), "the build") for tool in TOOLS]
    while wanted:
        name, origin, needed_by = wanted.pop(0)
        if name in collected:
            continue
        if not os.path.isfile(origin):
            raise UnpackFailure("%s made no %s" % (needed_by, name))
        shutil.copyfile(origin, os.path.join(out, name))  # follows links: one file under the name asked for
        os.chmod(os.path.join(out, name), 0o755)
        collected.append(name)
        for needed in read_needs(os.path.join(out, name))["needed"]:
            if needed in collected or base_system.fullmatch(needed):
                continue
            found = made.get(needed) or runtime_library(compiler, needed)
            if found is None:
                raise UnpackFailure("%s needs %s, which neither the build made nor the compiler links" % (name, needed))
            wanted.append((needed, found, name))
    for name in collected:
        alias = name.split(".so.")[0] + ".so"
        if ".so." in name and not os.path.lexists(os.path.join(out, alias)):
            os.symlink(name, os.path.join(out, alias))
    return collected


def runtime_library(compiler, name):
    if not compiler:
        return None
    try:
        done = subprocess.run([compiler, "-print-file-name=" + name], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True)
    except OSError:
        return None
    found = done.stdout.strip()
    # gcc echoes the bare name back when it has no such file
    return os.path.realpath(found) if done.returncode == 0 and os.path.isabs(found) and os.path.isfile(found) else None


def c_compiler(build_dir):
    """The C compiler CMake found (recorded in CMakeFiles/<version>/CMakeCCompiler.cmake)."""
    files = os.path.join(build_dir, "CMakeFiles")
    for version in sorted(os.listdir(files)) if os.path.isdir(files) else ():
        try:
            with open(os.path.join(files, version, "CMakeCCompiler.cmake")) as f:
                found = re.search(r'^set\(CMAKE_C_COMPILER "([^"]+)"\)', f.read(), re.MULTILINE)
        except OSError:
            continue
        if found:
            return found.group(1)
    return None


def build_info(build_dir):
    """The commit and build number llama.cpp's CMake recorded."""
    try:
        with open(os.path.join(build_dir, "common", "build-info.cpp")) as f:
            text = f.read()
    except OSError:
        return None, None
    number = re.search(r"LLAMA_BUILD_NUMBER = (-?\d+);", text)
    commit = re.search(r'LLAMA_COMMIT = "([^"]*)";', text)
    return (commit.group(1) if commit else None), (int(number.group(1)) if number else None)


def compiler_version(compiler):
    if not compiler:
        return None
    try:
        done = subprocess.run([compiler, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True)
    except OSError:
        return None
    return done.stdout.splitlines()[0].strip() if done.returncode == 0 and done.stdout else None


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _watch_stdin(build):
    """The controller's channel is stdin: its end (a dropped connection, a killed controller) stops the build."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    build.stop()


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("edgebench: usage: engine build SOURCE_ARCHIVE KEY SPEC_JSON\n")
        return EXIT_USAGE
    try:
        if os.getpgrp() != os.getpid():
            os.setsid()  # lead a group: the controller's Ctrl-C stops it with one signal to the group
    except OSError:
        pass
    build = Build(argv[0], argv[1], json.loads(argv[2]))
    # the controller's Ctrl-C stops this process's group: take the compiler jobs (their own session) along
    signal.signal(signal.SIGTERM, lambda *_: (build.stop(), sys.exit(EXIT_FAILED)))
    signal.signal(signal.SIGHUP, lambda *_: (build.stop(), sys.exit(EXIT_FAILED)))
    threading.Thread(target=_watch_stdin, args=(build,), daemon=True).start()
    _say(pid=os.getpid())
    try:
        _say(**build.run())
    except BuildFailure as failure:
        _say(**failure.report)
        return failure.code
    except (UnpackFailure, OSError) as exc:
        _say(failed=build.stage, error=str(exc), log=build.log_path)
        return EXIT_FAILED
    finally:
        build.stop()  # whatever ended this (a closed stdout too), no compiler job outlives it
    return 0
