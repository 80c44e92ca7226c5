"""`reconciler import-ovf PACKAGE`: an OVF/OVA package -> Image, VirtualMachine and
Volume manifests (multi-document YAML that `reconciler validate` accepts).

Per VirtualSystem: one Image (the package's url, os, the system's disks with format,
exact capacity and SHA-256, the boot disk first), one VirtualMachine (vcpus, memory,
boot disk size, the Image, the policy) and one Volume per further disk, attached to it
and made from that disk of the Image (``spec.image``), so its bytes are copied in.
Memory is exact GiB (an integer when whole, else the exact float: bytes / 2^30 is exact
in binary floating point); disk sizes are rounded up to whole GiB, as the schema's
integer fields require, so nothing is smaller than in the package.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import yaml

from reconciler.cli.options import report_errors
from reconciler.manifest.ovf import OvfDisk, OvfPackage, OvfSystem, read_package

API_VERSION = "reconciler.dev/v1alpha1"
GIB = 2**30
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")  # a DNS-1123 subdomain
_NAME_HINT = "lowercase letters, digits, '-' and '.', each part starting and ending alphanumeric"

Doc = dict[str, Any]


def exact_gib(size: int) -> int | float:
    """Bytes as GiB: an int when whole, else the exact float."""
    return size // GIB if size % GIB == 0 else size / GIB


def gib_up(size: int) -> int:
    """Bytes as whole GiB, rounded up (at least 1)."""
    return max(1, -(-size // GIB))


def slug(text: str, fallback: str = "vm") -> str:
    """A Kubernetes object name made from free text ("Ubuntu 22.04 (64-bit)" ->
    "ubuntu-22.04-64-bit"), at most 63 characters."""
    out = re.sub(r"[^a-z0-9.]+", "-", text.lower())
    out = re.sub(r"[-.]*\.[-.]*", ".", out).strip("-.")
    return out[:63].rstrip("-.") or fallback


def _name_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--name, --policy and --namespace must be object names (a namespace has no dots)."""
    dots = param.name != "namespace"
    ok = value is None or (_NAME.fullmatch(value) and (dots or "." not in value))
    if not ok or (value is not None and len(value) > 63):
        hint = _NAME_HINT if dots else _NAME_HINT.replace(", '-' and '.'", " and '-'")
        raise click.BadParameter(f"expected {hint} (at most 63), got {value!r}")
    return value


def _meta(name: str, namespace: str, annotations: dict[str, str] | None = None) -> Doc:
    meta: Doc = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return meta


def _disk_entry(disk: OvfDisk) -> Doc:
    entry: Doc = {"name": disk.disk_id}
    if disk.file is not None:
        entry["file"] = disk.file.href
    entry["format"] = disk.format
    entry["capacityGiB"] = exact_gib(disk.capacity_bytes)
    if disk.file is not None:
        if disk.file.size is not None:
            entry["sizeBytes"] = disk.file.size
        if disk.file.compression:
            entry["compression"] = disk.file.compression
        entry["sha256"] = disk.file.sha256
    return entry


def _image(pkg: OvfPackage, system: OvfSystem, name: str, namespace: str) -> Doc:
    ovf: Doc = {
        "virtualSystem": system.system_id,
        "name": system.name,
        "descriptor": pkg.descriptor,
        "version": pkg.version,
    }
    if system.os_id is not None:
        ovf["osId"] = system.os_id
    if system.os_type:
        ovf["osType"] = system.os_type
    if system.os_description:
        ovf["osDescription"] = system.os_description
    spec: Doc = {"format": pkg.kind, "url": pkg.path}
    os_name = slug(system.os_description or system.os_type, "")
    if os_name or system.os_id is not None:
        spec["os"] = os_name or f"cim-{system.os_id}"
    if system.disks:
        spec["minDiskGiB"] = gib_up(system.disks[0].capacity_bytes)
    spec["checksum"] = pkg.checksum
    spec["ovf"] = ovf
    if system.disks:
        spec["disks"] = [_disk_entry(d) for d in system.disks]
    meta = _meta(name, namespace)
    return {"apiVersion": API_VERSION, "kind": "Image", "metadata": meta, "spec": spec}


