"""Load a YAML config file into plain Python values, remembering the line of every key.

PyYAML's `safe_load` throws positions away and silently lets a later duplicate key win,
so we compose the node graph ourselves: mappings and sequences are walked here (that is
where duplicates and line numbers live), scalars are still resolved by SafeLoader so
`1`, `1.5`, `true` and `null` mean what YAML says they mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from edgebench.errors import ConfigError

#: a position inside a document: mapping keys and list indices, outermost first
KeyPath = tuple[Union[str, int], ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass(frozen=True)
class Document:
    """A parsed config file: its top-level mapping and the line (1-based) of every key and list item."""

    file: str
    data: dict[str, Any]
    lines: Mapping[KeyPath, int] = field(repr=False)

    def line(self, path: KeyPath) -> int:
        """Line of `path`, or of its nearest ancestor that appears in the file (a missing key
        is reported where its parent mapping starts)."""
        while path not in self.lines:
            path = path[:-1]
        return self.lines[path]


def load_yaml(path: str | Path, loader_class: type[yaml.SafeLoader] = yaml.SafeLoader) -> Document:
    """Read and parse a config file; every failure is a ConfigError naming the file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=file) from None
    return parse_yaml(text, file, loader_class)


def parse_yaml(text: str, file: str = "<string>",
               loader_class: type[yaml.SafeLoader] = yaml.SafeLoader) -> Document:
    """`loader_class`: a SafeLoader subclass, for files with tags of their own (Ansible's `!vault`)."""
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise ConfigError("file is empty; expected a mapping of settings", file=file, line=1)
        if not isinstance(root, MappingNode):
            raise ConfigError(f"top level must be a mapping of key: value settings, "
                              f"got {_node_kind(root)}", file=file, line=_line(root))
        lines: dict[KeyPath, int] = {}
        data = _Builder(loader, file, lines).value(root, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = ": ".join(filter(None, (exc.context, exc.problem)))
        raise ConfigError(f"malformed YAML: {reason}", file=file,
                          line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", file=file) from None
    finally:
        loader.dispose()
    return Document(file=file, data=data, lines=lines)


@dataclass
class _Builder:
    loader: yaml.SafeLoader
    file: str
    lines: dict[KeyPath, int]

    def value(self, node: Node, path: KeyPath) -> Any:
        self.lines.setdefault(path, _line(node))
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            self._plain_tag(node, _SEQ_TAG, path)
            return [self.value(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, TypeError) as exc:
            # SafeLoader lets these escape for values that look typed but are not (`2001-13-45`)
            raise ConfigError(f"cannot read value {node.value!r}: {exc}; quote it if it is text",
                              file=self.file, line=_line(node), key=dotted(path) or None) from None

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        self._plain_tag(node, _MAP_TAG, path)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key in out:
                raise ConfigError(f"duplicate key {key!r} (first set on line "
                                  f"{self.lines[path + (key,)]}); YAML would silently keep only the last",
                                  file=self.file, line=_line(key_node), key=dotted(path + (key,)))
            # the key's own line, not the value's: a block value starts on the next line
            self.lines[path + (key,)] = _line(key_node)
            out[key] = self.value(value_node, path + (key,))
        return out

    def _key(self, node: Node, path: KeyPath) -> str:
        if node.tag == "tag:yaml.org,2002:merge":
            raise ConfigError("merge keys (<<) are not supported; write the settings out",
                              file=self.file, line=_line(node), key=dotted(path) or None)
        key = self._scalar(node, path) if isinstance(node, ScalarNode) else None
        if not isinstance(key, str):
            shown = node.value if isinstance(node, ScalarNode) else _node_kind(node)
            raise ConfigError(f"key {shown!r} is not a string (YAML reads yes/no/on/off and numbers "
                              f"as other types; quote it)", file=self.file, line=_line(node),
                              key=dotted(path) or None)
        return key

    def _plain_tag(self, node: Node, expected: str, path: KeyPath) -> None:
        # `!!set`, `!!omap` and custom tags compose to mappings/sequences too; none belong in a config
        if node.tag != expected:
            raise ConfigError(f"unsupported YAML tag {node.tag!r}", file=self.file,
                              line=_line(node), key=dotted(path) or None)


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _node_kind(node: Node) -> str:
    return {SequenceNode: "a list", MappingNode: "a mapping"}.get(type(node), f"a scalar ({node.value!r})")


def dotted(path: KeyPath) -> str:
    """`("models", 2, "sha256")` -> `models[2].sha256`: the key path as messages show it."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
