"""Build the DesiredState from objects that did not come from files (a cluster's).

The API server has checked the CRD schema already, but not what a schema cannot say
(references between objects, cluster scope, replica name collisions), and a cluster
may hold objects written under an older schema. So every object is checked again,
and one bad object is reported against itself and left out, not allowed to stop the
others: whatever referred to it is then left out too, until what remains is sound.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from reconciler.manifest.build import build_desired
from reconciler.manifest.reader import Document
from reconciler.manifest.validate import check_object
from reconciler.manifest.xref import build_index, check_references
from reconciler.model.errors import Diagnostic
from reconciler.model.keys import CLUSTER_SCOPED, KINDS, ResourceKey
from reconciler.model.specs import DesiredState

_KEPT_METADATA = ("name", "namespace", "labels", "annotations")


def object_label(kind: str, namespace: str, name: str) -> str:
    """How diagnostics name an object that has no file: ``Kind/ns/name``."""
    return str(ResourceKey(kind, "" if kind in CLUSTER_SCOPED else namespace, name))


def _document(raw: Mapping[str, Any]) -> Document:
    meta = raw.get("metadata") or {}
    kind = str(raw.get("kind", ""))
    slim_meta = {k: meta[k] for k in _KEPT_METADATA if k in meta}
    if kind in CLUSTER_SCOPED:
        slim_meta.pop("namespace", None)
    data = {
        "apiVersion": raw.get("apiVersion"),
        "kind": raw.get("kind"),
        "metadata": slim_meta,
        "spec": raw.get("spec"),
    }
    if data["spec"] is None:
        del data["spec"]
    label = object_label(kind, str(meta.get("namespace") or ""), str(meta.get("name", "")))
    return Document(file=label, text_lines=[], start=0, end=0, data=data, line=0)


def load_objects(
    objects: Iterable[Mapping[str, Any]],
    schema_checked: Collection[str] = (),
) -> tuple[DesiredState, dict[str, list[Diagnostic]]]:
    """(DesiredState of the sound objects, diagnostics by ``Kind/ns/name`` of the rest).

    Each object is a Kubernetes-style mapping (apiVersion, kind, metadata, spec); only
    metadata name, namespace, labels and annotations are read. Objects whose label is
    in ``schema_checked`` passed the schema check unchanged before and skip it (the
    operator re-plans 10k unchanged objects per pass); references are always checked.
    """
    problems: dict[str, list[Diagnostic]] = {}
    known: list[tuple[str, Document]] = []
    for raw in objects:
        doc = _document(raw)
        if doc.file in schema_checked and doc.data.get("kind") in KINDS:
            known.append((str(doc.data["kind"]), doc))
            continue
        kind, valid, found = check_object(doc)
        if found or not valid or kind is None:
            problems.setdefault(doc.file, []).extend(found)
            continue
        known.append((kind, doc))
    while True:
        index, index_problems = build_index(known)
        found = index_problems + check_references(index)
        if not found:
            return build_desired(index), problems
        bad = {d.file for d in found}
        for diag in found:
            problems.setdefault(diag.file, []).append(diag)
        known = [(kind, doc) for kind, doc in known if doc.file not in bad]
