"""The `edgebench` command line: one module per group of commands, each registering its own."""

from __future__ import annotations

import argparse
import sys

from edgebench import __version__
from edgebench.cli import bisect, database, devices, engine, examples, gate, models, runs
from edgebench.cli.common import EXIT_ERROR, EXIT_FAILED_CELLS, EXIT_INTERRUPTED, EXIT_OK
from edgebench.errors import EdgebenchError

__all__ = ["EXIT_ERROR", "EXIT_FAILED_CELLS", "EXIT_INTERRUPTED", "EXIT_OK", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgebench", description=(
        "Deploy quantized LLMs to edge devices and benchmark them the way llama-bench does."))
    parser.add_argument("--version", action="version", version=f"edgebench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (examples, runs, models, gate, bisect, database, devices, engine):
        group.register(commands)
    return parser


def main(argv=None) -> int:
    from rich.console import Console
    from rich.markup import escape

    args = build_parser().parse_args(argv)
    # soft wrap: an error or a failure list piped into a CI log keeps one line per item
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    try:
        return args.handler(args, console)
    except EdgebenchError as error:
        errors = Console(stderr=True, highlight=False, soft_wrap=True)
        errors.print(f"[red]error:[/] {escape(examples.explained(error))}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
