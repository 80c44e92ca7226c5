"""Manifest layer: load YAML (positions kept), validate against crds/, build the model.

Public API: ``load_desired``, ``validate_paths``, ``load_objects`` (objects from a
cluster), ``crd_dir``, ``load_crd_schemas``.
Imports only ``reconciler.model``.
"""

from reconciler.manifest.loader import load_desired, validate_paths
from reconciler.manifest.objects import load_objects, object_label
from reconciler.manifest.schema import crd_dir, load_crd_schemas

__all__ = [
    "crd_dir",
    "load_crd_schemas",
    "load_desired",
    "load_objects",
    "object_label",
    "validate_paths",
]
