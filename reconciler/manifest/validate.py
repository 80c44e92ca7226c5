"""Per-object checks: apiVersion/kind, then the CRD schema with readable diagnostics.

Clean objects pass through a compiled fastjsonschema validator; only objects that fail
are re-checked with jsonschema to list every error, each located in the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import fastjsonschema

from reconciler.manifest.nodes import PathPart
from reconciler.manifest.reader import Document
from reconciler.manifest.schema import fast_validators, full_validators
from reconciler.model.errors import Diagnostic
from reconciler.model.keys import API_VERSION, KINDS


def suggest(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss (case-insensitive first), else ''."""
    for choice in choices:
        if choice.lower() == word.lower():
            return f" (did you mean '{choice}'?)"
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "mapping"


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return _json_type(value)
    if isinstance(value, str):
        return f"string {value!r}" if len(value) < 60 else "a long string"
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else repr(value)


def check_object(doc: Document) -> tuple[str | None, bool, list[Diagnostic]]:
    """(kind if apiVersion and kind are known, whether the object is valid, diagnostics)."""
    data = doc.data
    if not isinstance(data, dict):
        message = "expected a mapping with apiVersion, kind, metadata and spec"
        return None, False, [doc.diag((), f"{message}, got {_shown(data)}")]
    problems: list[Diagnostic] = []
    for field in ("apiVersion", "kind"):
        if field not in data:
            problems.append(doc.diag((), f"missing required field '{field}'"))
    api, kind = data.get("apiVersion"), data.get("kind")
    if "apiVersion" in data and api != API_VERSION:
        problems.append(
            doc.diag(("apiVersion",), f"unknown apiVersion {api!r} (expected '{API_VERSION}')")
        )
    if "kind" in data and kind not in KINDS:
        hint = suggest(str(kind), KINDS) or f" (expected one of {', '.join(KINDS)})"
        problems.append(doc.diag(("kind",), f"unknown kind {kind!r}{hint}"))
    if problems:
        return None, False, problems
    kind = str(kind)
    try:
        fast_validators()[kind](data)
        return kind, True, []
    except fastjsonschema.JsonSchemaException:
        pass
    problems = schema_diagnostics(doc, kind)
    # An empty list means the validators disagree: trust the thorough one.
    return kind, not problems, problems


def schema_diagnostics(doc: Document, kind: str) -> list[Diagnostic]:
    """Every schema error of ``doc``, translated and located."""
    seen: set[Diagnostic] = set()
    out: list[Diagnostic] = []
    for error in full_validators()[kind].iter_errors(doc.data):
        for diag in _translate(doc, tuple(error.absolute_path), error):
            if diag not in seen:
                seen.add(diag)
                out.append(diag)
    return out


def _translate(doc: Document, path: tuple[PathPart, ...], error: Any) -> list[Diagnostic]:
    rule, expected, value, schema = (
        error.validator,
        error.validator_value,
        error.instance,
        error.schema,
    )
    if rule == "required":
        return [
            doc.diag(path, f"missing required field '{name}'")
            for name in expected
            if isinstance(value, dict) and name not in value
        ]
    if rule == "additionalProperties" and isinstance(value, dict):
        known = list(schema.get("properties", {}))
        return [
            doc.diag((*path, name), f"unknown field '{name}'{suggest(str(name), known)}", key=True)
            for name in value
            if name not in known
        ]
    return [doc.diag(path, _message(rule, expected, value, schema, error.message))]


def _message(rule: str, expected: Any, value: Any, schema: dict[str, Any], default: str) -> str:
    typ = schema.get("type", "number")
    typ = typ if isinstance(typ, str) else " or ".join(typ)
    got = _shown(value)
    if rule == "type":
        want = expected if isinstance(expected, str) else " or ".join(expected)
        return f"expected {want.replace('object', 'mapping').replace('array', 'list')}, got {got}"
    bounds = {
        "minimum": ">=",
        "maximum": "<=",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
    }
    if rule in bounds:
        return f"expected {typ} {bounds[rule]} {expected}, got {got}"
    if rule == "enum":
        hint = suggest(str(value), [str(e) for e in expected])
        return f"expected one of {', '.join(str(e) for e in expected)}, got {got}{hint}"
    if rule == "pattern":
        return f"expected a string matching {expected}, got {got}"
    if rule == "minLength":
        return "expected a non-empty string" if expected == 1 else f"expected {expected}+ chars"
    if rule == "format":
        return f"expected a {expected} string, got {got}"
    return str(default)
