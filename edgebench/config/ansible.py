"""Device profiles from an Ansible YAML inventory (`edgebench devices import-ansible`).

Reading is pure: `read_inventory` turns an inventory into validated device profiles the way
Ansible reads it. `all:` and other top-level groups, `hosts:` (an entry may be empty),
nested `children:` and `vars:`; host ranges (`web[01:03]`, `[a:f]`, `[0:10:2]`) and
`host:port` keys; variables merged with Ansible's precedence (`all`, then groups by depth,
`ansible_group_priority` and name, so children win over parents, then host vars). Group
names become tags (not `all` or `ungrouped`), and a host gets the tags of its groups' parents
too, as Ansible's `group_names` does.

Only connection settings are imported. ansible_host/ansible_ssh_host -> host,
ansible_port/ansible_ssh_port -> port, ansible_user/ansible_ssh_user -> user,
ansible_ssh_private_key_file/ansible_private_key_file -> identity,
ansible_python_interpreter -> python, and ansible_connection: local -> transport local.
Passwords are never written; a warning names them and their hosts.

A host name must already be a valid device name (it names the profile file and directories
on the device). There is no renaming: a mapping could collide or surprise, while Ansible's own
fix is one line (an alias with the address in `ansible_host`), and the error says so.

Writing (`plan_profiles`, `write_profiles`) renders each profile with a comment header, reads
the text back through the device loader before anything is written, and writes each file
atomically. An existing profile is kept unless `force`.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgebench.config.device import NAME_RULE, DeviceProfile, device_from, parse_device
from edgebench.config.fields import Where, describe, read_value, reject_unknown
from edgebench.config.lookup import SUFFIXES
from edgebench.config.yamlsource import Document, load_yaml, parse_yaml
from edgebench.errors import ConfigError, EdgebenchError
from edgebench.outputs import write_whole

SECTIONS = ("children", "hosts", "vars")
IMPLICIT_GROUPS = ("all", "ungrouped")

#: device key -> the Ansible variables that set it: the name, then its old aliases
CONNECTION_VARS = {
    "host": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "identity": ("ansible_ssh_private_key_file", "ansible_private_key_file"),
    "python": ("ansible_python_interpreter",),
}
#: an old alias counts as its variable: the one set closest to the host wins (the current name
#: when one scope sets both), rather than an order that has changed between Ansible versions
ALIASES = {alias: names[0] for names in CONNECTION_VARS.values() for alias in names[1:]}
SSH_CONNECTIONS = ("ssh", "smart", "paramiko", "paramiko_ssh")
#: interpreter discovery modes rather than paths: leave `python` to edgebench's default
AUTO_PYTHON = ("auto", "auto_silent", "auto_legacy", "auto_legacy_silent")
#: so that `[0:99999999]` is a mistake reported, not a machine filled
MAX_RANGE = 10_000

_NOT_IMPORTED = (
    (lambda var: var.startswith("ansible_") and "pass" in var,
     "passwords are never written to device profiles: use an SSH key (identity) or ssh-agent"),
    (lambda var: var in ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args"),
     "extra ssh arguments are not imported: set proxy_jump or ssh_config_host in the profile by hand"),
)


class _Vaulted:
    """A `!vault` value: encrypted, so it can be ignored but never imported."""


class _Unsafe(str):
    """A `!unsafe` value: text Ansible does not template."""


class _InventoryLoader(yaml.SafeLoader):
    pass


_InventoryLoader.add_constructor("!vault", lambda loader, node: _Vaulted())
_InventoryLoader.add_constructor("!unsafe", lambda loader, node: _Unsafe(loader.construct_scalar(node)))


@dataclass(frozen=True)
class ImportedHost:
    name: str
    data: dict[str, Any]       # the profile's keys and values, in the order they are written
    device: DeviceProfile      # `data` as edgebench reads it: the written file must read back the same


@dataclass(frozen=True)
class Inventory:
    file: str
    hosts: tuple[ImportedHost, ...]
    warnings: tuple[str, ...]


def load_inventory(path: str | os.PathLike) -> Inventory:
    return read_inventory(load_yaml(path, _InventoryLoader))


def parse_inventory(text: str, file: str = "<string>") -> Inventory:
    return read_inventory(parse_yaml(text, file, _InventoryLoader))


def read_inventory(doc: Document) -> Inventory:
    return _Reader(doc).read()


# ---- reading -------------------------------------------------------------------------------

@dataclass
class _Var:
    value: Any
    where: Where
    given_name: str | None = None  # when the file does not spell it out (`host:2222`)

    @property
    def name(self) -> str:
        return self.given_name or str(self.where.path[-1])


@dataclass
class _Group:
    name: str
    parents: list[str] = field(default_factory=list)
    vars: dict[str, _Var] = field(default_factory=dict)


@dataclass
class _Host:
    name: str
    where: Where               # where the host first appears
    groups: list[str] = field(default_factory=list)
    vars: dict[str, _Var] = field(default_factory=dict)


class _Reader:
    def __init__(self, doc: Document):
        self.doc = doc
        self.groups: dict[str, _Group] = {"all": _Group("all")}
        self.hosts: dict[str, _Host] = {}
        self.warnings: list[str] = []
        self._depths: dict[str, int] = {}
        self._merged: dict[str, dict[str, _Var]] = {}  # host -> every variable that applies to it

    def read(self) -> Inventory:
        root = Where(self.doc)
        if "plugin" in self.doc.data:
            raise root.child("plugin").error(
                "this is an inventory plugin's configuration, not a YAML inventory; import the hosts it "
                "finds with `ansible-inventory -i FILE --list --yaml > hosts.yml` first")
        for name, body in self.doc.data.items():
            self._group(name, body, root.child(name), parent=None)
        if not self.hosts:
            raise ConfigError("no hosts in this inventory (hosts are listed under a group's `hosts:`)",
                              file=self.doc.file, line=1)
        imported = [device for host in self.hosts.values() if (device := self._import(host))]
        _check_case_clash(self.hosts)
        return Inventory(self.doc.file, tuple(imported), tuple(self.warnings + self._ignored_warnings()))

    def _group(self, name: str, body: Any, where: Where, parent: _Group | None) -> None:
        group = self.groups.setdefault(name, _Group(name))
        if parent is not None:
            self._link(parent, group, where)
        if body is None:
            return
        if not isinstance(body, dict):
            raise where.error(f"group {name!r} must be a mapping of hosts, children and vars (or empty), "
                              f"got {describe(body)}")
        reject_unknown(where, body, SECTIONS)
        for section, entries in body.items():
            at = where.child(section)
            if isinstance(entries, str) and section != "vars":
                entries = {entries: None}  # Ansible's shorthand: `hosts: web1`
            if entries is None:
                continue
            if not isinstance(entries, dict):
                raise at.error(f"{section} must be a mapping of names (each with its settings, or empty), "
                               f"got {describe(entries)}")
            for key, value in entries.items():
                if section == "vars":
                    self._set(group.vars, _Var(value, at.child(key)))
                elif section == "children":
                    self._group(key, value, at.child(key), parent=group)
                else:
                    self._hosts(key, value, at.child(key), group)

    def _link(self, parent: _Group, child: _Group, where: Where) -> None:
        if child.name == "all":
            raise where.error("'all' holds every group and host: it cannot be a child group")
        if child.name == parent.name or child.name in self._ancestors(parent.name):
            raise where.error(f"group {child.name!r} under {parent.name!r} makes a loop of child groups")
        if parent.name not in child.parents:
            child.parents.append(parent.name)

    def _hosts(self, pattern: str, host_vars: Any, where: Where, group: _Group) -> None:
        if host_vars is not None and not isinstance(host_vars, dict):
            raise where.error(f"host {pattern!r} must have a mapping of variables (or nothing), "
                              f"got {describe(host_vars)}")
        pattern, port = _split_port(pattern)
        for name in expand_host_pattern(pattern, where):
            host = self.hosts.setdefault(name, _Host(name, where))
            if group.name not in host.groups:
                host.groups.append(group.name)
            if port is not None:
                host.vars["ansible_port"] = _Var(port, where, "ansible_port")
            for key, value in (host_vars or {}).items():
                self._set(host.vars, _Var(value, where.child(key)))

    def _set(self, scope: dict[str, _Var], var: _Var) -> None:
        name = ALIASES.get(var.name, var.name)
        held = scope.get(name)
        if held is not None and held.name != var.name:  # the name and its old alias, side by side
            current, alias = (held, var) if held.name == name else (var, held)
            if current.value != alias.value:
                self.warnings.append(f"{self.doc.file}:{alias.where.line}: {alias.name} is ignored: {name} is "
                                     f"set beside it (line {current.where.line})")
            var = current
        scope[name] = var

    # -- one host's settings

    def _import(self, host: _Host) -> ImportedHost | None:
        groups = self._groups_of(host)
        merged: dict[str, _Var] = {}
        for name in sorted(groups, key=lambda g: (self._depth(g), self._priority(g), g)):
            merged.update(self.groups[name].vars)
        merged.update(host.vars)
        imported = self._profile(host, merged, sorted(g for g in groups if g not in IMPLICIT_GROUPS))
        if imported:
            self._merged[host.name] = merged
        return imported

    def _profile(self, host: _Host, merged: dict[str, _Var], tags: list[str]) -> ImportedHost | None:
        complaint = NAME_RULE(host.name)
        if complaint:
            raise host.where.error(
                f"host {host.name!r} cannot be a device name ({complaint}); give it an alias that can, "
                f"with the address in ansible_host (`myhost: {{ansible_host: {host.name}}}`)")
        data: dict[str, Any] = {"name": host.name, "transport": "ssh"}
        origin: dict[str, tuple[str, Where]] = {}
        connection = merged.get("ansible_connection")
        if connection is not None and connection.value is not None:
            kind = read_value(connection.where, _plain(connection, host), str).removeprefix("ansible.builtin.")
            if kind == "local":
                data["transport"] = "local"
            elif kind not in SSH_CONNECTIONS:
                self.warnings.append(f"{self.doc.file}:{connection.where.line}: skipped host {host.name!r}: "
                                     f"ansible_connection {kind!r} is neither ssh nor local")
                return None
            origin["transport"] = ("ansible_connection", connection.where)
        if tags:
            data["tags"] = tags
        for key, names in CONNECTION_VARS.items():
            if data["transport"] == "local" and key != "python":
                continue  # Ansible ignores them for a local connection; edgebench refuses them
            var = merged.get(names[0])
            if var is None or var.value is None:
                if key == "host" and data["transport"] == "ssh":
                    data["host"] = host.name  # as Ansible, which connects to the inventory name
                continue
            value = _port(var, host) if key == "port" else _plain(var, host)
            if key == "python" and value in AUTO_PYTHON:
                continue
            data[key] = value
            origin[key] = (var.name, var.where)
        return ImportedHost(host.name, data, self._validate(host, data, origin))

    def _validate(self, host: _Host, data: dict[str, Any], origin: dict[str, tuple[str, Where]]) -> DeviceProfile:
        """The device loader's own checks, with errors placed at the variable in the inventory."""
        lines = {(): host.where.line, **{(key,): where.line for key, (_, where) in origin.items()}}
        try:
            return device_from(Document(self.doc.file, data, lines))
        except ConfigError as error:
            key = re.split(r"[.\[]", error.key or "")[0]
            name, where = origin.get(key, (None, host.where))
            what = f"{name} of host {host.name!r}" if name else f"host {host.name!r}, device key {key!r}"
            raise where.error(f"{what}: {error.reason}") from None

    # -- groups

    def _groups_of(self, host: _Host) -> set[str]:
        direct = [g for g in host.groups if g not in IMPLICIT_GROUPS] or ["ungrouped"]
        groups = {"all"}
        for name in direct:
            if name in self.groups:
                groups |= {name, *self._ancestors(name)}
        return groups

    def _ancestors(self, name: str) -> set[str]:
        found: set[str] = set()
        todo = list(self.groups[name].parents)
        while todo:
            parent = todo.pop()
            if parent not in found:
                found.add(parent)
                todo.extend(self.groups[parent].parents)
        return found

    def _depth(self, name: str) -> int:
        """Distance from `all` along the longest chain of parents (a top-level group is 1)."""
        if name == "all":
            return 0
        if name not in self._depths:
            self._depths[name] = 1 + max((self._depth(p) for p in self.groups[name].parents), default=0)
        return self._depths[name]

    def _priority(self, name: str) -> int:
        var = self.groups[name].vars.get("ansible_group_priority")
        return 1 if var is None or var.value is None else read_value(var.where, var.value, int)

    def _ignored_warnings(self) -> list[str]:
        """One line per kind of setting left out and per set of variables, naming the hosts."""
        out = []
        for matches, reason in _NOT_IMPORTED:
            by_vars: dict[tuple[str, ...], list[str]] = {}
            for host, merged in self._merged.items():
                names = tuple(sorted(v for v in merged if matches(v)))
                if names:
                    by_vars.setdefault(names, []).append(host)
            for names, hosts in by_vars.items():
                out.append(f"not imported for host{'s' if len(hosts) > 1 else ''} {', '.join(hosts)}: "
                           f"{', '.join(names)} ({reason})")
        return out


