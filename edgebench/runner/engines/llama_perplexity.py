"""`ppl` for the llama-bench engine: llama.cpp's own llama-perplexity binary on the device, over the text
file the controller pushed, with llama-perplexity's chunking (-c, --chunks) and edgebench's batch and
cache settings, read back into the fields edgebench's own scoring fills (ppl, ppl_stderr, n_scored).

`--log-jsonl` puts every message on stdout as one JSON object with its time in microseconds, and
`--ppl-output-type 1` gives each chunk a line with the running mean NLL and its uncertainty (to 6
decimals): the last chunk's line is the final estimate. llama.cpp's logger drops whatever it has not
written when the process exits (ggml-org/llama.cpp#22142; a busy device loses the last lines about
one run in four), so the final estimate's own line is not relied on, and a pass whose last chunk's
line went missing is run again, at most PASS_TRIES times. The pass is timed from "calculating
perplexity" to the last chunk, as edgebench times its own pass (model load and tokenizing left out).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import threading

from ..crashes import StderrTail, explain, killed_child
from ..protocol import RunnerFailure
from ..scoring.reference_file import scored_per_chunk

_START = re.compile(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+)")
# --ppl-output-type 1, per chunk: first token, running PPL, mean NLL, its standard error
_CHUNK = re.compile(r"^\s*\d+\s+\S+\s+(\S+)\s+(\S+)\s*$")
TAIL_LINES = 20
PASS_TRIES = 3


def perplexity_binary(options: dict, llama_bench_binary: str) -> str:
    """The device's llama-perplexity: the configured one, else the one beside llama-bench (one build)."""
    return options.get("perplexity_binary") or os.path.join(os.path.dirname(llama_bench_binary), "llama-perplexity")


def command(binary: str, model_path: str, text_path: str, n_ctx: int, chunks: int, options: dict) -> list:
    cmd = [binary, "-m", model_path, "-f", text_path, "-c", str(n_ctx), "--chunks", str(chunks),
           "-b", str(options.get("n_batch", 2048)), "-ub", str(options.get("n_ubatch", 512)),
           "-ctk", options.get("type_k", "f16"), "-ctv", options.get("type_v", "f16"), "--ppl-output-type", "1",
           "--log-jsonl"]
    n_gpu_layers = options.get("n_gpu_layers", 0)
    cmd += ["-ngl", "all" if n_gpu_layers == -1 else str(n_gpu_layers)]
    if options.get("threads"):
        cmd += ["-t", str(options["threads"])]
    if options.get("flash_attn", "auto") != "auto":
        cmd += ["-fa", options["flash_attn"]]
    if options.get("n_cpu_moe"):
        cmd += ["-ncmoe", str(options["n_cpu_moe"])]
    if not options.get("repack", True):
        cmd += ["--no-repack"]
    return cmd


class _Pass:
    """What llama-perplexity's messages say as they arrive: the chunks, each chunk's running mean NLL and its
    uncertainty, and when the pass began and its last chunk ended (its clock, microseconds)."""

    def __init__(self):
        self.n_chunk = self.n_ctx = self.began_us = self.ended_us = None
        self.chunks = []
        self.errors = []

    def read(self, line: str, mark) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("type") != "log":
            return
        text = message.get("msg") or ""
        if message.get("level") == "error":
            self.errors.append(text.strip())
        found = _START.search(text)
        if found:
            mark()
            self.n_chunk, self.n_ctx = int(found.group(1)), int(found.group(2))
            self.began_us = message.get("time")
        found = _CHUNK.match(text) if self.n_chunk is not None else None
        if found:
            self.chunks.append((float(found.group(1)), float(found.group(2))))
            self.ended_us = message.get("time")
            if self.complete():
                mark()

    def complete(self) -> bool:
        return self.n_chunk is not None and len(self.chunks) == self.n_chunk

    def summary(self) -> dict:
        mean_nll, nll_stderr = self.chunks[-1]
        ppl = math.exp(mean_nll)
        return {"ppl": ppl, "ppl_stderr": ppl * nll_stderr, "n_scored": self.n_chunk * scored_per_chunk(self.n_ctx)}


def _one_pass(cmd: list, mark) -> tuple:
    """(_Pass, exit code, stderr tail, pid) of one run of llama-perplexity."""
    tail = StderrTail(TAIL_LINES)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    except OSError as exc:
        raise RunnerFailure("engine", "cannot start llama-perplexity: %s" % exc)
    drain = threading.Thread(target=lambda: [tail.add(line) for line in proc.stderr], daemon=True)
    drain.start()
    found = _Pass()
    try:
        for line in proc.stdout:
            found.read(line, mark)
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    drain.join(timeout=5)
    return found, code, tail.text(), proc.pid


def measure_perplexity(binary: str, model_path: str, quality: dict, options: dict, mark):
    """(elapsed ns, tokens decoded, summary) of llama-perplexity's pass over the job's text."""
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        raise RunnerFailure("engine-missing", "llama-perplexity binary %s is not an executable file (set "
                            "llama_perplexity in the device profile)" % binary)
    cmd = command(binary, model_path, quality["text"], quality["n_ctx"], quality["chunks"], options)
    for _ in range(PASS_TRIES):
        found, code, tail, pid = _one_pass(cmd, mark)
        if code < 0:
            why = explain(-code, tail)
            raise RunnerFailure("engine", "llama-perplexity died from signal %d%s" % (-code, ": " + why if why else ""),
                                exit_code=code, stderr_tail=tail, **killed_child("llama-perplexity", pid, code))
        if found.complete():
            elapsed_ns = int((found.ended_us - found.began_us) * 1000)
            return elapsed_ns, found.n_chunk * found.n_ctx, found.summary()
        if code != 0 or found.n_chunk is None:
            break  # it refused the job (too short a text, a bad option): running it again says the same
    if code == 0 and found.n_chunk is not None:
        message = ("llama-perplexity's log lost its last chunk in each of %d runs (llama.cpp drops unwritten log "
                   "lines at exit)" % PASS_TRIES)
    else:
        message = "llama-perplexity printed no result (%s)" % (
            "; ".join(e for e in found.errors if e) or "exit code %d" % code)
    raise RunnerFailure("quality", message, exit_code=code, stderr_tail=tail)
