"""SSH devices against real OpenSSH servers: host-key trust, probe, verified resumable push, remote runs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgebench.config import parse_device
from edgebench.errors import DiskFullError, HostKeyError, RunnerTimeout, TransportError
from edgebench.transport import hostkeys, open_transport
from edgebench.transport.remote_store import install_runner, push_model
from edgebench.transport.runner_session import run_runner
from edgebench.transport.ssh import SshTransport

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("private_known_hosts")


def device_yaml(server, name="box", workdir=None, python=sys.executable, extra="") -> str:
    workdir = json.dumps(str(workdir or server.device_dir))
    return (f"name: {name}\ntransport: ssh\nclass: sbc\nhost: {server.host}\nport: {server.port}\n"
            f"user: {server.user}\nidentity: {server.client_key}\nworkdir: {workdir}\n"
            f"python: {python}\n{extra}")


def device_for(server, **kwargs):
    return parse_device(device_yaml(server, **kwargs), file="test.yaml")


def trust(server):
    from edgebench.transport.trust import presented_key, record_presented
    record_presented(presented_key(device_for(server)), replace=False)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


# -- host keys -------------------------------------------------------------------------------------

def test_an_unknown_host_key_is_refused_with_the_way_to_trust_it(sshd):
    with pytest.raises(HostKeyError, match=r"unknown host key.*edgebench devices trust box"):
        SshTransport(device_for(sshd))


def test_trust_then_connect(sshd):
    trust(sshd)
    with SshTransport(device_for(sshd)) as transport:
        assert transport.run_shell("echo connected")[1] == "connected\n"


def test_a_changed_host_key_is_refused_and_not_silently_replaced(sshd):
    trust(sshd)
    sshd.restart_with_new_host_key()
    with pytest.raises(HostKeyError, match="HOST KEY CHANGED"):
        SshTransport(device_for(sshd))
    from edgebench.transport.trust import presented_key, record_presented
    with pytest.raises(HostKeyError, match="--replace"):
        record_presented(presented_key(device_for(sshd)), replace=False)
    record_presented(presented_key(device_for(sshd)), replace=True)
    with SshTransport(device_for(sshd)) as transport:
        assert transport.run_shell("true")[0] == 0


def test_trust_command_checks_the_fingerprint(sshd, tmp_path):
    device = tmp_path / "box.yaml"
    device.write_text(device_yaml(sshd))
    env = {**os.environ, "EDGEBENCH_KNOWN_HOSTS": str(tmp_path / "edgebench_known_hosts")}
    cli = [sys.executable, "-m", "edgebench", "devices", "trust", str(device)]
    wrong = subprocess.run(cli + ["--fingerprint", "SHA256:" + "A" * 43], capture_output=True, text=True, env=env)
    assert wrong.returncode == 3 and "fingerprint mismatch" in wrong.stderr
    no_tty = subprocess.run(cli, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert no_tty.returncode == 3 and "--fingerprint" in no_tty.stderr
    right = subprocess.run(cli + ["--fingerprint", sshd.host_key_fingerprint], capture_output=True, text=True,
                           env=env)
    assert right.returncode == 0 and sshd.host_key_fingerprint in right.stdout
    assert f"[127.0.0.1]:{sshd.port}" in (tmp_path / "edgebench_known_hosts").read_text()


def _on_a_terminal(cli: list[str], answer: str | None, env: dict, cwd=None) -> tuple[int, str]:
    """Run `cli` with a pseudo-terminal for stdin and stdout (the prompt asks only on a terminal, and
    progress bars show only there); `answer` goes to the trust prompt."""
    import pty
    import select

    primary, secondary = pty.openpty()
    proc = subprocess.Popen(cli, stdin=secondary, stdout=secondary, stderr=secondary, env=env, close_fds=True,
                            cwd=cwd)
    os.close(secondary)
    seen, answered = b"", False
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], 60)
            if not ready:
                raise AssertionError(f"no output from {cli}: {seen!r}")
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if answer is not None and not answered and b"Trust this key?" in seen:
                os.write(primary, answer.encode() + b"\n")
                answered = True
    finally:
        os.close(primary)
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_declining_trust_exits_1_and_records_nothing(sshd, tmp_path):
    device = tmp_path / "box.yaml"
    device.write_text(device_yaml(sshd))
    known_hosts = tmp_path / "edgebench_known_hosts"
    env = {**os.environ, "EDGEBENCH_KNOWN_HOSTS": str(known_hosts)}
    code, out = _on_a_terminal([sys.executable, "-m", "edgebench", "devices", "trust", str(device)], "n", env)
    assert "Trust this key? [y/N]" in out and sshd.host_key_fingerprint in out
    assert code == 1 and "not trusted" in out
    assert not known_hosts.exists() or f":{sshd.port}" not in known_hosts.read_text()
    code, out = _on_a_terminal([sys.executable, "-m", "edgebench", "devices", "trust", str(device)], "y", env)
    assert code == 0 and "trusted: recorded in" in out
    assert f"[127.0.0.1]:{sshd.port}" in known_hosts.read_text()


def test_authentication_without_a_usable_key_is_a_clear_error(sshd, tmp_path):
    trust(sshd)
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    device = parse_device(device_yaml(sshd).replace(str(sshd.client_key), str(stranger)), file="t.yaml")
    with pytest.raises(TransportError, match="authentication failed.*keys only"):
        SshTransport(device)


def test_an_unreachable_device_is_a_transport_error(sshd):
    trust(sshd)
    device = device_for(sshd)
    sshd.stop()
    with pytest.raises(TransportError, match="cannot reach device box"):
        SshTransport(device)


# -- push ------------------------------------------------------------------------------------------

@pytest.fixture(params=["ssh", "paramiko"])
def route(request, monkeypatch):
    """Each push test runs over both clients: OpenSSH's `ssh` (even for small files) and paramiko
    (as when the controller has no `ssh` binary)."""
    from edgebench.transport import ssh_bulk, sshconn
    if request.param == "ssh":
        monkeypatch.setattr(ssh_bulk, "BULK_MIN_BYTES", 0)
    else:
        monkeypatch.setattr(sshconn, "SSH_BINARY", "edgebench-no-such-ssh")
    return request.param


def test_push_verifies_then_skips_an_unchanged_model(sshd, tmp_path, route):
    trust(sshd)
    model = random_file(tmp_path / "m.gguf", 3 << 20)
    with SshTransport(device_for(sshd)) as transport:
        first = push_model(transport, str(model), sha256(model))
        assert not first.skipped and first.sent_bytes == model.stat().st_size
        assert first.path == f"{sshd.device_dir}/models/{sha256(model)}/m.gguf"
        assert sha256(Path(first.path)) == sha256(model)
        manifest = json.loads((Path(first.path).parent / "manifest.json").read_text())
        assert manifest["sha256"] == sha256(model) and manifest["size"] == model.stat().st_size
        assert transport.bulk.last_route == route
        again = push_model(transport, str(model), sha256(model))
        assert again.skipped and again.sent_bytes == 0 and again.path == first.path


def test_a_dropped_push_resumes_and_never_leaves_a_bad_file_under_the_final_name(sshd, tmp_path, route):
    trust(sshd)
    model = random_file(tmp_path / "big.gguf", 256 << 20)
    final = Path(sshd.device_dir) / "models" / sha256(model) / "big.gguf"
    partial = final.parent / ".partial"
    transport = SshTransport(device_for(sshd))

    def cut_when_partial_grows():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if partial.exists() and partial.stat().st_size > (32 << 20):
                sshd.kill_connections()
                return
            time.sleep(0.01)

    cutter = threading.Thread(target=cut_when_partial_grows)
    cutter.start()
    with pytest.raises(TransportError):
        push_model(transport, str(model), sha256(model))
    cutter.join()
    transport.close()
    assert not final.exists()
    kept = partial.stat().st_size
    assert 0 < kept < model.stat().st_size
    with SshTransport(device_for(sshd)) as again:
        result = push_model(again, str(model), sha256(model))
        assert again.bulk.last_route == route
    assert result.resumed_from == kept and result.sent_bytes == model.stat().st_size - kept
    assert sha256(final) == sha256(model) and not partial.exists()


def test_a_corrupt_partial_is_discarded_and_the_upload_restarts(sshd, tmp_path, route):
    trust(sshd)
    model = random_file(tmp_path / "m.gguf", 1 << 20)
    directory = Path(sshd.device_dir) / "models" / sha256(model)
    directory.mkdir(parents=True)
    (directory / ".partial").write_bytes(b"not the start of this model")
    with SshTransport(device_for(sshd)) as transport:
        result = push_model(transport, str(model), sha256(model))
        assert transport.bulk.last_route == route
    assert result.resumed_from == 0 and sha256(directory / "m.gguf") == sha256(model)


def test_not_enough_space_on_the_device_is_refused_before_upload(sshd, tmp_path, small_tmpfs):
    trust(sshd)
    model = random_file(tmp_path / "m.gguf", 4 << 20)
    with SshTransport(device_for(sshd, workdir=small_tmpfs / "work")) as transport:
        with pytest.raises(DiskFullError, match="not enough space"):
            push_model(transport, str(model), sha256(model))
    assert not list(small_tmpfs.rglob("m.gguf")) and not list(small_tmpfs.rglob(".partial"))


def test_the_device_filling_up_during_upload_leaves_no_half_file(sshd, tmp_path, route, small_tmpfs, monkeypatch):
    from edgebench.transport import remote_store
    monkeypatch.setattr(remote_store, "FREE_MARGIN_BYTES", -(64 << 20))  # let the upload start anyway
    trust(sshd)
    model = random_file(tmp_path / "m.gguf", 24 << 20)
    with SshTransport(device_for(sshd, workdir=small_tmpfs / "work")) as transport:
        with pytest.raises(DiskFullError, match="ran out of space"):
            push_model(transport, str(model), sha256(model))
    assert not list(small_tmpfs.rglob("m.gguf")) and not list(small_tmpfs.rglob(".partial"))


def test_the_ssh_client_refuses_a_host_key_other_than_the_recorded_one(sshd, tmp_path, monkeypatch):
    import paramiko

    from edgebench.transport import ssh_bulk
    monkeypatch.setattr(ssh_bulk, "BULK_MIN_BYTES", 0)
    trust(sshd)
    model = random_file(tmp_path / "m.gguf", 1 << 20)
    final = Path(sshd.device_dir) / "models" / sha256(model) / "m.gguf"
    with SshTransport(device_for(sshd)) as transport:  # paramiko checked the real key
        # from here on the record says another key: the device now presents an unknown one
        other = tmp_path / "other_host_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        monkeypatch.setattr(hostkeys, "recorded_keys",
                            lambda host, port: {"ssh-ed25519": paramiko.Ed25519Key(filename=str(other))})
        with pytest.raises(HostKeyError, match="refused the device's host key"):
            push_model(transport, str(model), sha256(model))
    assert not final.exists() and not (final.parent / ".partial").exists()


def _fake_ssh(tmp_path: Path, record: Path) -> Path:
    """An `ssh` that records how it was called and what it was told to trust, then fails as a
    client that cannot log in does."""
    script = tmp_path / "fake-ssh"
    script.write_text('#!/bin/sh\nprintf "%s\\0" "$@" > "$RECORD"\n'
                      'for a in "$@"; do case "$a" in UserKnownHostsFile=*) f=${a#*=}; f=${f#\\"}; '
                      'cat "${f%\\"}" >> "$RECORD.known";; esac; done\n'
                      'echo "Permission denied (publickey)." >&2\nexit 255\n')
    script.chmod(0o755)
    return script


def test_the_ssh_client_is_pinned_and_paramiko_takes_over_when_it_fails(sshd, tmp_path, monkeypatch):
    from edgebench.transport import ssh_bulk, sshconn
    record = tmp_path / "argv"
    monkeypatch.setenv("RECORD", str(record))
    monkeypatch.setattr(sshconn, "SSH_BINARY", str(_fake_ssh(tmp_path, record)))
    monkeypatch.setattr(ssh_bulk, "BULK_MIN_BYTES", 0)
    trust(sshd)
    model = random_file(tmp_path / "m.gguf", 1 << 20)
    with SshTransport(device_for(sshd)) as transport:
        result = push_model(transport, str(model), sha256(model))
        assert transport.bulk.last_route == "paramiko"
        assert "Permission denied" in transport.bulk.ssh_refused
    assert sha256(Path(result.path)) == sha256(model)
    argv = record.read_text().split("\0")[:-1]
    for option in ("StrictHostKeyChecking=yes", "BatchMode=yes", "GlobalKnownHostsFile=/dev/null",
                   f"IdentityFile=\"{sshd.client_key}\"", "HostKeyAlias=edgebench-device"):
        assert option in argv
    assert argv[argv.index("-p") + 1] == str(sshd.port) and argv[argv.index("-l") + 1] == sshd.user
    assert argv[-3:-1] == ["--", sshd.host] and "-F" in argv
    # the pinned file holds exactly the recorded key, under the alias ssh was told to look up
    assert Path(f"{record}.known").read_text().split() == ["edgebench-device", *sshd.host_public_key.split()]


HOSTILE = "we ird;$(touch PWNED)`touch PWNED2`'\"\nname"


def test_hostile_names_and_paths_are_data_not_commands(sshd, tmp_path, route):
    trust(sshd)
    model = random_file(tmp_path / f"{HOSTILE}.gguf", 1 << 16)
    workdir = Path(sshd.device_dir) / f"dir {HOSTILE}"
    with SshTransport(device_for(sshd, workdir=workdir)) as transport:
        result = push_model(transport, str(model), sha256(model))
        assert transport.bulk.last_route == route
        assert Path(result.path).read_bytes() == model.read_bytes()
        assert push_model(transport, str(model), sha256(model)).skipped
    assert not list(Path("/").glob("PWNED*")) and not list(Path.home().glob("PWNED*"))
    assert not list(Path(sshd.device_dir).rglob("PWNED*"))


def test_lru_eviction_keeps_the_cache_under_its_budget(sshd, tmp_path):
    trust(sshd)
    budget_gb = 2.5 / 1024  # 2.5 MiB: room for two 1 MiB models, not three
    device = device_for(sshd, extra=f"max_cache_gb: {budget_gb}\n")
    models = [random_file(tmp_path / f"m{i}.gguf", 1 << 20) for i in range(3)]
    with SshTransport(device) as transport:
        for model in models[:2]:
            push_model(transport, str(model), sha256(model))
        time.sleep(1.1)  # manifest mtimes order the LRU at one-second resolution on some filesystems
        push_model(transport, str(models[0]), sha256(models[0]))  # used again: now the most recent
        result = push_model(transport, str(models[2]), sha256(models[2]))
    assert [e.sha256 for e in result.evicted] == [sha256(models[1])]
    assert [e.file for e in result.evicted] == ["m1.gguf"]
    left = {p.name for p in (Path(sshd.device_dir) / "models").iterdir()}
    assert left == {sha256(models[0]), sha256(models[2])}


def test_eviction_frees_the_space_a_bundle_held(sshd, tmp_path):
    trust(sshd)
    device = device_for(sshd, extra=f"max_cache_gb: {2.5 / 1024}\n")  # 2.5 MiB: a 2 MiB bundle, then 1 MiB more
    model, data = random_file(tmp_path / "model.onnx", 1 << 20), random_file(tmp_path / "model.onnx.data", 1 << 20)
    other = random_file(tmp_path / "other.gguf", 1 << 20)
    bundles = Path(sshd.device_dir) / "bundles"
    with SshTransport(device) as transport:
        placed = push_model(transport, str(model), "b" * 64, extra_files=[str(data)])
        assert Path(placed.path).read_bytes() == model.read_bytes()
        result = push_model(transport, str(other), sha256(other))
        assert [e.file for e in result.evicted] in (["model.onnx"], ["model.onnx.data"])
        assert not list(bundles.iterdir())  # its links went too: the evicted megabyte is free
        time.sleep(1.1)  # manifest mtimes order the LRU at one-second resolution on some filesystems
        again = push_model(transport, str(model), "b" * 64, extra_files=[str(data)])
    assert (Path(again.path).read_bytes(), Path(again.path).with_name("model.onnx.data").read_bytes()) == (
        model.read_bytes(), data.read_bytes())


def _device_folder(server, tmp_path, extra="") -> Path:
    (tmp_path / "devices").mkdir(exist_ok=True)
    (tmp_path / "devices" / "box.yaml").write_text(device_yaml(server, extra=extra))
    trust(server)
    return tmp_path


def test_push_command_sends_an_onnx_models_external_data(sshd, tmp_path):
    import numpy as np
    import onnx_models
    import onnxruntime

    (tmp_path / "m").mkdir()
    model = onnx_models.mlp(tmp_path / "m" / "model.onnx", external_data=True)
    data = model.with_name("model.onnx.data")
    assert data.is_file()
    work = _device_folder(sshd, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "edgebench", "push", str(model), "-d", "box"], cwd=work,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pushed model.onnx (+ model.onnx.data) to box:" in proc.stdout
    # as `run` places it: both files side by side, so onnxruntime finds the data beside the model
    (bundle,) = (Path(sshd.device_dir) / "bundles").iterdir()
    assert (bundle / "model.onnx").read_bytes() == model.read_bytes()
    assert (bundle / "model.onnx.data").read_bytes() == data.read_bytes()
    assert f"{bundle / 'model.onnx'}" in proc.stdout
    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.zeros((1, 64), dtype=np.float32)})[0].shape == (1, 10)
    again = subprocess.run([sys.executable, "-m", "edgebench", "push", str(model), "-d", "box"], cwd=work,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "model.onnx (+ model.onnx.data) is already on box" in again.stdout


def test_push_command_shows_its_progress_and_names_what_the_cache_evicted(sshd, tmp_path):
    work = _device_folder(sshd, tmp_path, extra=f"max_cache_gb: {1.5 / 1024}\n")  # room for one 1 MiB model
    models = [random_file(tmp_path / f"m{i}.gguf", 1 << 20) for i in range(2)]
    env = {**os.environ, "COLUMNS": "200"}
    outputs = [_on_a_terminal([sys.executable, "-m", "edgebench", "push", str(m), "-d", "box"], None, env, work)
               for m in models]
    assert [code for code, _ in outputs] == [0, 0]
    first, second = outputs[0][1], outputs[1][1]
    assert "pushing m0.gguf to box" in first and "building" not in first
    assert "evicted" not in first
    assert f"evicted m0.gguf (1.0 MiB, sha256 {sha256(models[0])[:12]}) from box's model cache" in second
    assert {p.name for p in (Path(sshd.device_dir) / "models").iterdir()} == {sha256(models[1])}


@pytest.mark.llama
def test_a_run_says_what_the_device_cache_evicted(sshd, tmp_path, tiny_qwen35, tiny_llama):
    largest = max(tiny_qwen35.stat().st_size, tiny_llama.stat().st_size)
    work = _device_folder(sshd, tmp_path, extra=f"max_cache_gb: {1.5 * largest / 2**30}\n")  # one model at a time
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{tiny_qwen35}, {tiny_llama}]\ntests: [tg2]\nrepetitions: 1\nwarmup: 0\n")
    run = subprocess.run([sys.executable, "-m", "edgebench", "run", str(profile), "-d", "box"], cwd=work,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr + run.stdout
    evicted = [line for line in run.stdout.splitlines() if line.startswith("evicted ")]
    assert len(evicted) == 1 and "from box's model cache to stay under its max_cache_gb" in evicted[0]
    assert evicted[0].split()[1] in (tiny_qwen35.name, tiny_llama.name)


# -- remote runs -----------------------------------------------------------------------------------

def _fake_python(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def test_a_hung_remote_runner_is_killed_and_nothing_is_left_on_the_device(sshd, tmp_path):
    trust(sshd)
    # a python that hangs when asked to run the runner and is the real one otherwise (the store
    # uses it too); sshd starts the command as a session leader, so it leads its group like the runner
    hang = _fake_python(tmp_path, 'case "$1" in *runner.pyz) echo \'{"event":"hello","protocol":2,"pid":\'$$\'}\'; '
                                  f'exec sleep 300;; esac; exec {sys.executable} "$@"')
    with SshTransport(device_for(sshd, python=str(hang))) as transport:
        runner = install_runner(transport)
        with pytest.raises(RunnerTimeout):
            run_runner(transport, runner, "run", {"engine": "llama.cpp"}, 2, lambda e: None)
    sshd.wait_idle(timeout=15)
    assert sshd.children(include_sshd=False) == []


def test_a_remote_run_streams_events_and_kills_no_more_than_its_group(sshd, tmp_path, tiny_qwen35):
    trust(sshd)
    events = []
    job = {"engine": "llama.cpp", "model_path": "", "test": {"n_prompt": 8, "n_gen": 4, "n_depth": 0},
           "repetitions": 2, "warmup": 1, "engine_options": {"threads": 2},
           "telemetry": {"enabled": True, "interval_s": 0.1}}
    with SshTransport(device_for(sshd)) as transport:
        job["model_path"] = push_model(transport, str(tiny_qwen35), sha256(tiny_qwen35)).path
        done = run_runner(transport, install_runner(transport), "run", job, 300, events.append)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "hello" and kinds.count("sample") == 2 and kinds[-1] == "done" and done["ok"]


def test_end_to_end_run_over_ssh_matches_the_local_schema(sshd, tmp_path, tiny_qwen35):
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "box.yaml").write_text(device_yaml(sshd))
    env = {**os.environ, "EDGEBENCH_KNOWN_HOSTS": str(tmp_path / "edgebench_known_hosts")}
    trusted = subprocess.run([sys.executable, "-m", "edgebench", "devices", "trust", "box", "--fingerprint",
                              sshd.host_key_fingerprint], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert trusted.returncode == 0, trusted.stderr
    check = subprocess.run([sys.executable, "-m", "edgebench", "devices", "check", "box", "--json"], cwd=tmp_path,
                           capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stderr
    facts = json.loads(check.stdout)
    assert facts["facts"]["arch"] == os.uname().machine and facts["runner"]["engines"]["llama.cpp"] == "ok"
    # the engine self-test ran on the device, through the pushed model and the remote runner
    self_test = facts["self_test"]["llama.cpp"]
    assert self_test["ok"] is True and self_test["pp_ts"] > 0 and self_test["tg_ts"] > 0, self_test
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{tiny_qwen35}]\ntests: [pp16, tg4]\nrepetitions: 2\nengine: {{threads: 2}}\n")
    run = subprocess.run([sys.executable, "-m", "edgebench", "run", str(profile), "-d", "box"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr + run.stdout
    run_dir = next((tmp_path / "results").iterdir())
    rows = json.loads((run_dir / "summary.json").read_text())["rows"]
    assert [(r["device"], r["test"], r["status"]) for r in rows] == [("box", "pp16", "done"), ("box", "tg4", "done")]
    from edgebench.results.aggregate import FIELDS
    assert all(list(r) == list(FIELDS) for r in rows)
    assert all(r["avg_ts"] > 0 and r["peak_rss_mib"] > 0 for r in rows)
    assert "| box |" in run.stdout


def test_a_termux_like_device_non_root_user_home_workdir(sshd_factory, tmp_path, tiny_qwen35):
    (server,) = sshd_factory(1, user="edgeuser")
    trust(server)
    device = device_for(server, workdir="~/edgebench", python="/usr/bin/python3")
    with open_transport(device) as transport:
        assert transport.workdir.startswith("/home/edgeuser/") or "edgeuser" in transport.workdir
        result = push_model(transport, str(tiny_qwen35), sha256(tiny_qwen35))
        assert result.path.startswith(transport.workdir)
        code, out, _ = transport.run_shell("id -u")
        assert code == 0 and out.strip() != "0"


def test_proxy_jump_through_a_second_server(sshd_factory):
    jump, target = sshd_factory(2)
    # one key for both hops, as with a bastion that knows your key
    with open(jump.authorized_keys_file, "a") as f:
        f.write(Path(str(target.client_key) + ".pub").read_text())
    from edgebench.transport.sshconn import fetch_host_key
    hostkeys.record(jump.host, jump.port, fetch_host_key(jump.host, jump.port))
    device = device_for(target, extra=f"proxy_jump: {jump.user}@{jump.host}:{jump.port}\n")
    trust(target)
    with SshTransport(device) as transport:
        assert transport.run_shell("echo through")[1] == "through\n"
        # the ssh binary would need its own trust decision for the hop: paramiko carries the bytes
        from edgebench.transport import ssh_bulk
        model = random_file(Path(target.base_dir) / "m.gguf", 1 << 16)
        bulk_min, ssh_bulk.BULK_MIN_BYTES = ssh_bulk.BULK_MIN_BYTES, 0
        try:
            assert not push_model(transport, str(model), sha256(model)).skipped
        finally:
            ssh_bulk.BULK_MIN_BYTES = bulk_min
        assert transport.bulk.last_route == "paramiko"
    jump.stop()
    with pytest.raises(TransportError, match="jump host"):
        SshTransport(device)


def _runner_pids(sshd) -> list[int]:
    """Processes on the 'device' running the runner zipapp."""
    pids = []
    for pid in sshd.children(include_sshd=False):
        try:
            if b"runner.pyz" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except OSError:
            continue
    return pids


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_on_the_controller_kills_the_remote_runner(sshd, tmp_path, tiny_qwen35):
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "box.yaml").write_text(device_yaml(sshd))
    env = {**os.environ, "EDGEBENCH_KNOWN_HOSTS": str(tmp_path / "edgebench_known_hosts")}
    trust(sshd)
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{tiny_qwen35}]\ntests: [tg100000]\nrepetitions: 1\nwarmup: 0\n"
                       f"engine: {{threads: 2}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "edgebench", "run", str(profile), "-d", "box"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for(lambda: _runner_pids(sshd) and list(tmp_path.glob("results/*/telemetry.jsonl"))), \
        proc.communicate(timeout=5)
    proc.send_signal(2)  # SIGINT, as Ctrl-C sends
    assert proc.wait(timeout=60) == 130
    assert _wait_for(lambda: not _runner_pids(sshd), timeout=30), "a runner was left on the device"


def test_a_runner_whose_connection_dropped_stops_itself(sshd, tmp_path, tiny_qwen35):
    trust(sshd)
    job = {"engine": "llama.cpp", "model_path": "", "test": {"n_prompt": 0, "n_gen": 100000, "n_depth": 0},
           "repetitions": 1, "warmup": 0, "engine_options": {"threads": 2},
           "telemetry": {"enabled": True, "interval_s": 0.1}}
    transport = SshTransport(device_for(sshd))
    job["model_path"] = push_model(transport, str(tiny_qwen35), sha256(tiny_qwen35)).path
    runner = install_runner(transport)
    errors = []

    def run():
        try:
            run_runner(transport, runner, "run", job, 300, lambda e: None)
        except Exception as exc:  # the cut connection
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert _wait_for(lambda: bool(_runner_pids(sshd)))
    orphans = _runner_pids(sshd)
    sshd.kill_connections(keep_commands=True)  # the network drops; the runner survives it at first
    worker.join(timeout=60)
    assert errors and isinstance(errors[0], TransportError)
    assert _wait_for(lambda: not any(_running(pid) for pid in orphans), timeout=30)
    transport.close()
