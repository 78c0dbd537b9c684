"""Make the golden run directories and what reading them back must give (tests/test_golden.py).

The golden runs are the safety net of a change that must not change behaviour or the results format:
a stored run directory of every kind, read back by the current code, must give exactly the rows, the
`show` exports and the `compare` reports stored beside it. This script is not run by the test suite.
Run it only to change the golden files on purpose, and commit what it writes:

    PYTHONPATH=$PWD python tests/golden/make_golden.py --expected-only
        After an intended change to what is read back (a new row field, say): rewrite the expected
        files from the stored runs. The runs stay as they were written, old versions' included, so the
        test still proves that they read.
    PYTHONPATH=$PWD python tests/golden/make_golden.py
        Run edgebench again and replace every golden run (then the expected files). Only for a new kind
        of run, or an intended change to what a run writes; the `previous` run is written again by the
        version at PREVIOUS_COMMIT.
    PYTHONPATH=$PWD python tests/golden/make_golden.py --kinds ab,llama
        Only those runs again (then every expected file).

Everything runs for real, through the `edgebench` command line in subprocesses: the local device, real
OpenSSH servers on loopback as SSH devices (tests/sshd_server.py, as the suite starts them), the runner
zipapp, llama.cpp for the `llama` run. Cells use the `sleep` test engine wherever a real one is not the
point, so the runs take seconds and their files stay small. Files are kept as edgebench wrote them
(run.json names this machine's temporary paths; nothing reads them back except `run --resume`).

The runs (tests/fixtures/golden/runs/<kind>/):
    local      the built-in local device, 4 tests of every shape (pp, tg, pp+tg, tg@depth), 5 repetitions
    ssh        the same profile on an SSH device
    fleet      3 SSH devices at once: one whose engine crashes, one unreachable, one good (exit 1)
    ab         `ab` of two simulated speeds on the local device, with extra rounds while inconclusive
    shard-1/2  `run --shard i/2` of two devices, and `merged`: `edgebench merge` of the two
    resumed    a run killed with -9 in its long cell, then finished by `run --resume`
    llama      llama.cpp on the tiny Qwen3.5 synthetic model, 2 tests; llama-tuned: the same with every engine
               setting `compare` matches on changed
    previous   the local profile, and previous-llama the llama one, run by edgebench at PREVIOUS_COMMIT (its
               own runner and records)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path[:0] = [str(REPO), str(TESTS)]  # this tree's edgebench, whatever is installed

from golden.readback import (  # noqa: E402  (after the path is set)
    COMPARE_PAIRS,
    EXPECTED,
    GOLDEN,
    KINDS,
    RUNS,
    SHOW_FORMATS,
    ab_gate_text,
    compare_file,
    compare_texts,
    rows_text,
    show_text,
)
from sshd_server import SshServer, find_sshd  # noqa: E402

# the version whose run directory stands for "written by the previous version"
PREVIOUS_COMMIT = "2aee22c"

# 4 KiB the sleep engine never reads; the same bytes every time, so every run has the same model sha256
MODEL_BYTES = b"edgebench golden model: the sleep test engine does not read it\n" * 64


def sleep_profile(tests: str = "pp16, tg16, pp16+tg16, tg8@d16", repetitions: int = 5, extra: str = "") -> str:
    """Each repetition sleeps (n_prompt + n_gen) / 400 s; `{model}` is filled in by Workshop.profile."""
    return (f"description: golden run (sleep test engine; tests/golden/make_golden.py)\nmodels: [{{model}}]\n"
            f"tests: [{tests}]\nrepetitions: {repetitions}\nwarmup: 0\n"
            "engine: {{name: sleep, simulate_ts: 400}}\ntelemetry: {{interval_s: 0.2}}\nthresholds: {{tg: 3%}}\n"
            + extra)


class Workshop:
    """A temporary folder with the model, profiles, device files and known hosts the runs share."""

    def __init__(self, root: Path):
        self.root = root
        self.model = root / "golden-model.bin"
        self.model.write_bytes(MODEL_BYTES)
        self.devices = root / "devices"
        self.devices.mkdir()
        self.known_hosts = root / "known_hosts"
        self.known_hosts.touch()
        self.servers: list[SshServer] = []

    def profile(self, name: str, text: str) -> Path:
        path = self.root / f"{name}.yaml"
        path.write_text(text.format(model=json.dumps(str(self.model))))
        return path

    def device(self, name: str, text: str) -> str:
        (self.devices / f"{name}.yaml").write_text(f"name: {name}\n{text}")
        return name

    def local_device(self, name: str) -> str:
        return self.device(name, f"transport: local\nclass: desktop\nworkdir: {self.root / ('work-' + name)}\n")

    def ssh_device(self, name: str, python: str = sys.executable, running: bool = True) -> str:
        """An SSH device on its own sshd, its host key trusted; not running: unreachable."""
        sshd = find_sshd()
        if sshd is None:
            raise SystemExit("make_golden: the ssh runs need OpenSSH's sshd (apt-get install openssh-server)")
        server = SshServer(self.root / f"sshd-{name}", sshd_path=sshd).start()
        self.servers.append(server)
        with open(self.known_hosts, "a") as f:
            f.write(server.known_hosts_line() + "\n")
        if not running:
            server.stop()
        return self.device(name, f"transport: ssh\nhost: {server.host}\nport: {server.port}\nuser: {server.user}\n"
                                 f"identity: {server.client_key}\nworkdir: {json.dumps(str(server.device_dir))}\n"
                                 f"python: {python}\n")

    def fake_python(self, name: str, when_run: str) -> str:
        """An interpreter that does `when_run` instead of measuring a cell and is the real one otherwise."""
        script = self.root / f"python-{name}"
        script.write_text(f'#!/bin/sh\ncase "$2" in run) {when_run};; esac\nexec {sys.executable} "$@"\n')
        script.chmod(0o755)
        return str(script)

    def env(self, code: Path = REPO) -> dict:
        return {**os.environ, "PYTHONPATH": str(code), "EDGEBENCH_KNOWN_HOSTS": str(self.known_hosts)}

    def start(self, *args, code: Path = REPO) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "edgebench", *map(str, args)], cwd=self.root,
                                env=self.env(code), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def edgebench(self, *args, codes=(0,), code: Path = REPO) -> str:
        proc = self.start(*args, code=code)
        out, err = proc.communicate(timeout=600)
        if proc.returncode not in codes:
            raise SystemExit(f"make_golden: edgebench {' '.join(map(str, args))} exited {proc.returncode}, "
                             f"expected {codes}:\n{out}{err}")
        return out

    def close(self) -> None:
        for server in self.servers:
            server.stop()


def only_run(results: Path) -> Path:
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    return run_dir


def sleep_run(shop: Workshop, kind: str, *devices: str, profile: tuple[str, str] = ("local", sleep_profile()),
              codes=(0,), extra=()) -> Path:
    """`edgebench run` of a sleep profile (its name, its text) on devices, into a results root of its own."""
    profile = shop.profile(*profile)
    results = shop.root / f"results-{kind}"
    shop.edgebench("run", profile, *[a for d in devices for a in ("-d", d)], "--devices-dir", shop.devices,
                   "-o", results, *extra, codes=codes)
    return only_run(results)


def make_local(shop: Workshop) -> dict[str, Path]:
    return {"local": sleep_run(shop, "local", "local")}  # the built-in local device: no devices/local.yaml


def make_ssh(shop: Workshop) -> dict[str, Path]:
    # the local run's profile, so the two merge; the fleet's crashing device has this one's name
    return {"ssh": sleep_run(shop, "ssh", shop.ssh_device("pi"))}


def make_fleet(shop: Workshop) -> dict[str, Path]:
    # the crashing device is named as the ssh run's device: `compare ssh fleet` has cells the candidate failed
    crashing = shop.ssh_device("pi", python=shop.fake_python("crash", "echo 'engine crashed' >&2; kill -SEGV $$"))
    devices = [crashing, shop.ssh_device("gone", running=False), shop.ssh_device("good")]
    profile = ("fleet", sleep_profile("pp16, tg16", 3, "retries: 1\nretry_backoff_s: 0.2\n"))
    return {"fleet": sleep_run(shop, "fleet", *devices, profile=profile, codes=(1,), extra=("--parallel", 3))}


def make_ab(shop: Workshop) -> dict[str, Path]:
    profile = shop.profile("ab", sleep_profile("tg16, pp16"))
    results, report = shop.root / "results-ab", shop.root / "ab-report.json"
    # no round counts as disturbed (the machine's load would make the run differ from one making to the next)
    shop.edgebench("ab", profile, "-d", "local", "--b", "engine.simulate_ts=300", "--rounds", 7, "--max-rounds", 11,
                   "--max-load", 1000, "--max-steal", 100, "--json", report, "-o", results, codes=(0, 1, 2))
    run_dir = only_run(results)
    if ab_gate_text(run_dir) != report.read_text():
        raise SystemExit(f"make_golden: the ab run's gate, judged again from {run_dir}, is not the report "
                         f"`ab --json` wrote ({report}): tests/golden/readback.py no longer reads ab runs as ab does")
    return {"ab": run_dir}


def make_shards(shop: Workshop) -> dict[str, Path]:
    devices = [shop.local_device("alpha"), shop.local_device("beta")]
    profile = ("shards", sleep_profile("pp16, tg16", 3))
    runs = {f"shard-{i}": sleep_run(shop, f"shard-{i}", *devices, profile=profile, extra=("--shard", f"{i}/2"))
            for i in (1, 2)}
    merged = shop.root / "results-merged" / "merged-run"
    shop.edgebench("merge", runs["shard-1"], runs["shard-2"], "-o", merged)
    return {**runs, "merged": merged}


def make_resumed(shop: Workshop) -> dict[str, Path]:
    device = shop.local_device("box")
    profile = shop.profile("resumed", "models: [{model}]\ntests: [tg10, tg200, tg20]\nrepetitions: 2\nwarmup: 0\n"
                                      "engine: {{name: sleep, simulate_ts: 100}}\ntelemetry: {{interval_s: 0.2}}\n")
    results = shop.root / "results-resumed"
    proc = shop.start("run", profile, "-d", device, "--devices-dir", shop.devices, "-o", results)
    deadline = time.monotonic() + 120

    def cells() -> list[dict]:
        found = list(results.glob("*/cells.jsonl"))
        lines = found[0].read_text().splitlines() if found else []
        return [json.loads(line) for line in lines[:-1]]  # the last line may be half written

    while not any(c["state"] == "running" and "/tg200/" in c["cell"] for c in cells()):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"make_golden: the resumed run never reached its long cell: {proc.communicate()}")
        time.sleep(0.05)
    time.sleep(0.5)  # a repetition of the long cell under way
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    run_dir = only_run(results)
    shop.edgebench("run", "--resume", run_dir)
    return {"resumed": run_dir}


LLAMA_PROFILE = ("models: [synthetic:tiny-qwen35@Q8_0]\ntests: [pp16, tg8]\nrepetitions: 3\nwarmup: 1\n"
                 "engine: {{name: llama.cpp, threads: 2{settings}}}\ntelemetry: {{interval_s: 0.2}}\n")
# every engine setting that makes a cell another experiment for `compare`, changed from its default
TUNED = ", n_batch: 64, n_ubatch: 32, type_k: q8_0, type_v: q8_0, flash_attn: 'on', n_gpu_layers: -1, repack: false"


def llama_run(shop: Workshop, kind: str, settings: str = "", code: Path = REPO, devices: Path | None = None) -> Path:
    profile = shop.profile(kind, LLAMA_PROFILE.replace("{settings}", settings))
    results = shop.root / f"results-{kind}"
    shop.edgebench("run", profile, "-d", "local", *(("--devices-dir", devices) if devices else ()), "-o", results,
                   code=code)
    return only_run(results)


def make_llama(shop: Workshop) -> dict[str, Path]:
    return {"llama": llama_run(shop, "llama"), "llama-tuned": llama_run(shop, "llama-tuned", TUNED)}


def make_previous(shop: Workshop) -> dict[str, Path]:
    """The local and llama runs' profiles on a device named local, by edgebench as it was at PREVIOUS_COMMIT."""
    code = shop.root / f"edgebench-{PREVIOUS_COMMIT}"
    code.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", PREVIOUS_COMMIT], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    devices = shop.root / "devices-previous"
    devices.mkdir()
    (devices / "local.yaml").write_text(f"name: local\ntransport: local\nclass: laptop\n"
                                        f"workdir: {shop.root / 'work-previous'}\n")
    profile = shop.profile("local", sleep_profile())  # the local run's, so `compare previous local` matches
    results = shop.root / "results-previous"
    shop.edgebench("run", profile, "-d", "local", "--devices-dir", devices, "-o", results, code=code)
    return {"previous": only_run(results), "previous-llama": llama_run(shop, "previous-llama", "", code, devices)}