def _check_case_clash(hosts: dict[str, _Host]) -> None:
    # on a case-insensitive file system `Pi.yaml` and `pi.yaml` are one file
    seen: dict[str, _Host] = {}
    for host in hosts.values():
        other = seen.setdefault(host.name.lower(), host)
        if other is not host:
            raise host.where.error(f"hosts {other.name!r} (line {other.where.line}) and {host.name!r} differ only "
                                   f"in case: their profile files would be the same on some file systems")


def _plain(var: _Var, host: _Host) -> Any:
    """A variable's value as written, if edgebench can use it as it stands."""
    if isinstance(var.value, _Vaulted):
        raise var.where.error(f"{var.name} of host {host.name!r} is encrypted with ansible-vault, which edgebench "
                              f"cannot read: write it out, or set it in the profile by hand")
    if isinstance(var.value, _Unsafe):
        return str(var.value)
    if isinstance(var.value, str) and ("{{" in var.value or "{%" in var.value):
        raise var.where.error(f"{var.name} of host {host.name!r} is a Jinja template, which edgebench does not "
                              f"evaluate: write the value out")
    return var.value


def _port(var: _Var, host: _Host) -> Any:
    value = _plain(var, host)
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value  # Ansible takes "2222" too


def _split_port(pattern: str) -> tuple[str, int | None]:
    """`host:2222` -> (`host`, 2222), as Ansible reads a host key. Colons inside a range do not
    count; an IPv6 address stays whole (and is then refused as a device name)."""
    match = re.fullmatch(r"((?:[^:\[\]]|\[[^\]]*\])+):(\d+)", pattern)
    return (match.group(1), int(match.group(2))) if match else (pattern, None)


