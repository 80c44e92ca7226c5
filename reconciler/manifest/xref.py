"""Cross-reference checks over schema-valid objects.

Names must resolve in the right namespace (policyRef, image, volumes, attachTo), cloud
names must exist, keys must be unique, and VirtualMachineSet replicas (``<set>-<i>``)
must not collide with VirtualMachines. Also rules the schema cannot say without CEL:
a Cloud has no namespace, an allow/deny item has exactly one of name or selector.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.manifest.nodes import PathPart
from reconciler.manifest.reader import Document
from reconciler.manifest.validate import suggest
from reconciler.model.artifacts import BUCKET_URL_SCHEME, bucket_url
from reconciler.model.errors import Diagnostic
from reconciler.model.keys import CLUSTER_SCOPED, ResourceKey

DEFAULT_NAMESPACE = "default"
URL_SCHEMES = ("", "file", "http", "https", BUCKET_URL_SCHEME)


def key_of(kind: str, doc: Document) -> ResourceKey:
    """The ResourceKey of a schema-valid object (namespace defaulted)."""
    meta = doc.data["metadata"]
    namespace = "" if kind in CLUSTER_SCOPED else meta.get("namespace") or DEFAULT_NAMESPACE
    return ResourceKey(kind, namespace, meta["name"])


def _where(doc: Document) -> str:
    return f"{doc.file}:{doc.line}"


@dataclass
class Index:
    """Valid objects by key, plus what the model builder needs from the checks."""

    objects: dict[ResourceKey, Document] = field(default_factory=dict)
    attachments: dict[ResourceKey, str] = field(default_factory=dict)
    _names: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def names(self, kind: str, namespace: str) -> list[str]:
        """Names of ``kind`` objects in ``namespace`` (for did-you-mean hints; cached)."""
        if not self._names:
            for k in self.objects:
                self._names.setdefault((k.kind, k.namespace), []).append(k.name)
        return self._names.get((kind, namespace), [])


def build_index(objects: Iterable[tuple[str, Document]]) -> tuple[Index, list[Diagnostic]]:
    """Index objects by key; duplicates and namespaced Clouds are diagnostics."""
    index = Index()
    problems: list[Diagnostic] = []
    for kind, doc in objects:
        meta = _get(doc.data, "metadata")
        if not isinstance(_get(meta, "name"), str) or not isinstance(
            meta.get("namespace", ""), str
        ):
            continue  # the schema diagnostics already say what is wrong
        if kind in CLUSTER_SCOPED and "namespace" in doc.data["metadata"]:
            problems.append(
                doc.diag(
                    ("metadata", "namespace"),
                    f"{kind} is cluster scoped: remove metadata.namespace",
                )
            )
            continue
        key = key_of(kind, doc)
        first = index.objects.get(key)
        if first is not None:
            problems.append(
                doc.diag(
                    ("metadata", "name"), f"duplicate {key} (first defined at {_where(first)})"
                )
            )
            continue
        index.objects[key] = doc
    return index, problems


def _get(raw: Any, *path: str) -> Any:
    """``raw[path...]`` or None when a step is missing or not a mapping (objects that
    failed the schema are checked too, so shapes are not trusted)."""
    for part in path:
        if not isinstance(raw, dict):
            return None
        raw = raw.get(part)
    return raw


def _names(raw: Any) -> list[tuple[int, str]]:
    """(index, name) of the string items of a list; anything else is skipped."""
    return (
        [(i, v) for i, v in enumerate(raw) if isinstance(v, str)] if isinstance(raw, list) else []
    )


def _replicas(doc: Document) -> int:
    value = _get(doc.data, "spec", "replicas")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class _Checker:
    """Runs every reference check; collects diagnostics and volume attachments."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.objects = index.objects
        self.problems: list[Diagnostic] = []
        self.sets: dict[tuple[str, str], int] = {
            (k.namespace, k.name): _replicas(d)
            for k, d in self.objects.items()
            if k.kind == "VirtualMachineSet"
        }
        self.claims: dict[ResourceKey, str] = {}

    def report(self, doc: Document, path: tuple[PathPart, ...], message: str) -> None:
        self.problems.append(doc.diag(path, message))

    def replica_of(self, namespace: str, name: str) -> str | None:
        """The set owning replica ``name``, if ``name`` is ``<set>-<i>`` with i < replicas."""
        prefix, dash, index = name.rpartition("-")
        if not dash or not index.isdigit() or str(int(index)) != index:
            return None
        replicas = self.sets.get((namespace, prefix))
        return prefix if replicas is not None and int(index) < replicas else None

    def is_vm(self, namespace: str, name: str) -> bool:
        key = ResourceKey("VirtualMachine", namespace, name)
        return key in self.objects or self.replica_of(namespace, name) is not None

    def need(
        self, doc: Document, path: tuple[PathPart, ...], kind: str, ns: str, name: Any
    ) -> None:
        """Report ``name`` unless a ``kind`` object of that name exists in ``ns``."""
        if not isinstance(name, str) or ResourceKey(kind, ns, name) in self.objects:
            return
        where = f" in namespace '{ns}'" if ns else ""
        hint = suggest(name, self.index.names(kind, ns))
        self.report(doc, path, f"{kind} '{name}' not found{where}{hint}")

    def run(self) -> list[Diagnostic]:
        for key, doc in self.objects.items():
            spec = _get(doc.data, "spec")
            check = getattr(self, f"check_{key.kind}", None)
            if check is not None and isinstance(spec, dict):
                check(key, doc, spec)
        return self.problems

    def check_BrokerPolicy(self, key: ResourceKey, doc: Document, spec: dict[str, Any]) -> None:
        for side in ("allow", "deny"):
            items = _get(spec, "clouds", side)
            for i, item in enumerate(items if isinstance(items, list) else ()):
                path: tuple[PathPart, ...] = ("spec", "clouds", side, i)
                if not isinstance(item, dict):
                    continue
                if ("name" in item) == ("selector" in item):
                    self.report(doc, path, "expected exactly one of 'name' or 'selector'")
                elif "name" in item:
                    self.need(doc, (*path, "name"), "Cloud", "", item["name"])

    def vm_refs(
        self, doc: Document, spec: dict[str, Any], base: tuple[PathPart, ...], ns: str
    ) -> None:
        """policyRef, image and placement.cloud of a VM spec (or a set's template spec)."""
        policy = _get(spec, "policyRef", "name")
        self.need(doc, (*base, "policyRef", "name"), "BrokerPolicy", ns, policy)
        self.need(doc, (*base, "image"), "Image", ns, spec.get("image"))
        cloud = _get(spec, "placement", "cloud")
        self.need(doc, (*base, "placement", "cloud"), "Cloud", "", cloud)

    def claim_volumes(
        self, doc: Document, base: tuple[PathPart, ...], ns: str, vm: str, names: Any
    ) -> None:
        """Each listed Volume must exist, agree on attachTo, and be listed by one VM only."""
        for i, name in _names(names):
            path = (*base, "volumes", i)
            vkey = ResourceKey("Volume", ns, name)
            volume = self.objects.get(vkey)
            if volume is None:
                self.need(doc, path, "Volume", ns, name)
                continue
            target = _get(volume.data, "spec", "attachTo")
            if target is not None and target != vm:
                message = (
                    f"Volume '{name}' is attached to '{target}' (its spec.attachTo), not '{vm}'"
                )
                self.report(doc, path, message)
            elif self.claims.get(vkey, vm) != vm:
                self.report(
                    doc, path, f"Volume '{name}' is already listed by VM '{self.claims[vkey]}'"
                )
            else:
                self.claims[vkey] = vm
                self.index.attachments[vkey] = vm

    def check_VirtualMachine(self, key: ResourceKey, doc: Document, spec: dict[str, Any]) -> None:
        self.vm_refs(doc, spec, ("spec",), key.namespace)
        owner = self.replica_of(key.namespace, key.name)
        if owner is not None:
            message = f"name collides with replica '{key.name}' of VirtualMachineSet '{owner}'"
            self.report(doc, ("metadata", "name"), message)
        self.claim_volumes(doc, ("spec",), key.namespace, key.name, spec.get("volumes"))

    def check_VirtualMachineSet(
        self, key: ResourceKey, doc: Document, spec: dict[str, Any]
    ) -> None:
        template = _get(spec, "template", "spec")
        if not isinstance(template, dict):
            return
        base: tuple[PathPart, ...] = ("spec", "template", "spec")
        self.vm_refs(doc, template, base, key.namespace)
        volumes = template.get("volumes")
        replicas = _replicas(doc)
        if volumes and replicas > 1:
            self.report(
                doc,
                (*base, "volumes"),
                "a VirtualMachineSet with more than one replica cannot list volumes "
                "(replicas would share them); attach Volumes to replicas with spec.attachTo",
            )
        elif volumes and replicas == 1:
            self.claim_volumes(doc, base, key.namespace, f"{key.name}-0", volumes)

    def check_Volume(self, key: ResourceKey, doc: Document, spec: dict[str, Any]) -> None:
        target = spec.get("attachTo")
        if isinstance(target, str):
            if not self.is_vm(key.namespace, target):
                hint = suggest(target, self.index.names("VirtualMachine", key.namespace))
                message = f"VirtualMachine '{target}' not found in namespace '{key.namespace}'"
                self.report(doc, ("spec", "attachTo"), message + hint)
            else:
                self.index.attachments.setdefault(key, target)
            if "cloud" in spec:
                message = "an attached volume follows its VM: remove spec.cloud"
                self.report(doc, ("spec", "cloud"), message)
        self.need(doc, ("spec", "cloud"), "Cloud", "", spec.get("cloud"))
        policy = _get(spec, "policyRef", "name")
        self.need(doc, ("spec", "policyRef", "name"), "BrokerPolicy", key.namespace, policy)
        self.image_disk(key, doc, spec)

    def image_disk(self, key: ResourceKey, doc: Document, spec: dict[str, Any]) -> None:
        """A Volume's spec.image names an Image, and spec.image.disk one of its disks."""
        name, disk = _get(spec, "image", "name"), _get(spec, "image", "disk")
        self.need(doc, ("spec", "image", "name"), "Image", key.namespace, name)
        image = self.objects.get(ResourceKey("Image", key.namespace, str(name)))
        if image is None or not isinstance(disk, str):
            return
        disks = _get(image.data, "spec", "disks")
        names = (
            [d.get("name") for d in disks if isinstance(d, dict)] if isinstance(disks, list) else []
        )
        if disk not in names:
            listed = ", ".join(str(n) for n in names) or "none"
            message = f"Image '{name}' has no disk '{disk}' (its spec.disks: {listed})"
            self.report(
                doc, ("spec", "image", "disk"), message + suggest(disk, [str(n) for n in names])
            )

    def check_Image(self, key: ResourceKey, doc: Document, spec: dict[str, Any]) -> None:
        """Its url and its disks' urls: a path, file:, http(s): or bucket:<Bucket>/<key>
        naming a Bucket of its namespace."""
        urls: list[tuple[tuple[PathPart, ...], Any]] = [(("spec", "url"), spec.get("url"))]
        disks = spec.get("disks")
        for i, disk in enumerate(disks if isinstance(disks, list) else ()):
            if isinstance(disk, dict):
                urls.append((("spec", "disks", i, "url"), disk.get("url")))
        for path, url in urls:
            if isinstance(url, str) and url:
                self.image_url(key, doc, path, url)

    def image_url(
        self, key: ResourceKey, doc: Document, path: tuple[PathPart, ...], url: str
    ) -> None:
        scheme = url.partition(":")[0] if ":" in url else ""
        if scheme == BUCKET_URL_SCHEME:
            named = bucket_url(url)
            if named is None:
                self.report(doc, path, f"expected bucket:<Bucket name>/<object key>, got {url!r}")
            else:
                self.need(doc, path, "Bucket", key.namespace, named[0])
        elif scheme not in URL_SCHEMES and len(scheme) > 1:  # C: is a drive, not a scheme
            self.report(
                doc,
                path,
                f"url scheme {scheme!r} is not supported: use a path, file:, http(s): or "
                "bucket:<Bucket name>/<object key> (an object in a Bucket declared here)",
            )

    def check_Bucket(self, key: ResourceKey, doc: Document, spec: dict[str, Any]) -> None:
        policy = _get(spec, "policyRef", "name")
        self.need(doc, ("spec", "policyRef", "name"), "BrokerPolicy", key.namespace, policy)
        for i, name in _names(spec.get("clouds")):
            self.need(doc, ("spec", "clouds", i), "Cloud", "", name)


def check_references(index: Index) -> list[Diagnostic]:
    """Every cross-reference problem; fills ``index.attachments`` (Volume -> VM name)."""
    return _Checker(index).run()
