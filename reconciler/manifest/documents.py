"""Split a file's text into documents and parse each one, fast path first."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import yaml

from reconciler.manifest.fastyaml import Fallback, parse_block
from reconciler.manifest.nodes import NodeProblem, compose_documents, to_data
from reconciler.manifest.reader import Document
from reconciler.model.errors import Diagnostic

_MARKER_RE = re.compile(r"^(?:---|\.\.\.)", re.MULTILINE)
_ODD_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


def _marker(line: str) -> bool | None:
    """True for a bare ``---``/``...`` line, None for a marker followed by content."""
    if line[:3] not in ("---", "..."):
        return False
    rest = line[3:]
    if not rest:
        return True
    if rest[0] not in " \t":
        return False
    rest = rest.strip()
    return True if not rest or rest[0] == "#" else None


def _marker_lines(text: str) -> Iterator[int]:
    """0-based indexes of lines starting with ``---`` or ``...``."""
    line, pos = 0, 0
    for match in _MARKER_RE.finditer(text):
        line += text.count("\n", pos, match.start())
        pos = match.start()
        yield line


def parse_file(name: str, text: str) -> tuple[list[Document], list[Diagnostic]]:
    """Every non-empty document of a file, and the problems found while parsing."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    bounds: list[int] = [-1]
    whole_file = any(ch in text for ch in _ODD_BREAKS) or text.startswith("%") or "\n%" in text
    if not whole_file:
        for idx in _marker_lines(text):
            kind = _marker(lines[idx])
            if kind is None:
                whole_file = True
                break
            if kind:
                bounds.append(idx)
    if whole_file:
        docs, problems = _parse_slow(name, lines, 0, len(lines))
    else:
        bounds.append(len(lines))
        docs, problems = [], []
        for first, stop in itertools.pairwise(bounds):
            start = first + 1
            try:
                data, first_line = parse_block(lines, start, stop)
            except Fallback:
                more, errs = _parse_slow(name, lines, start, stop)
                docs.extend(more)
                problems.extend(errs)
                continue
            if first_line >= 0:
                docs.append(Document(name, lines, start, stop, data, first_line + 1))
    if not docs and not problems:
        problems.append(Diagnostic(name, 1, 1, "", "file is empty (no YAML documents)"))
    return docs, problems


def _parse_slow(
    name: str, lines: list[str], start: int, stop: int
) -> tuple[list[Document], list[Diagnostic]]:
    """Parse ``lines[start:stop]`` with libyaml, reporting every YAML-level problem."""
    docs: list[Document] = []
    problems: list[Diagnostic] = []
    try:
        for root in compose_documents("\n".join(lines[start:stop])):
            found: list[NodeProblem] = []
            try:
                data = to_data(root, found, start)
            except RecursionError:
                found.append(NodeProblem(root.start_mark.line, 0, "document nested too deeply"))
                data = None
            for problem in found:
                problems.append(
                    Diagnostic(
                        name, problem.line + start + 1, problem.column + 1, "", problem.message
                    )
                )
            if not found:
                line = root.start_mark.line + start + 1
                docs.append(Document(name, lines, start, stop, data, line, root))
    except yaml.MarkedYAMLError as exc:
        problems.append(_syntax_problem(name, lines, start, exc))
    except yaml.YAMLError as exc:
        problems.append(Diagnostic(name, start + 1, 1, "", f"YAML error: {exc}"))
    return docs, problems


def _syntax_problem(
    name: str, lines: list[str], start: int, exc: yaml.MarkedYAMLError
) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line = (mark.line if mark else 0) + start
    column = (mark.column if mark else 0) + 1
    text = lines[line] if line < len(lines) else ""
    indent = text[: len(text) - len(text.lstrip(" \t"))]
    if "\t" in indent or (exc.problem and "'\\t'" in exc.problem):
        tab = indent.find("\t")
        column = tab + 1 if tab >= 0 else column
        return Diagnostic(
            name,
            line + 1,
            column,
            "",
            "tab character used for indentation; YAML allows only spaces",
        )
    message = f"YAML syntax error: {exc.problem or 'invalid YAML'}"
    if exc.context:
        message += f" ({exc.context})"
    return Diagnostic(name, line + 1, column, "", message)
