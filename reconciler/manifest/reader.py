"""Find manifest files, read them safely, and split them into located documents.

Each document is parsed by the fast reader when it can be, else by libyaml. Positions
are only computed (by re-composing the document with libyaml) when a diagnostic needs
one, so a clean 100k-object load never builds node trees.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from reconciler.manifest.nodes import PathPart, compose_documents, locate
from reconciler.model.errors import Diagnostic

MAX_FILE_BYTES = 64 * 1024 * 1024
_SUFFIXES = (".yaml", ".yml")


@dataclass
class Document:
    """One YAML document: its data and where it came from (``start`` is a 0-based line)."""

    file: str
    text_lines: list[str]
    start: int
    end: int
    data: Any
    line: int
    _root: yaml.Node | None = field(default=None, repr=False)

    def root(self) -> yaml.Node | None:
        """The libyaml node tree of this document (composed on first use)."""
        if self._root is None:
            text = "\n".join(self.text_lines[self.start : self.end])
            try:
                self._root = next(compose_documents(text), None)
            except yaml.YAMLError:
                return None
        return self._root

    def position(self, path: Sequence[PathPart], *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the value (or key) at ``path``, else its ancestor."""
        root = self.root()
        if root is None:
            return self.line, 1
        node = locate(root, path, key=key)
        return node.start_mark.line + self.start + 1, node.start_mark.column + 1

    def diag(self, path: Sequence[PathPart], message: str, *, key: bool = False) -> Diagnostic:
        """A Diagnostic located at ``path`` in this document."""
        line, column = self.position(path, key=key)
        return Diagnostic(self.file, line, column, dotted(path), message)


def dotted(path: Sequence[PathPart]) -> str:
    """``("spec", "volumes", 0)`` -> ``spec.volumes[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def discover(paths: Sequence[str]) -> tuple[list[str], list[Diagnostic]]:
    """Expand directories (recursively, sorted, hidden entries skipped) into files."""
    files: list[str] = []
    problems: list[Diagnostic] = []
    for raw in paths:
        if raw == "-":
            files.append(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(_walk(path))
            if not found:
                problems.append(Diagnostic(raw, 0, 0, "", "no *.yaml or *.yml files found"))
            files.extend(found)
        elif path.exists():
            files.append(raw)
        else:
            problems.append(Diagnostic(raw, 0, 0, "", "no such file or directory"))
    return files, problems


def _walk(root: Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.endswith(_SUFFIXES) and not name.startswith("."):
                yield os.path.join(dirpath, name)


def read_text(name: str, stdin: TextIO | None) -> tuple[str | None, Diagnostic | None]:
    """The file's text, or a Diagnostic saying why it cannot be used."""
    if name == "-":
        if stdin is None:
            return None, Diagnostic("<stdin>", 0, 0, "", "no standard input given")
        text = stdin.read()
        if len(text) > MAX_FILE_BYTES:
            return None, Diagnostic("<stdin>", 0, 0, "", "file too large (over 64 MiB)")
        if "\x00" in text:
            return None, Diagnostic("<stdin>", 1, 1, "", "binary content (NUL bytes)")
        return text.removeprefix("\ufeff"), None
    try:
        size = os.path.getsize(name)
        if size > MAX_FILE_BYTES:
            mib = size / (1024 * 1024)
            return None, Diagnostic(name, 0, 0, "", f"file too large ({mib:.0f} MiB > 64 MiB)")
        raw = Path(name).read_bytes()
    except OSError as exc:
        return None, Diagnostic(name, 0, 0, "", f"cannot read file: {exc.strerror or exc}")
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        return None, Diagnostic(name, line, 1, "", "binary content (NUL bytes), not a YAML file")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Diagnostic(name, line, column, "", "not valid UTF-8 text")
