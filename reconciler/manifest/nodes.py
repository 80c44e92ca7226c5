"""The exact path: libyaml node trees, converted to data with every problem located.

Used for documents the fast reader declines, and lazily to find the position of a field
when a diagnostic must point at it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import yaml

from reconciler.manifest.scalars import MAP_TAG, SEQ_TAG, UnsupportedScalar, typed_value

PathPart = str | int


class NodeProblem(Exception):
    """A problem located at a node: (line, column) are 0-based, as in libyaml marks."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


def compose_documents(text: str) -> Iterator[yaml.Node]:
    """Yield the root node of every non-empty document in ``text`` (raises YAMLError)."""
    loader = yaml.CSafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yield node
    finally:
        loader.dispose()


def _where(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line, node.start_mark.column


def _tag_name(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def to_data(node: yaml.Node, problems: list[NodeProblem], offset: int = 0) -> Any:
    """Convert a node tree; duplicate keys and unsupported tags are appended to problems.

    ``offset`` is the document's first line in its file, for messages naming lines.
    """
    if isinstance(node, yaml.ScalarNode):
        try:
            return typed_value(node.tag, node.value)
        except UnsupportedScalar:
            message = f"unsupported YAML tag {_tag_name(node.tag)}"
            if node.tag.endswith(":merge"):
                message = "YAML merge keys (<<) are not supported"
            problems.append(NodeProblem(*_where(node), message))
            return node.value
        except ValueError:
            problems.append(NodeProblem(*_where(node), f"invalid {_tag_name(node.tag)} value"))
            return node.value
    if isinstance(node, yaml.SequenceNode):
        if node.tag != SEQ_TAG:
            problems.append(NodeProblem(*_where(node), f"unsupported YAML tag {node.tag}"))
        return [to_data(item, problems, offset) for item in node.value]
    if node.tag != MAP_TAG:
        problems.append(NodeProblem(*_where(node), f"unsupported YAML tag {node.tag}"))
    out: dict[str, Any] = {}
    seen: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            problems.append(NodeProblem(*_where(key_node), "mapping keys must be plain scalars"))
            continue
        key = str(key_node.value)
        if key == "<<" and key_node.tag.endswith(":merge"):
            problems.append(
                NodeProblem(*_where(key_node), "YAML merge keys (<<) are not supported")
            )
            continue
        if key in seen:
            first = seen[key].start_mark.line + offset + 1
            problems.append(
                NodeProblem(
                    *_where(key_node),
                    f"duplicate key '{key}' (first defined on line {first})",
                )
            )
        seen[key] = key_node
        out[key] = to_data(value_node, problems, offset)
    return out


def locate(root: yaml.Node, path: Sequence[PathPart], *, key: bool = False) -> yaml.Node:
    """The node at ``path`` (or its key node), else the deepest existing ancestor."""
    node = root
    for depth, part in enumerate(path):
        found: yaml.Node | None = None
        key_found: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    found, key_found = value_node, key_node
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            found = node.value[part]
        if found is None:
            return node
        if key and depth == len(path) - 1 and key_found is not None:
            return key_found
        node = found
    return node