def expand_host_pattern(pattern: str, where: Where) -> list[str]:
    """Ansible's host ranges: `db[01:03]` -> db01 db02 db03 (a leading zero pads to the width
    of the bounds), `node-[a:c]`, `[0:10:2]` (a step); several ranges multiply."""
    match = re.search(r"\[([^\[\]]*)\]", pattern)
    if match is None:
        if "[" in pattern or "]" in pattern:
            raise where.error(f"host {pattern!r} has an unbalanced '[' or ']'")
        return [pattern]
    head, tail = pattern[:match.start()], pattern[match.end():]
    items = _range_items(match.group(1), pattern, where)
    if len(items) > MAX_RANGE:
        raise where.error(f"host range {pattern!r} makes {len(items)} hosts (at most {MAX_RANGE})")
    return [host for item in items for host in expand_host_pattern(head + item + tail, where)]


def _range_items(spec: str, pattern: str, where: Where) -> list[str]:
    def bad(why: str) -> ConfigError:
        return where.error(f"host range {pattern!r}: {why}")

    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise bad("write [begin:end] or [begin:end:step]")
    begin, end, step_text = bounds[0] or "0", bounds[1], bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise bad("the end is missing")
    if not step_text.isdigit() or int(step_text) < 1:
        raise bad(f"the step must be a whole number of at least 1, got {step_text!r}")
    step = int(step_text)
    letters = string.ascii_letters
    if len(begin) == len(end) == 1 and begin in letters and end in letters:
        if letters.index(begin) > letters.index(end):
            raise bad("the beginning comes after the end")
        return list(letters[letters.index(begin):letters.index(end) + 1:step])
    if not (begin.isdigit() and end.isdigit()):
        raise bad("bounds must be two numbers or two letters")
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
    if width and len(end) != width:
        raise bad("a zero-padded range needs both bounds of the same width")
    if int(begin) > int(end):
        raise bad("the beginning comes after the end")
    return [str(i).zfill(width) for i in range(int(begin), int(end) + 1, step)]


