"""What every command module shares: exit codes and the options several commands take."""

from __future__ import annotations

from pathlib import Path

EXIT_OK, EXIT_FAILED_CELLS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 3, 130


def add_devices_dir(parser):
    parser.add_argument("--devices-dir", metavar="DIR",
                        help="where device profiles live (default: $EDGEBENCH_DEVICES or ./devices)")


def add_results_root(parser, what: str):
    parser.add_argument("-o", "--results", type=Path, default=Path("results"), metavar="DIR",
                        help=f"results root{(' ' + what) if what[0] != ';' else what} (default: results/)")


def local_device(args):
    """devices/local.yaml when there is one, else the built-in local device (this machine)."""
    from edgebench.config import find_device
    from edgebench.config.lookup import LOCAL

    return find_device(LOCAL, args.devices_dir)


def add_db_option(parser, what: str):
    parser.add_argument("--db", metavar="URL",
                        help=f"results database {what}: sqlite:///FILE or postgresql://user@host:port/db "
                             f"(default: $EDGEBENCH_DB)")
