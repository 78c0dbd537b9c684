"""What an ELF file needs, read with the struct module alone (a device that builds llama.cpp need not have
binutils): its machine, its NEEDED libraries, and the newest symbol version it needs of each family
(GLIBC_2.34 -> {"GLIBC": "2.34"}), as toolchain/elf.py reads them with readelf on the controller."""

from __future__ import annotations

import re
import struct

SHT_DYNAMIC, SHT_GNU_VERNEED, DT_NEEDED = 6, 0x6FFFFFFE, 1
# e_machine -> readelf's name, as build.json records it for a cross build
MACHINES = {3: "Intel 80386", 40: "ARM", 62: "Advanced Micro Devices X86-64", 183: "AArch64"}
_VERSION = re.compile(r"^([A-Za-z_+]+)_(\d+(?:\.\d+)*)$")


def _numbers(version):
    return tuple(int(part) for part in version.split("."))


def newest(versions):
    known = [v for v in versions if v]
    return max(known, key=_numbers) if known else None


def read_needs(path):
    """{"machine": ..., "needed": [...], "versions": {family: newest version}}; ValueError for no ELF file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF":
        raise ValueError("%s is not an ELF file" % path)
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    machine = struct.unpack_from(order + "H", data, 18)[0]
    # e_shoff, then e_shentsize and e_shnum, where each ELF class keeps them
    table = struct.unpack_from(order + ("Q" if wide else "I"), data, 0x28 if wide else 0x20)[0]
    entry_size, count = struct.unpack_from(order + "HH", data, 0x3A if wide else 0x2E)
    layout = order + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")
    # (type, offset, size, link, info) of each section
    headers = [struct.unpack_from(layout, data, table + index * entry_size) for index in range(count)]
    sections = [(h[1], h[4], h[5], h[6], h[7]) for h in headers]

    def text(strings, position):
        start = sections[strings][1] + position
        return data[start:data.index(b"\0", start)].decode("utf-8", "replace")

    needed, versions = [], {}
    for kind, offset, size, link, info in sections:
        if kind == SHT_DYNAMIC:
            pair = order + ("qQ" if wide else "iI")
            for position in range(offset, offset + size, struct.calcsize(pair)):
                tag, value = struct.unpack_from(pair, data, position)
                if tag == 0:
                    break
                if tag == DT_NEEDED:
                    needed.append(text(link, value))
        elif kind == SHT_GNU_VERNEED:
            position = offset
            for _ in range(info):
                _, aux_count, _, aux, following = struct.unpack_from(order + "HHIII", data, position)
                at = position + aux
                for _ in range(aux_count):
                    _, _, _, name, step = struct.unpack_from(order + "IHHII", data, at)
                    found = _VERSION.match(text(link, name))
                    if found:
                        family, version = found.groups()
                        versions[family] = newest([versions.get(family), version])
                    if not step:
                        break
                    at += step
                if not following:
                    break
                position += following
    return {"machine": MACHINES.get(machine, "machine %d" % machine), "needed": needed, "versions": versions}
