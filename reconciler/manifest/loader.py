"""Entry points: read, validate, cross-reference and build, collecting every diagnostic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from reconciler.manifest.build import build_desired
from reconciler.manifest.documents import parse_file
from reconciler.manifest.reader import Document, discover, read_text
from reconciler.manifest.validate import check_object
from reconciler.manifest.xref import Index, build_index, check_references
from reconciler.model.errors import Diagnostic, ManifestError
from reconciler.model.specs import DesiredState


def _check(paths: Sequence[str], stdin: TextIO | None) -> tuple[int, Index, list[Diagnostic]]:
    """(object count, index of valid objects, every diagnostic)."""
    files, problems = discover(paths)
    known: list[tuple[str, Document]] = []
    count = 0
    for name in files:
        text, problem = read_text(name, stdin)
        if problem is not None or text is None:
            problems.extend([problem] if problem else [])
            continue
        docs, parse_problems = parse_file("<stdin>" if name == "-" else name, text)
        problems.extend(parse_problems)
        count += len(docs)
        for doc in docs:
            kind, _, found = check_object(doc)
            problems.extend(found)
            if kind is not None:  # invalid objects are cross-checked too, defensively
                known.append((kind, doc))
    index, index_problems = build_index(known)
    problems.extend(index_problems)
    problems.extend(check_references(index))
    return count, index, problems


def validate_paths(
    paths: Sequence[str], stdin: TextIO | None = None
) -> tuple[int, list[Diagnostic]]:
    """(number of objects read, every diagnostic, sorted); never raises for bad input."""
    count, _, problems = _check(paths, stdin)
    return count, ManifestError(problems).diagnostics


def load_desired(paths: Sequence[str], stdin: TextIO | None = None) -> DesiredState:
    """Load manifests into a DesiredState; raises ManifestError listing every problem.

    ``paths`` are files, directories (recursive, *.yaml/*.yml, hidden dirs skipped) or
    ``-`` for ``stdin``.
    """
    _, index, problems = _check(paths, stdin)
    if problems:
        raise ManifestError(problems)
    return build_desired(index)
