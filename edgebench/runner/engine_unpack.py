"""The device side of `edgebench install-engine -d`: unpack a pushed engine archive and switch to it.

    python3 runner.pyz engine install ARCHIVE WORKDIR KEY [LINK]
    python3 runner.pyz engine install-built FOLDER WORKDIR KEY FIELDS_JSON [BINDINGS_ARCHIVE]
    python3 runner.pyz engine build ...                   # --on-device: build it here (engine_build.py)

install-built takes a build made on the device (engine_build.py's cache folder) instead of an archive:
it is copied, the pushed Python bindings added, FIELDS_JSON merged into its build.json, and it is then
checked and switched to like an archive.

The archive (pushed through the model store: content-addressed, verified, resumable) holds bin/,
maybe python/, and build.json. It is unpacked into <workdir>/engines/.KEY.partial, its llama-bench is
started once (`--help`) so that a library the device lacks or a C library too old for the build is
found now and not in the first cell, and only then is it renamed to engines/KEY and the link
<workdir>/engine switched to it (or LINK, a path under the workdir: engines/commit-<hash> for the build
of one commit, which leaves <workdir>/engine as it was). A failure leaves the previous engine in place and
nothing half-made.

Prints one JSON line: {"path": ..., "build": {...}} or, on failure, one line on stderr and exit 1
(5 when the build cannot start here: the JSON line then says why, under "cannot_run").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile

EXIT_FAILED, EXIT_USAGE, EXIT_CANNOT_RUN = 1, 2, 5
LINK = "engine"
ENGINES = "engines"


class UnpackFailure(Exception):
    def __init__(self, message, code=EXIT_FAILED):
        Exception.__init__(self, message)
        self.code = code


def _safe_members(archive):
    """Our own archive, but a truncated or foreign file must not write outside the destination."""
    for member in archive.getmembers():
        parts = member.name.split("/")
        # a link may only name a file beside it (libllama.so -> libllama.so.0)
        local_link = member.issym() and "/" not in member.linkname and member.linkname not in ("", ".", "..")
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir() or local_link):
            raise UnpackFailure("the engine archive holds an unexpected entry %r" % member.name)
        yield member


def extract(archive_path, destination):
    try:
        with tarfile.open(archive_path) as archive:
            for member in _safe_members(archive):
                archive.extract(member, destination)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UnpackFailure("cannot unpack the engine archive %s: %s" % (archive_path, exc))


def starts(folder):
    """None when the build's llama-bench starts here, else what the loader or the CPU said."""
    binary = os.path.join(folder, "bin", "llama-bench")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}  # the build's own RPATH decides
    try:
        done = subprocess.run([binary, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, env=env, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "cannot start llama-bench: %s" % exc
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    reason = lines[-1] if lines else "no output"
    return ("exit %d: %s" % (done.returncode, reason)) if done.returncode > 0 else \
        ("signal %d: %s" % (-done.returncode, reason))


def point(link, target):
    """Switch `link` to `target` in one rename: a runner starting meanwhile sees the old engine or the new."""
    temporary = link + ".new"
    if os.path.lexists(temporary):
        os.remove(temporary)
    os.symlink(target, temporary)
    os.replace(temporary, link)


def install(archive_path, workdir, key, link=LINK):
    return _install(workdir, key, lambda partial: extract(archive_path, partial), link)


def install_built(folder, workdir, key, fields, bindings_archive=None):
    def stage(partial):
        # linked where the cache and the workdir share a file system: a small board keeps one copy
        shutil.copytree(folder, partial, symlinks=True, copy_function=_link_or_copy)
        if bindings_archive:
            extract(bindings_archive, partial)
        manifest_path = os.path.join(partial, "build.json")
        with open(manifest_path) as f:
            manifest = json.load(f)
        manifest.update(fields)
        os.remove(manifest_path)  # a link to the cache's: written anew, never through it
        with open(manifest_path, "w") as f:
            f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return _install(workdir, key, stage)


def _link_or_copy(source, destination):
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _install(workdir, key, stage, link=LINK):
    """`stage(partial)` fills the partial folder; it is checked, renamed into place and switched to."""
    engines = os.path.join(workdir, ENGINES)
    final = os.path.join(engines, key)
    partial = os.path.join(engines, "." + key + ".partial")
    os.makedirs(engines, exist_ok=True)
    if not os.path.isfile(os.path.join(final, "build.json")):
        shutil.rmtree(partial, ignore_errors=True)
        stage(partial)
        for name in os.listdir(os.path.join(partial, "bin")):
            if not os.path.islink(os.path.join(partial, "bin", name)):
                os.chmod(os.path.join(partial, "bin", name), 0o755)
        problem = starts(partial)
        if problem:
            shutil.rmtree(partial, ignore_errors=True)
            return {"cannot_run": problem}, EXIT_CANNOT_RUN
        shutil.rmtree(final, ignore_errors=True)
        os.rename(partial, final)
    link_path = os.path.join(workdir, link)
    if link != LINK and (not link.startswith(ENGINES + "/") or ".." in link.split("/")):
        raise UnpackFailure("the engine link %r is not under the workdir's engines/" % link, EXIT_USAGE)
    point(link_path, os.path.relpath(final, os.path.dirname(link_path)))
    with open(os.path.join(final, "build.json")) as f:
        return {"path": final, "build": json.load(f)}, 0


def main(argv):
    if argv[:1] == ["build"]:
        from .engine_build import main as build
        return build(argv[1:])
    built = argv[:1] == ["install-built"] and len(argv) in (5, 6)
    if not built and (len(argv) not in (4, 5) or argv[0] != "install"):
        sys.stderr.write("edgebench: usage: engine install ARCHIVE WORKDIR KEY [LINK] | install-built FOLDER "
                         "WORKDIR KEY FIELDS_JSON [BINDINGS_ARCHIVE] | build ...\n")
        return EXIT_USAGE
    try:
        if built:
            report, code = install_built(argv[1], argv[2], argv[3], json.loads(argv[4]), *argv[5:])
        else:
            report, code = install(*argv[1:])
    except UnpackFailure as failure:
        sys.stderr.write("edgebench: %s\n" % failure)
        return failure.code
    except OSError as exc:
        sys.stderr.write("edgebench: cannot install the engine: %s\n" % exc)
        return EXIT_FAILED
    sys.stdout.write(json.dumps(report) + "\n")
    return code
