"""YAML parsing that remembers where every key sits, so config errors can name the line.

``yaml.safe_load`` throws the source positions away. This module composes the node
graph instead (``yaml.compose`` keeps each node's start mark), turns it into plain
Python data, and records the 1-based line of every path it meets. A path is a tuple
of mapping keys and sequence indices, ``("tiers", 1, "threshold")``.

It parses text only; reading files is the caller's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from models.errors import CoreError

Path = tuple[str | int, ...]

_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class YamlSyntaxError(CoreError, ValueError):
    """The text is not valid YAML (or uses anchors/tags this loader does not accept)."""


def parse_with_lines(text: str) -> tuple[Any, dict[Path, int]]:
    """Parse YAML ``text`` into plain data plus a map from each path to its 1-based line.

    Parameters
    ----------
    text
        A YAML document.

    Returns
    -------
    data, lines
        The document as dicts, lists and scalars (resolved like ``yaml.safe_load``), and
        the line of every mapping key (for its value's path) and sequence item.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"invalid YAML: {exc}") from exc
    lines: dict[Path, int] = {}
    if node is None:
        return None, lines
    lines[()] = node.start_mark.line + 1
    return _convert(node, (), lines), lines


def _convert(node: yaml.Node, path: Path, lines: dict[Path, int]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in out:
                raise YamlSyntaxError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
            child = (*path, key)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, child, lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            child = (*path, i)
            lines[child] = item.start_mark.line + 1
            items.append(_convert(item, child, lines))
        return items
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise YamlSyntaxError(f"keys must be scalars (line {node.start_mark.line + 1})")
    return _CONSTRUCTOR.construct_object(node, deep=True)


def resolve(data: Any, loc: Sequence[str | int]) -> Path:
    """Map a validator's error location onto the data path it refers to.

    Pydantic locations can contain names that are not in the data (the tag of a
    discriminated union, for example); those are skipped. A missing key at the end
    is kept, so "tiers[0].name" names the field that is absent.
    """
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str):
            path.append(part)
        # anything else is a validator-internal name; skip it
    return tuple(path)


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def format_path(path: Path) -> str:
    """``("tiers", 1, "threshold")`` -> ``"tiers[1].threshold"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<document>"