def _system_docs(
    pkg: OvfPackage, system: OvfSystem, name: str, namespace: str, policy: str | None
) -> list[Doc]:
    """The Image, VirtualMachine and Volumes of one virtual system, all named ``name``
    (Volumes ``<name>-<diskId>``)."""
    resources: Doc = {"vcpus": system.vcpus, "memoryGiB": exact_gib(system.memory_bytes)}
    if system.disks:
        resources["diskGiB"] = gib_up(system.disks[0].capacity_bytes)
    vm_spec: Doc = {"resources": resources, "image": name}
    if policy:
        vm_spec["policyRef"] = {"name": policy}
    volumes: list[Doc] = []
    used = {name}
    for disk in system.disks[1:]:
        vol_name = slug(f"{name}-{disk.disk_id}")
        while vol_name in used:
            vol_name = slug(f"{vol_name}-{len(used)}")
        used.add(vol_name)
        vol_spec: Doc = {"sizeGiB": gib_up(disk.capacity_bytes), "attachTo": name}
        if disk.file is not None:  # no file in the package: a blank disk
            vol_spec["image"] = {"name": name, "disk": disk.disk_id}
        volumes.append(
            {
                "apiVersion": API_VERSION,
                "kind": "Volume",
                "metadata": _meta(vol_name, namespace),
                "spec": vol_spec,
            }
        )
    if volumes:
        vm_spec["volumes"] = [v["metadata"]["name"] for v in volumes]
    vm = {"apiVersion": API_VERSION, "kind": "VirtualMachine", "metadata": _meta(name, namespace)}
    return [_image(pkg, system, name, namespace), vm | {"spec": vm_spec}, *volumes]


def _header(pkg: OvfPackage) -> list[str]:
    kind = "an OVA with the" if pkg.kind == "ova" else "the"
    checked = (
        f"digests verified against {pkg.manifest}"
        if pkg.manifest
        else "no .mf manifest: digests computed, not verified"
    )
    return [
        f"# Generated by `reconciler import-ovf` from {pkg.path}",
        f"# ({kind} OVF {pkg.version} descriptor {pkg.descriptor}; {checked}).",
        f"# Package checksum: {pkg.checksum}",
        "# Memory is exact GiB; disk sizes are rounded up to whole GiB.",
    ]


def _system_comment(system: OvfSystem) -> list[str]:
    nics = ", ".join(n or "(unconnected)" for n in system.nics) or "none"
    return [
        f"# VirtualSystem '{system.system_id}' ({system.name}): {system.vcpus} vCPUs, "
        f"{exact_gib(system.memory_bytes)} GiB memory, {len(system.disks)} disk(s).",
        f"# NICs (not part of the VirtualMachine kind, not imported): {nics}.",
    ]


def render(pkg: OvfPackage, namespace: str, base: str, policy: str | None) -> tuple[str, int]:
    """(the multi-document YAML, number of objects) for the whole package."""
    lines = _header(pkg)
    count = 0
    many = len(pkg.systems) > 1
    for system in pkg.systems:
        name = slug(f"{base}-{system.system_id}") if many else base
        lines.extend(["---", *_system_comment(system)])
        for i, doc in enumerate(_system_docs(pkg, system, name, namespace, policy)):
            if i:
                lines.append("---")
            lines.append(yaml.safe_dump(doc, sort_keys=False, width=100).rstrip("\n"))
            count += 1
    return "\n".join(lines) + "\n", count


@click.command("import-ovf")
@click.argument("package")
@click.option(
    "--namespace",
    default="default",
    show_default=True,
    callback=_name_option,
    help="Namespace of the objects written.",
)
@click.option(
    "--name",
    default=None,
    callback=_name_option,
    help="Name of the Image and VirtualMachine (several virtual systems: <name>-<id>); "
    "default: from the package's file name.",
)
@click.option(
    "--policy",
    default=None,
    callback=_name_option,
    help="BrokerPolicy (same namespace) for the VMs' policyRef.",
)
@click.option(
    "--out",
    default="-",
    show_default=True,
    help="Directory to write <name>.yaml into, or - for standard output.",
)
@report_errors
def import_ovf_command(
    package: str, namespace: str, name: str | None, policy: str | None, out: str
) -> None:
    """Read the OVF package PACKAGE (.ovf with its disks, .ova, or a directory) and
    write Image, VirtualMachine and Volume manifests for it."""
    pkg = read_package(package)
    base = name or slug(Path(pkg.location).stem)
    text, count = render(pkg, namespace, base, policy)
    systems = len(pkg.systems)
    summary = f"{count} objects from {systems} virtual system{'s' if systems != 1 else ''}"
    if out == "-":
        click.echo(text, nl=False)
        click.echo(f"Wrote {summary}.", err=True)
        return
    target = Path(out) / f"{base}.yaml"
    if target.exists():
        raise FileExistsError(f"{target} exists; remove it or choose another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    click.echo(f"Wrote {summary} to {target}.")
