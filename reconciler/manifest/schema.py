"""The CRDs as validators: crds/*.yaml -> openAPIV3Schema -> JSON Schema -> validators.

The CRD files are the single source of truth. Conversion to JSON Schema:
* every object with ``properties`` gets ``additionalProperties: false`` (the apiserver
  prunes unknown fields silently; we report them), unless it preserves unknown fields;
* ``nullable: true`` widens ``type`` with "null";
* OpenAPI 3.0 boolean ``exclusiveMinimum/Maximum`` become the numeric JSON Schema form;
* ``x-kubernetes-int-or-string`` becomes integer-or-string; other ``x-kubernetes-*``
  keys are dropped;
* ``metadata`` gets a schema for ObjectMeta (name required, labels/annotations maps).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import yaml

_OBJECT_META_EXTRA = (
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "selfLink",
)
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "namespace": {"type": "string", "minLength": 1},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        **{name: {} for name in _OBJECT_META_EXTRA},
    },
    "additionalProperties": False,
}


def crd_dir() -> Path:
    """The directory holding the shipped CustomResourceDefinitions."""
    return Path(__file__).resolve().parent.parent / "crds"


def _convert(node: Any) -> Any:
    """OpenAPI v3 (Kubernetes structural schema) -> JSON Schema draft 7."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "description", "default"):
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        else:
            out[key] = _convert(value)
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(flag) is True and bound in node:
            out[flag] = node[bound]
            out.pop(bound, None)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=1)
def load_crds() -> dict[str, dict[str, Any]]:
    """kind -> the whole CustomResourceDefinition document."""
    crds: dict[str, dict[str, Any]] = {}
    for path in sorted(crd_dir().glob("*.yaml")):
        with path.open(encoding="utf-8") as handle:
            for doc in yaml.load_all(handle, Loader=yaml.CSafeLoader):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    crds[doc["spec"]["names"]["kind"]] = doc
    return crds


def load_crd_schemas() -> dict[str, dict[str, Any]]:
    """kind -> the openAPIV3Schema of its served storage version (as written in the CRD)."""
    out: dict[str, dict[str, Any]] = {}
    for kind, crd in load_crds().items():
        version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
        out[kind] = version["schema"]["openAPIV3Schema"]
    return out


@functools.lru_cache(maxsize=1)
def json_schemas() -> dict[str, dict[str, Any]]:
    """kind -> JSON Schema for a whole manifest object of that kind."""
    out: dict[str, dict[str, Any]] = {}
    for kind, schema in load_crd_schemas().items():
        converted = _convert(schema)
        converted["properties"]["metadata"] = OBJECT_META
        converted["required"] = [*converted.get("required", []), "metadata"]
        out[kind] = converted
    return out


@functools.lru_cache(maxsize=1)
def fast_validators() -> dict[str, Callable[[Any], Any]]:
    """kind -> compiled fastjsonschema validator (raises on the first error)."""
    return {kind: fastjsonschema.compile(schema) for kind, schema in json_schemas().items()}


@functools.lru_cache(maxsize=1)
def full_validators() -> dict[str, Any]:
    """kind -> jsonschema Draft7Validator, used only on objects that failed to list every error."""
    return {kind: jsonschema.Draft7Validator(schema) for kind, schema in json_schemas().items()}
