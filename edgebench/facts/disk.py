"""Free space where the workdir is (or will be), from `df -Pk`.

df rather than SFTP's statvfs: Termux's sftp-server has statvfs patched out.
The workdir usually does not exist before the first run, so the command walks
up to the nearest existing parent, which sits on the same filesystem the
workdir will be created on.
"""

from __future__ import annotations

import re
import shlex

from .base import fact

# `${d%/*}` rather than dirname: $(dirname) would eat trailing newlines of a name.
_COMMAND = """
d=$workdir
while [ ! -e "$d" ]; do
  case $d in
    */*) d=${d%/*}; d=${d:-/} ;;
    *) d=. ;;
  esac
done
if [ "$d" = "$workdir" ]; then e=yes; else e=no; fi
df -Pk -- "$d"
r=$?
printf 'workdir_exists=%s\\npath=%s' "$e" "$d"
exit "$r"
"""

# The numbers are right-aligned columns but the filesystem name and the mount
# point may both hold spaces; the mount point is last and starts with '/'.
_ROW = re.compile(r"^(?P<fs>.*?)\s+(?P<total>\d+)\s+(?P<used>\d+)\s+(?P<avail>\d+)\s+"
                  r"(?P<capacity>\d+%|-)\s+(?P<mount>/.*)$")
_TRAILER = re.compile(r"^workdir_exists=(yes|no)\npath=", re.MULTILINE)
_BLOCK_SIZE = re.compile(r"\b(\d+)(K?)-blocks\b")


def shell_path(workdir: str) -> str:
    """`workdir` as one quoted sh word; a leading `~` means the remote $HOME, the rest stays literal."""
    if "\0" in workdir:
        raise ValueError("a workdir cannot contain a NUL byte")
    # a trailing slash would make the reported path differ from the directory's name
    workdir = workdir.rstrip("/") or workdir[:1]
    if workdir in ("", "."):
        return "."
    if workdir == "~":
        return '"$HOME"'
    if workdir.startswith("~/"):
        return '"$HOME"/' + shlex.quote(workdir[2:])
    if workdir.startswith("~"):
        raise ValueError(f"~user paths are not supported: {workdir!r}")
    if workdir.startswith("/"):
        return shlex.quote(workdir)
    # "./" so that a relative name starting with '-' cannot read as an option
    return shlex.quote("./" + workdir)


@fact("disk", _COMMAND, argument="workdir", quote_argument=shell_path)
def parse_disk(stdout: str, exit_code: int) -> dict:
    trailer = _TRAILER.search(stdout)
    if not trailer:
        raise ValueError("no workdir_exists/path trailer")
    # the path is printed last and verbatim, so newlines in it survive
    path = stdout[trailer.end():]
    df_lines = stdout[:trailer.start()].splitlines()
    block = _block_size(df_lines)
    row = _row(df_lines)
    return {
        "path": path,
        "workdir_exists": trailer.group(1) == "yes",
        "filesystem": row["fs"],
        "mount": row["mount"],
        "total_bytes": int(row["total"]) * block,
        "used_bytes": int(row["used"]) * block,
        "available_bytes": int(row["avail"]) * block,
    }


def _block_size(lines: list[str]) -> int:
    # toybox treats -P and -k as exclusive and the last one wins, so read the unit
    # from the header rather than trusting the flags
    for line in lines:
        if line.startswith("Filesystem"):
            found = _BLOCK_SIZE.search(line)
            if found:
                return int(found.group(1)) * (1024 if found.group(2) else 1)
    return 1024


def _row(lines: list[str]) -> dict:
    rows = [line for line in lines if line.strip() and not line.startswith("Filesystem")]
    for i, line in enumerate(rows):
        # busybox puts a long filesystem name on a line of its own
        for candidate in (line, " ".join(rows[i:i + 2])):
            found = _ROW.match(candidate.strip())
            if found:
                return found.groupdict()
    raise ValueError("no filesystem row in df output")