MAKERS = {"local": make_local, "ssh": make_ssh, "fleet": make_fleet, "ab": make_ab, "shard-1": make_shards,
          "shard-2": make_shards, "merged": make_shards, "resumed": make_resumed, "llama": make_llama,
          "llama-tuned": make_llama, "previous": make_previous, "previous-llama": make_previous}


def make_runs(kinds: list[str]) -> None:
    root = Path(tempfile.mkdtemp(prefix="edgebench-golden-"))
    shop = Workshop(root)
    try:
        made: dict[str, Path] = {}
        for maker in dict.fromkeys(MAKERS[k] for k in kinds):  # each maker once, in the order asked
            print(f"make_golden: {maker.__name__}", flush=True)
            made.update(maker(shop))
        for kind, run_dir in made.items():
            dest = GOLDEN / RUNS / kind
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(run_dir, dest)
    finally:
        shop.close()
    shutil.rmtree(root, ignore_errors=True)


def write_expected() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="edgebench-golden-expected-"))
    try:
        files: dict[Path, str] = {}
        for kind in KINDS:
            run_dir = GOLDEN / RUNS / kind
            files[EXPECTED / f"{kind}.rows.json"] = rows_text(run_dir)
            for fmt in SHOW_FORMATS:
                files[EXPECTED / f"{kind}.show.{fmt}"] = show_text(run_dir, fmt, scratch)
        for base, cand in COMPARE_PAIRS:
            first, second = (compare_texts(GOLDEN, base, cand, scratch)[1] for _ in range(2))
            if first != second:  # the bootstrap is seeded: a report that changes is a bug, not a golden file
                raise SystemExit(f"make_golden: compare {base} {cand} gave two different reports")
            for fmt, text in first.items():
                files[compare_file(base, cand, fmt)] = text
        files[EXPECTED / "ab.gate.json"] = ab_gate_text(GOLDEN / RUNS / "ab")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(EXPECTED, ignore_errors=True)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expected-only", action="store_true",
                        help="keep the stored runs; rewrite only what reading them back must give")
    parser.add_argument("--kinds", help=f"comma-separated kinds to run again (default: all: {','.join(KINDS)})")
    args = parser.parse_args(argv)
    if not args.expected_only:
        kinds = args.kinds.split(",") if args.kinds else list(KINDS)
        unknown = [k for k in kinds if k not in MAKERS]
        if unknown:
            parser.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
        make_runs(kinds)
    write_expected()
    total = sum(p.stat().st_size for p in GOLDEN.rglob("*") if p.is_file())
    print(f"make_golden: wrote {GOLDEN.relative_to(REPO)} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
