"""The device-side helper programs (the store and the lock) as the device runs them: modes of the
runner zipapp, started with `python3 runner.pyz store|lock ...`. And the layers above the transport
primitives (push protocol, lock, runner install) over the local transport, without an sshd."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from edgebench.config import parse_device
from edgebench.errors import DeviceBusy
from edgebench.toolchain.runner_zipapp import runner_bytes, runner_sha256, write_runner
from edgebench.transport.device_lock import DeviceLock
from edgebench.transport.local import LocalTransport
from edgebench.transport.remote_store import install_runner, push_model

REPO = Path(__file__).resolve().parent.parent
HELPERS = ("device_store.py", "lock_holder.py", "entry.py", "engine_unpack.py", "engine_build.py", "elf_needs.py")
HOSTILE = "we ird;$(touch PWNED)`touch PWNED2`'\"\nname"


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return write_runner(tmp_path_factory.mktemp("runner"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store(runner, *args, data: bytes = b"") -> tuple[int, dict | None, str]:
    proc = subprocess.run([sys.executable, str(runner), "store", *map(str, args)], input=data, capture_output=True,
                          timeout=60)
    out = proc.stdout.decode().strip()
    return proc.returncode, json.loads(out) if out else None, proc.stderr.decode()


def receive(runner, directory: Path, name: str, offset: int, content: bytes, sent: bytes, budget=None):
    record = json.dumps({"sha256": sha256(content), "size": len(content), "file": name})
    return store(runner, "receive", directory, name, offset, sha256(content), record,
                 *([budget] if budget is not None else []), data=sent)


# -- what ships, and how it is written ----------------------------------------------------------------

def test_the_helpers_ship_inside_the_runner_zipapp(runner):
    names = zipfile.ZipFile(runner).namelist()
    assert {f"ebrunner/{name}" for name in HELPERS} <= set(names)


def test_no_device_program_hides_in_a_string_in_the_transport():
    """Python meant for the device lives in runner/ as files; the transport keeps only one-line
    shell commands of its own primitives."""
    for path in (REPO / "edgebench" / "transport").glob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(n)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert "import " not in node.value and "sys.argv" not in node.value, (path.name, node.value[:80])
                assert node.value.count("\n") < 3, (path.name, node.value[:80])


def test_transports_implement_only_the_primitives():
    from edgebench.transport.base import Transport
    from edgebench.transport.ssh import SshTransport
    primitives = {"workdir_path", "start", "read_file", "put_bytes", "pipe_file", "run_shell", "close", "cancelled"}
    assert set(Transport.__abstractmethods__) | {"close", "cancelled"} == primitives
    for transport in (LocalTransport, SshTransport):
        public = {name for name in vars(transport) if not name.startswith("_") and callable(getattr(transport, name))}
        assert public <= primitives, (transport.__name__, public - primitives)


# -- the store ----------------------------------------------------------------------------------------

def test_survey_of_an_empty_place_makes_it_and_reports_room(runner, tmp_path):
    directory = tmp_path / "models" / "abc"
    code, report, _ = store(runner, "survey", directory, "m.gguf")
    assert code == 0 and directory.is_dir()
    assert report["manifest"] is None and report["partial"] is None
    statvfs = os.statvfs(tmp_path)
    assert abs(report["free"] - statvfs.f_bavail * statvfs.f_frsize) < 64 << 20


def test_receive_verifies_places_and_records_then_survey_finds_it(runner, tmp_path):
    content = os.urandom(300_000)
    directory = tmp_path / "models" / sha256(content)
    store(runner, "survey", directory, "m.gguf")
    code, report, _ = receive(runner, directory, "m.gguf", 0, content, content)
    assert code == 0 and report == {"sha256": sha256(content), "evicted": []}
    assert (directory / "m.gguf").read_bytes() == content and not (directory / ".partial").exists()
    os.utime(directory / "manifest.json", (1, 1))
    code, report, _ = store(runner, "survey", directory, "m.gguf")
    assert report["manifest"]["sha256"] == sha256(content) and report["size"] == len(content)
    assert (directory / "manifest.json").stat().st_mtime > time.time() - 60  # used now: last in line for eviction


def test_a_cut_upload_resumes_and_a_wrong_prefix_is_told(runner, tmp_path):
    content = os.urandom(200_000)
    directory = tmp_path / "m"
    directory.mkdir()
    code, report, _ = receive(runner, directory, "m.gguf", 0, content, content[:70_000])
    assert code == 0 and report["sha256"] != sha256(content) and not (directory / "m.gguf").exists()
    assert (directory / ".partial").stat().st_size == 70_000
    assert store(runner, "survey", directory, "m.gguf")[1]["partial"] == 70_000
    code, report, _ = receive(runner, directory, "m.gguf", 70_000, content, content[70_000:])
    assert report["sha256"] == sha256(content) and (directory / "m.gguf").read_bytes() == content
    (directory / ".partial").write_bytes(b"x" * 1000)  # not the start of this file
    code, report, _ = receive(runner, directory, "other", 1000, content, content[1000:])
    assert report["sha256"] != sha256(content) and not (directory / "other").exists()
    assert store(runner, "discard", directory)[0] == 0 and not (directory / ".partial").exists()


def test_receive_evicts_the_least_recently_used_beyond_the_budget(runner, tmp_path):
    root = tmp_path / "models"
    contents = [os.urandom(100_000) for _ in range(3)]
    for content in contents:
        (root / sha256(content)).mkdir(parents=True)
    for age, content in zip((300, 200), contents[:2]):
        receive(runner, root / sha256(content), f"m{age}", 0, content, content)
        os.utime(root / sha256(content) / "manifest.json", (time.time() - age,) * 2)
    code, report, _ = receive(runner, root / sha256(contents[2]), "new", 0, contents[2], contents[2], budget=250_000)
    assert code == 0 and report["evicted"] == [{"sha256": sha256(contents[0]), "file": "m300", "size": 100_000}]
    assert sorted(p.name for p in root.iterdir()) == sorted(sha256(c) for c in contents[1:])


def test_eviction_drops_the_bundles_that_would_keep_its_bytes(runner, tmp_path):
    root = tmp_path / "models"
    old, kept, new = (os.urandom(100_000) for _ in range(3))
    for age, content in ((300, old), (200, kept)):
        (root / sha256(content)).mkdir(parents=True)
        receive(runner, root / sha256(content), f"m{age}", 0, content, content)
        os.utime(root / sha256(content) / "manifest.json", (time.time() - age,) * 2)
    bundles = tmp_path / "bundles"
    store(runner, "link", bundles / "old", "model.onnx", root / sha256(kept) / "m200",
          "model.onnx.data", root / sha256(old) / "m300")
    store(runner, "link", bundles / "kept", "model.onnx", root / sha256(kept) / "m200")
    (root / sha256(new)).mkdir()
    code, report, _ = receive(runner, root / sha256(new), "new", 0, new, new, budget=250_000)
    assert code == 0 and [e["file"] for e in report["evicted"]] == ["m300"]
    # the bundle linking the evicted file would have kept its 100 kB on disk; the other one stays whole
    assert sorted(p.name for p in bundles.iterdir()) == ["kept"]
    assert (bundles / "kept" / "model.onnx").stat().st_nlink == 2


def test_link_places_files_side_by_side_and_heals_a_replaced_one(runner, tmp_path):
    model, data = tmp_path / "model.onnx", tmp_path / "model.onnx.data"
    model.write_bytes(b"model")
    data.write_bytes(b"weights")
    bundle = tmp_path / "bundles" / "b"
    assert store(runner, "link", bundle, "model.onnx", model, "model.onnx.data", data)[0] == 0
    assert (bundle / "model.onnx.data").stat().st_ino == data.stat().st_ino  # a hard link, not a copy
    (bundle / "model.onnx.data").unlink()
    (bundle / "model.onnx.data").write_bytes(b"stale")
    store(runner, "link", bundle, "model.onnx", model, "model.onnx.data", data)
    assert (bundle / "model.onnx.data").read_bytes() == b"weights"


def test_hostile_names_are_data(runner, tmp_path):
    content = b"hostile"
    directory = tmp_path / f"dir {HOSTILE}"
    store(runner, "survey", directory, HOSTILE)
    code, report, _ = receive(runner, directory, HOSTILE, 0, content, content)
    assert code == 0 and (directory / HOSTILE).read_bytes() == content
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))


def test_bad_arguments_are_one_line_and_exit_2(runner, tmp_path):
    code, report, err = store(runner, "receive", tmp_path, "m", "not-a-number", "0" * 64, "{}")
    assert code == 2 and report is None and len(err.strip().splitlines()) == 1
    code, _, err = store(runner, "frobnicate")
    assert code == 2 and err.startswith("edgebench: usage: store")


def test_a_directory_that_cannot_be_made_is_exit_3(runner, tmp_path):
    (tmp_path / "file").write_text("")
    code, _, err = store(runner, "survey", tmp_path / "file" / "sub", "m")
    assert code == 3 and "cannot create" in err


# -- the lock -----------------------------------------------------------------------------------------

def holder(runner, path: Path, owner: dict, wait: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(runner), "lock", str(path), json.dumps(owner),
                             "wait" if wait else "nowait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_the_lock_is_held_while_stdin_is_open_and_names_its_holder(runner, tmp_path):
    path = tmp_path / "work" / "lock"
    first = holder(runner, path, {"pid": 1}, wait=True)
    assert first.stdout.readline() == "locked\n"
    busy = holder(runner, path, {"pid": 2}, wait=False)
    assert busy.stdout.readline() == 'busy {"pid": 1}\n' and busy.wait(timeout=30) == 75
    patient = holder(runner, path, {"pid": 3}, wait=True)
    assert patient.stdout.readline() == 'busy {"pid": 1}\n'
    first.stdin.close()  # the controller's end goes: the lock with it
    assert first.wait(timeout=30) == 0
    assert patient.stdout.readline() == "locked\n"
    patient.stdin.close()
    assert patient.wait(timeout=30) == 0


# -- the layers above the primitives, over the local transport ----------------------------------------

class CopyingLocal(LocalTransport):
    """The local machine as a device that does not share the controller's files, so models go
    through the push protocol, as they do over SSH."""

    reads_controller_files = False


def local_device(tmp_path, extra=""):
    return parse_device(f"name: box\nworkdir: {tmp_path / 'work'}\n{extra}")


def test_the_runner_bootstrap_needs_no_runner_and_repairs_a_bad_copy(tmp_path):
    transport = LocalTransport(local_device(tmp_path))
    path = Path(install_runner(transport))
    assert path == tmp_path / "work" / "runner" / runner_sha256() / "runner.pyz"
    assert path.read_bytes() == runner_bytes()
    path.write_bytes(b"truncated")
    assert install_runner(transport) == str(path) and path.read_bytes() == runner_bytes()
    before = path.stat().st_mtime_ns
    install_runner(transport)
    assert path.stat().st_mtime_ns == before  # the right bytes are there: nothing written


def test_the_push_protocol_over_another_transport(tmp_path):
    transport = CopyingLocal(local_device(tmp_path, "max_cache_gb: 0.0003\n"))  # ~315 KiB: two of three fit
    models = []
    for i in range(3):
        models.append(tmp_path / f"m{i}.gguf")
        models[-1].write_bytes(os.urandom(150_000))
    digest = [sha256(m.read_bytes()) for m in models]
    first = push_model(transport, str(models[0]), digest[0])
    assert first.path == str(tmp_path / "work" / "models" / digest[0] / "m0.gguf") and not first.skipped
    assert Path(first.path).read_bytes() == models[0].read_bytes()
    assert push_model(transport, str(models[0]), digest[0]).skipped
    push_model(transport, str(models[1]), digest[1])
    os.utime(Path(first.path).parent / "manifest.json", (1, 1))  # m0 unused for long
    third = push_model(transport, str(models[2]), digest[2])
    assert [e.file for e in third.evicted] == ["m0.gguf"]


def test_the_device_lock_over_the_local_transport(tmp_path):
    device = local_device(tmp_path)
    one, two = LocalTransport(device), LocalTransport(device)
    with DeviceLock(one, install_runner(one), run_id="first") as lock:
        lock.acquire()
        with pytest.raises(DeviceBusy, match=r"box is in use by controller .* \(run first, since"):
            DeviceLock(two, install_runner(two), run_id="second").acquire(wait=False)
    with DeviceLock(two, install_runner(two), run_id="second") as lock:
        lock.acquire(wait=False)
