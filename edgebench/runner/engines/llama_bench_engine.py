"""An existing llama-bench binary on the device, run with `-o jsonl` and parsed; its `ppl` tests run
llama-perplexity from the same build (llama_perplexity.py).

llama-bench times every repetition itself and prints one JSON line per test
when the test ends, so per-repetition telemetry windows are reconstructed
backwards from the moment that line arrives, using the sample durations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time

from ..crashes import StderrTail, explain, killed_child
from ..protocol import RunnerFailure
from ..scoring.measure import job_quality
from . import installed
from . import llama_settings as llama
from .base import Engine, Measurement
from .build_info import system_info_beside
from .cpu_mask import NO_MASK
from .declaration import THREADS, EngineDeclaration, Option
from .llama_perplexity import measure_perplexity, perplexity_binary
from .llama_settings import FLASH_ATTN

DECLARATION = EngineDeclaration(
    name="llama-bench",
    doc="a llama-bench binary on the device, run and parsed",
    options=(THREADS, llama.N_BATCH, llama.N_UBATCH, llama.TYPE_K, llama.TYPE_V, llama.FLASH_ATTN_OPTION,
             llama.N_GPU_LAYERS, llama.N_CPU_MOE, llama.REPACK) + llama.CPU_OPTIONS + (
             Option("binary", "text", None, "the llama-bench binary; default: the device's llama_bench, else the "
                    "one `edgebench install-engine -d` installed, else llama-bench on PATH",
                    device_setting="llama_bench"),
             Option("source", "text", None, "a llama.cpp git checkout (a path) or a URL git can fetch: the run "
                    "builds `ref` of it for each device and installs it there (edgebench; the device never sees it)"),
             Option("ref", "text", None, "the commit, tag or branch of `source` to build (default HEAD); "
                    "resolved to its commit before the run, which then runs that commit's installed llama-bench"),
             Option("perplexity_binary", "text", None, "the llama-perplexity binary that runs ppl tests; default: "
                    "the device's llama_perplexity, else the one beside llama-bench",
                    device_setting="llama_perplexity")),
    test_kinds=("pp", "tg", "pp+tg", "ppl"),
    facts=("n_batch", "n_ubatch", "type_k", "type_v", "flash_attn", "n_gpu_layers", "n_cpu_moe", "repack",
           "binary") + llama.CPU_FACTS,
    compare_keys=llama.COMPARE_KEYS,
    row_fields=llama.row_fields,
    refused_kinds=(("kld", "llama-perplexity needs its full-distribution base file for it (about 2 bytes per "
                           "vocabulary entry per scored token, gigabytes), which edgebench's compact reference "
                           "replaces; use engine llama.cpp"),),
    quality_text_only=True,
)

# llama-bench fields that describe the build and model rather than one test
INFO_FIELDS = ("build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_type",
               "model_size", "model_n_params", "n_threads", "load_mode", "repack")
STDERR_TAIL_LINES = 20


class LlamaBenchEngine(Engine):
    declaration = DECLARATION
    binary = None

    @staticmethod
    def missing(options=None):
        """The binary comes with the job (the device's `llama_bench`, or the profile's engine.binary);
        without one, the installed engine's (installed.py), else llama-bench on PATH."""
        binary = LlamaBenchEngine.binary_for(options or {})
        if not binary and options and options.get("ref"):
            return ("no llama-bench of llama.cpp %s is installed on this device (edgebench builds and installs "
                    "engine.ref before a run)" % options["ref"])
        if not binary:
            return ("no llama-bench binary: none is configured (llama_bench in the device profile, or "
                    "engine.binary in the benchmark profile), none is installed (edgebench install-engine "
                    "-d DEVICE) and none is on PATH")
        if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
            return "llama-bench binary %s is not an executable file" % binary
        if binary == installed.tool("llama-bench"):
            return installed.unusable()
        if options and options.get("ref") and binary == installed.tool("llama-bench", commit=options["ref"]):
            return installed.unusable(commit=options["ref"])
        return None

    @staticmethod
    def binary_for(options):
        if options.get("ref"):
            # an engine at a commit: the build installed for it, never another llama-bench (not even the
            # device profile's llama_bench)
            return installed.tool("llama-bench", commit=options["ref"])
        return options.get("binary") or installed.tool("llama-bench") or shutil.which("llama-bench")

    def __init__(self):
        self.proc = None
        self.model_path = None
        self.options = {}
        self.info = {}

    def open(self, model_path, options):
        problem = self.missing(options)
        if problem:
            raise RunnerFailure("engine-missing", problem)
        binary = self.binary_for(options)
        self.binary = binary
        self.model_path = model_path
        self.options = dict(options)
        info = {"engine_version": "llama-bench " + binary, "system_info": system_info_beside(binary)}
        if binary == installed.tool("llama-bench"):
            info.update(installed.build_fields())
        elif options.get("ref") and binary == installed.tool("llama-bench", commit=options["ref"]):
            info.update(installed.build_fields(commit=options["ref"]))
        return info

    def command(self, test, repetitions, warmup):
        opts = self.options
        cmd = [self.binary, "-m", self.model_path, "-r", str(repetitions), "-o", "jsonl",
               "-d", str(test.n_depth),
               "-b", str(opts.get("n_batch", 2048)), "-ub", str(opts.get("n_ubatch", 512)),
               "-ctk", opts.get("type_k", "f16"), "-ctv", opts.get("type_v", "f16"),
               "-ngl", str(opts.get("n_gpu_layers", 0))]
        if test.n_prompt and test.n_gen:
            cmd += ["-p", "0", "-n", "0", "-pg", "%d,%d" % (test.n_prompt, test.n_gen)]
        else:
            cmd += ["-p", str(test.n_prompt), "-n", str(test.n_gen)]
        if opts.get("threads"):
            cmd += ["-t", str(opts["threads"])]
        if opts.get("flash_attn", "auto") != "auto":
            # 1/0 are understood by old and new builds alike; on/off only by new ones
            cmd += ["-fa", str(FLASH_ATTN[opts["flash_attn"]])]
        if opts.get("n_cpu_moe"):
            cmd += ["-ncmoe", str(opts["n_cpu_moe"])]
        if not opts.get("repack", True):
            # only when asked: builds older than the option reject it
            cmd += ["--repack", "0"]
        if opts.get("cpu_mask", NO_MASK) != NO_MASK:
            cmd += ["-C", opts["cpu_mask"]]
        if opts.get("cpu_strict"):
            cmd += ["--cpu-strict", "1"]
        if not warmup:
            cmd.append("--no-warmup")
        return cmd

    def measure_quality(self, job, test_kind, mark):
        quality = job_quality(job, test_kind)
        if test_kind != "ppl" or not quality["text"]:
            raise RunnerFailure("job", "engine llama-bench runs ppl over a text file (through llama-perplexity), "
                                "not %s%s" % (test_kind, "" if quality["text"] else " without a text"))
        return measure_perplexity(perplexity_binary(self.options, self.binary), self.model_path, quality,
                                  self.options, mark)

    def late_info(self):
        return dict(self.info)

    def engine_pid(self):
        return self.proc.pid if self.proc else None

    def measure(self, test, repetitions, warmup, mark):
        tail = StderrTail(STDERR_TAIL_LINES)
        try:
            self.proc = subprocess.Popen(self.command(test, repetitions, warmup), stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, universal_newlines=True)
        except OSError as exc:
            raise RunnerFailure("engine", "cannot start llama-bench: %s" % exc)
        drain = threading.Thread(target=lambda: [tail.add(line) for line in self.proc.stderr],
                                 daemon=True)
        drain.start()
        row = None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                arrived = time.monotonic()
                mark()
                row = json.loads(line)
                break
        self.proc.stdout.read()
        code = self.proc.wait()
        drain.join(timeout=5)
        if code != 0 or row is None:
            text = tail.text()
            why = explain(-code, text) if code < 0 else None
            message = ("llama-bench died from signal %d: %s" % (-code, why) if why else
                       "llama-bench exited with code %s" % code)
            raise RunnerFailure("engine", message, exit_code=code, stderr_tail=text,
                                **killed_child("llama-bench", self.proc.pid, code))
        self.info.update({k: row[k] for k in INFO_FIELDS if k in row})
        samples = [int(ns) for ns in row.get("samples_ns", [])]
        end = arrived
        windows = []
        for ns in reversed(samples):
            windows.append((end - ns / 1e9, end))
            end -= ns / 1e9
        windows.reverse()
        for rep, (ns, (t0, t1)) in enumerate(zip(samples, windows)):
            yield Measurement(rep=rep, t_ns=ns, ttft_ns=None, t0=t0, t1=t1)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


ENGINE = LlamaBenchEngine
