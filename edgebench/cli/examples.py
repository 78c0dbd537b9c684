"""`edgebench init`: the example profiles and device profiles, written where the user works."""

from __future__ import annotations

from pathlib import Path

from edgebench.cli.common import EXIT_OK
from edgebench.errors import EdgebenchError, ProfileNotFound
from edgebench.examples import is_shipped_profile

# the one example whose model edgebench cannot build: it measures the user's own ONNX model
ONNX_MODEL_HINT = ("profiles/onnx-sweep.yaml measures your own ONNX model: export it to models/model.onnx "
                   "(torch.onnx.export, or optimum-cli export onnx), then make its int8 twin with "
                   "`edgebench quantize models/model.onnx --int8 -o models/model.int8.onnx`")


def register(commands) -> None:
    init = commands.add_parser(
        "init", help="write the example device profiles and benchmark profiles into a folder (default: here)",
        description="Write the example benchmark profiles (profiles/*.yaml, the quickstart among them) and "
                    "device profiles (devices/local.yaml, and rpi5, pixel8, jetson-orin-nano and laptop to "
                    "edit for your own devices), which ship with edgebench, into DIR, so that `edgebench run "
                    "profiles/quickstart.yaml` works after a plain pip install. Files already there are kept.")
    init.add_argument("dir", type=Path, nargs="?", default=Path("."), metavar="DIR",
                      help="where to write them (default: the current folder)")
    init.add_argument("--force", action="store_true", help="overwrite example files that already exist")
    init.set_defaults(handler=cmd_init)


def explained(error: EdgebenchError) -> str:
    """The error's sentence; for a missing profile that `init` would write, how to get it. After a plain
    `pip install` the README's first command lands here."""
    if isinstance(error, ProfileNotFound) and is_shipped_profile(error.file):
        return (f"{error}; {Path(error.file).name} is one of the example profiles that ship with edgebench: "
                f"`edgebench init` writes them (and devices/local.yaml) into the current folder")
    return str(error)


def cmd_init(args, console) -> int:
    from rich.markup import escape

    from edgebench.examples import write_examples

    written, kept = write_examples(args.dir, force=args.force)
    for path in written:
        console.print(f"wrote {escape(str(path))}")
    for path in kept:
        console.print(f"[yellow]kept {escape(str(path))}: it already exists (--force overwrites it)[/]")
    console.print(f"{len(written)} file(s) written, {len(kept)} kept")
    where = "" if args.dir.resolve() == Path.cwd().resolve() else f"cd {escape(str(args.dir))} && "
    console.print(f"next: {where}edgebench run profiles/quickstart.yaml")
    console.print(ONNX_MODEL_HINT)
    return EXIT_OK