# ---- writing -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedProfile:
    host: ImportedHost
    path: Path
    text: str
    exists: bool               # a profile of that name is already there (kept unless forced)


def render_profile(host: ImportedHost, inventory_file: str) -> str:
    source = "".join(c if c.isprintable() else repr(c)[1:-1] for c in inventory_file)
    header = (f"# Imported from the Ansible inventory {source} (host {host.name})\n"
              f"# by `edgebench devices import-ansible`. Passwords are never imported.\n")
    return header + yaml.dump(host.data, Dumper=_ProfileDumper, sort_keys=False, default_flow_style=False,
                              allow_unicode=True, width=1_000_000)


class _ProfileDumper(yaml.SafeDumper):
    """Block mappings with `tags: [a, b]` on one line, like the shipped profiles."""


_ProfileDumper.add_representer(
    list, lambda dumper, items: dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=True))


def plan_profiles(inventory: Inventory, directory: Path) -> list[PlannedProfile]:
    """Each host's file and text, every text read back through the device loader first: a
    profile that would not load back exactly as imported stops the import before any write."""
    planned = []
    for host in inventory.hosts:
        existing = [directory / f"{host.name}{suffix}" for suffix in SUFFIXES
                    if (directory / f"{host.name}{suffix}").is_file()]
        path = existing[0] if existing else directory / f"{host.name}.yaml"
        text = render_profile(host, inventory.file)
        loaded = parse_device(text, file=str(path))
        if dataclasses.replace(loaded, source="") != dataclasses.replace(host.device, source=""):
            raise EdgebenchError(f"{path}: the profile imported for host {host.name!r} does not read back as "
                                 f"imported; nothing was written")
        planned.append(PlannedProfile(host, path, text, exists=bool(existing)))
    return planned


def write_profiles(planned: list[PlannedProfile], *, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write the planned profiles; returns (written, skipped because a profile was already there)."""
    written, skipped = [], []
    for directory in {item.path.parent for item in planned}:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgebenchError(f"cannot create the devices directory {directory}: {exc}") from exc
    for item in planned:
        if item.exists and not force:
            skipped.append(item.path)
            continue
        try:
            _write_atomic(item.path, item.text, replace=force)
        except FileExistsError:
            skipped.append(item.path)  # appeared since planning: still not ours to overwrite
            continue
        written.append(item.path)
    return written, skipped


def _write_atomic(path: Path, text: str, *, replace: bool) -> None:
    """Readers see the old file or the whole new one. Without `replace`, an existing file is
    never touched: the final name is a hard link, which fails if the name is taken."""
    try:
        write_whole(path, text, sync=True, exclusive=not replace)
    except FileExistsError:
        raise
    except OSError as exc:
        what = "no space left" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        raise EdgebenchError(f"cannot write device profile {path}: {what}") from exc
