"""Terminal display: progress while models build and cells run, and result tables."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from edgebench.results.export import markdown_table
from edgebench.sweep.device_worker import WAITING_FOR_LOCK, Observer

# a device in a queue: another controller's lock, or a labgrid reservation
WAITING = "waiting for "


class _AmountColumn(ProgressColumn):
    """Bytes written, or tensors quantized once the builder has moved on to quantizing."""

    def __init__(self):
        super().__init__()
        self.bytes = DownloadColumn()

    def render(self, task):
        if task.fields.get("unit") == "tensors":
            return Text(f"{task.completed:.0f}/{task.total or 0:.0f} tensors", style="progress.download")
        return self.bytes.render(task)


@contextmanager
def build_progress(console, label):
    """A progress bar labelled with what is going on ("building X", "pushing X to Y"); yields the
    `progress(done, total, unit="bytes")` callback the synth builder and the transports take: bytes
    while a file is written or sent, tensors while llama.cpp quantizes (then "building" reads
    "quantizing")."""
    with Progress(TextColumn("{task.description}"), BarColumn(), _AmountColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(escape(label), total=None, unit="bytes")
        quantizing = "quantizing" + label[len("building"):] if label.startswith("building") else label

        def update(done, total, unit="bytes"):
            description = quantizing if unit == "tensors" else label
            bar.update(task, completed=done, total=total, unit=unit, description=escape(description))
        yield update


class _DeviceLine:
    def __init__(self):
        self.state, self.cell, self.temp_c, self.done, self.failed = "waiting", "", None, 0, 0


class RunDisplay(Observer):
    """A live view while a run goes on: overall progress, then one line per device with what it
    is doing, its temperature and its cells done and failed."""

    def __init__(self, console, total: int):
        self.console, self.total = console, total
        self.devices: dict[str, _DeviceLine] = {}
        self.bytes: dict[str, str] = {}
        self.started = time.monotonic()
        self.live = Live(self, console=console, transient=True, refresh_per_second=4)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        return self.live.__exit__(*exc)

    def _line(self, device: str) -> _DeviceLine:
        return self.devices.setdefault(device, _DeviceLine())

    def __rich__(self):
        done = sum(d.done for d in self.devices.values())
        failed = sum(d.failed for d in self.devices.values())
        elapsed = int(time.monotonic() - self.started)
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("device", "now", "°C", "done", "failed"):
            table.add_column(column, justify="right" if column in ("°C", "done", "failed") else "left")
        for name, line in sorted(list(self.devices.items())):
            now = self.bytes.get(name) or line.state
            table.add_row(escape(name), escape(now), "" if line.temp_c is None else f"{line.temp_c:.1f}",
                          str(line.done), f"[red]{line.failed}[/]" if line.failed else "0")
        head = f"{done + failed}/{self.total} cells · {failed} failed · {elapsed // 60}:{elapsed % 60:02d}"
        models = [escape(v) for k, v in list(self.bytes.items()) if k not in self.devices]
        return Group(head, *models, table)

    def _bytes(self, key: str, label: str, quantizing: str = ""):
        def update(done, total, unit="bytes"):
            share = f" {100 * done / total:.0f}%" if total else ""
            amount = f"{done}/{total} tensors" if unit == "tensors" else f"{done / 2**20:.0f} MiB"
            self.bytes[key] = f"{quantizing if unit == 'tensors' else label}{share} ({amount})"
            if total and done >= total:
                self.bytes.pop(key, None)
        return update

    def model_progress(self, name):
        return self._bytes(name, f"building {name}", quantizing=f"quantizing {name}")

    def push_progress(self, device, name):
        return self._bytes(device, f"pushing {name}")

    def device_state(self, device, state):
        line = self._line(device)
        if state.startswith(WAITING_FOR_LOCK) and not line.state.startswith(WAITING_FOR_LOCK):
            # a line of its own, not only the live view's: piped output (CI) has no live view
            self.console.print(f"{escape(device)}: {escape(state)}; this run goes on there once that "
                               f"controller lets go", soft_wrap=True)
        elif state.startswith(WAITING) and not line.state.startswith(WAITING):
            # a shared device's queue (a labgrid reservation): said once, the count then moves in the live view
            self.console.print(f"{escape(device)}: {escape(state)}", soft_wrap=True)
        line.state = state

    def note(self, text):
        self.console.print(escape(text), soft_wrap=True)

    def temperature(self, device, temp_c):
        self._line(device).temp_c = temp_c

    def cell_started(self, cell):
        self._line(cell.device.name).cell = cell.id

    def sample(self, cell, sample):
        line = self._line(cell.device.name)
        line.state = f"{cell.model.name} {cell.test.name} rep {sample.rep + 1}: {sample.ts:.2f} t/s"

    def evicted(self, device, evicted):
        for line in eviction_lines(device, evicted):
            self.console.print(f"[yellow]{escape(line)}[/]")

    def cell_finished(self, cell, error):
        line = self._line(cell.device.name)
        if error:
            line.failed += 1
            self.console.print(f"[red]failed[/] {escape(cell.id)}: {escape(error)}")
        else:
            line.done += 1


def eviction_lines(device: str, evicted) -> list[str]:
    """What a push removed from the device's model cache to make room, so no model vanishes unsaid."""
    return [f"evicted {e.file or 'a model'} ({e.size / 2**20:.1f} MiB, sha256 {e.sha256[:12]}) from {device}'s "
            f"model cache to stay under its max_cache_gb" for e in evicted]


def print_table(console, header, rows):
    """A rich table on a terminal; plain markdown when piped, where a wrapped grid helps nobody.
    A table wider than the terminal would cut every value short, so then each row is printed as
    its own block of `column  value` lines instead."""
    if not console.is_terminal:
        console.file.write("\n".join(markdown_table(header, rows)) + "\n")
        return
    table = Table(*header, show_lines=False)
    for row in rows:
        table.add_row(*(escape(str(c)) for c in row))
    natural = Measurement.get(console, console.options.update_width(sys.maxsize), table).maximum
    if len(header) <= 2 or natural <= console.width:
        console.print(table)
        return
    for number, row in enumerate(rows):
        block = Table.grid(padding=(0, 2))
        block.add_column(style="bold", no_wrap=True)
        block.add_column(overflow="fold")
        for name, value in zip(header, row):
            if str(value) != "":
                block.add_row(escape(str(name)), escape(str(value)))
        if number:
            console.print()
        console.print(block)
