"""Field-level differences between what runs and what is wanted (deepdiff)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deepdiff import DeepDiff

from reconciler.model.plan import FieldChange

_PATH_PART = re.compile(r"\['([^']*)'\]|\[(\d+)\]")


def _dotted(deepdiff_path: str) -> str:
    """root['tags']['a.b'] -> tags.a.b"""
    parts = [
        m.group(1) if m.group(1) is not None else m.group(2)
        for m in _PATH_PART.finditer(deepdiff_path)
    ]
    return ".".join(parts)


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """Every changed leaf as (path, before, after); empty when equal.

    The cheap equality test runs first: deepdiff is only paid for on real changes,
    which keeps a 100k-VM no-op plan fast.
    """
    if before == after:
        return ()
    diff = DeepDiff(dict(before), dict(after), verbose_level=2)
    changes: list[FieldChange] = []
    for path, change in diff.get("values_changed", {}).items():
        changes.append(FieldChange(_dotted(path), change["old_value"], change["new_value"]))
    for path, change in diff.get("type_changes", {}).items():
        changes.append(FieldChange(_dotted(path), change["old_value"], change["new_value"]))
    for path, value in diff.get("dictionary_item_added", {}).items():
        changes.append(FieldChange(_dotted(path), None, value))
    for path, value in diff.get("dictionary_item_removed", {}).items():
        changes.append(FieldChange(_dotted(path), value, None))
    return tuple(sorted(changes, key=lambda c: c.path))
