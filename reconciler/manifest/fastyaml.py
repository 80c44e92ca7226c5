"""A fast reader for the plain block-style YAML subset most manifests are written in.

It handles block mappings, block sequences (of scalars or mappings, indented or not),
plain, simple single- and double-quoted scalars, ``[]``/``{}`` and comments. Anything else
(anchors, tags, flow collections, block scalars, escapes, tabs, duplicate keys, odd
indentation) raises :class:`Fallback`, and the caller parses that document with libyaml,
which is always correct and reports errors with positions. For the subset it accepts it
returns exactly what libyaml + PyYAML's resolver would, about three times faster.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.manifest.scalars import STR_TAG, UnsupportedScalar, plain_tag, typed_value


class Fallback(Exception):
    """This document needs the full libyaml parser."""


_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_BAD_FIRST = frozenset(",[]{}#&*!|>'\"%@`")
_SAFE_KEYS: set[str] = set()
_VALUES: dict[str, Any] = {}
_VALUE_CACHE_LIMIT = 200_000


def _key(text: str) -> str:
    if text in _SAFE_KEYS:
        return text
    if _KEY_RE.fullmatch(text) is None or plain_tag(text) != STR_TAG:
        raise Fallback
    _SAFE_KEYS.add(text)
    return text


def _plain(text: str) -> Any:
    try:
        return _VALUES[text]
    except KeyError:
        pass
    first = text[0]
    if (
        first in _BAD_FIRST
        or (first in "-?:" and (len(text) == 1 or text[1] == " "))
        or ": " in text
        or text.endswith(":")
        or not text.isprintable()
    ):
        raise Fallback
    try:
        value = typed_value(plain_tag(text), text)
    except (UnsupportedScalar, ValueError) as exc:
        raise Fallback from exc
    if len(_VALUES) < _VALUE_CACHE_LIMIT:
        _VALUES[text] = value
    return value


def _value(text: str) -> Any:
    """The value after ``key: `` or ``- `` (already stripped of surrounding spaces)."""
    first = text[0]
    if first == "'" or first == '"':
        close = text.find(first, 1)
        if close < 0:
            raise Fallback
        inner = text[1:close]
        tail = text[close + 1 :]
        if tail and (tail[0] != " " or tail.lstrip(" ")[:1] != "#"):
            raise Fallback
        if (first == '"' and "\\" in inner) or not inner.isprintable():
            raise Fallback
        return inner
    hash_at = text.find(" #")
    if hash_at >= 0:
        text = text[:hash_at].rstrip(" ")
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return _plain(text)


_SKIP, _PAIR, _OPEN, _ITEM, _ITEM_PAIR, _ITEM_OPEN = range(6)
_EMPTY_LIST = object()
_EMPTY_DICT = object()
_LINES: dict[str, tuple[int, int, str, Any, int]] = {}
_BLANK = (-1, _SKIP, "", None, 0)


def _fresh(value: Any) -> Any:
    if value is _EMPTY_LIST:
        return []
    if value is _EMPTY_DICT:
        return {}
    return value


def _field(body: str) -> tuple[bool, str, Any]:
    """Split ``key: value``; returns (has_value, key, value)."""
    key, sep, after = body.partition(":")
    if not sep or (after and after[0] != " "):
        raise Fallback
    key = _key(key)
    after = after.strip(" ")
    if not after or after[0] == "#":
        return False, key, None
    value = _value(after)
    if type(value) is list:
        value = _EMPTY_LIST
    elif type(value) is dict:
        value = _EMPTY_DICT
    return True, key, value


def _classify(line: str) -> tuple[int, int, str, Any, int]:
    """(indent, kind, key, value, mapping indent of a ``- key:`` item), context-free."""
    body = line.lstrip(" ")
    if not body or body[0] == "#":
        return _BLANK
    if "\t" in line or "\r" in line:
        raise Fallback
    indent = len(line) - len(body)
    if body[0] != "-" or (len(body) > 1 and body[1] != " "):
        has_value, key, value = _field(body)
        return (indent, _PAIR if has_value else _OPEN, key, value, 0)
    rest = body[2:]
    item = rest.lstrip(" ")
    if not item or item[0] == "-" or item[0] == "#":
        raise Fallback
    inner = indent + 2 + len(rest) - len(item)
    key, sep, after = item.partition(":")
    if not sep or (after and after[0] != " "):
        value = _value(item.rstrip(" "))
        if type(value) is list or type(value) is dict:
            value = _EMPTY_LIST if type(value) is list else _EMPTY_DICT
        return (indent, _ITEM, "", value, inner)
    has_value, key, value = _field(item)
    return (indent, _ITEM_PAIR if has_value else _ITEM_OPEN, key, value, inner)


def _line(line: str) -> tuple[int, int, str, Any, int]:
    info = _classify(line)
    if len(_LINES) < _VALUE_CACHE_LIMIT:
        _LINES[line] = info
    return info


def parse_block(lines: list[str], start: int, end: int) -> tuple[Any, int]:
    """Parse ``lines[start:end]`` as one document.

    Returns (data, index of the first content line), or (None, -1) for an empty document.
    Raises Fallback when the document is outside the supported subset.
    """
    root: dict[str, Any] = {}
    stack: list[tuple[int, Any]] = [(0, root)]
    pending: tuple[int, dict[str, Any], str] | None = None
    first = -1
    cache = _LINES
    for idx in range(start, end):
        line = lines[idx]
        info = cache.get(line)
        indent, kind, key, value, inner = info if info is not None else _line(line)
        if kind == _SKIP:
            continue
        if first < 0:
            first = idx
        is_item = kind >= _ITEM
        if pending is not None:
            pind, parent, pkey = pending
            pending = None
            if indent > pind or (indent == pind and is_item):
                child: Any = [] if is_item else {}
                parent[pkey] = child
                stack.append((indent, child))
        while stack[-1][0] > indent:
            stack.pop()
        level, cont = stack[-1]
        if level == indent and not is_item and type(cont) is list:
            stack.pop()
            level, cont = stack[-1]
        if level != indent:
            raise Fallback
        if is_item:
            if type(cont) is not list:
                raise Fallback
            if kind == _ITEM:
                cont.append(_fresh(value))
                continue
            item: dict[str, Any] = {}
            cont.append(item)
            stack.append((inner, item))
            cont = item
            indent = inner
        elif type(cont) is not dict:
            raise Fallback
        if key in cont:
            raise Fallback
        if kind in (_PAIR, _ITEM_PAIR):
            cont[key] = _fresh(value)
        else:
            cont[key] = None
            pending = (indent, cont, key)
    if first < 0:
        return None, -1
    return root, first
