"""Terminal display: progress while models build and cells run, and result tables."""

from __future__ import annotations

from contextlib import contextmanager

from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgebench.execute import Observer
from edgebench.results.export import markdown_table


@contextmanager
def build_progress(console, label):
    """A byte progress bar; yields the `progress(done, total)` callback the synth builder takes."""
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(f"building {escape(label)}", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


class RunDisplay(Observer):
    def __init__(self, console, total: int):
        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total} cells"), TimeElapsedColumn(),
                                 TextColumn("{task.fields[last]}"), console=console, transient=True)
        self.task = self.progress.add_task("starting", total=total, last="")
        self.model_task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def _byte_bar(self, label):
        task = self.progress.add_task(escape(label), total=None, last="")

        def update(done, total):
            self.progress.update(task, completed=done, total=total, last=f"{done / 2**20:.0f} MiB")
            if total and done >= total:
                self.progress.remove_task(task)
        return update

    def model_progress(self, name):
        return self._byte_bar(f"building model {name}")

    def push_progress(self, name):
        return self._byte_bar(f"pushing {name}")

    def cell_started(self, cell):
        self.progress.update(self.task, description=escape(cell.id), last="")

    def sample(self, cell, sample):
        self.progress.update(self.task, last=f"rep {sample['rep'] + 1}: {sample['ts']:.2f} t/s")

    def cell_finished(self, cell, error):
        self.progress.advance(self.task)
        if error:
            self.console.print(f"[red]failed[/] {escape(cell.id)}: {escape(error)}")


def print_table(console, header, rows):
    """A rich table on a terminal; plain markdown when piped, where a wrapped grid helps nobody."""
    if not console.is_terminal:
        console.file.write("\n".join(markdown_table(header, rows)) + "\n")
        return
    table = Table(*header, show_lines=False)
    for row in rows:
        table.add_row(*(escape(str(c)) for c in row))
    console.print(table)
