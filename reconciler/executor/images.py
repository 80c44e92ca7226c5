"""Images imported into a cloud on demand.

Before a VM is created from an Image that has a ``url`` on a cloud that can import
images, the plan has a ``create Image/<ns>/<name>`` action on that cloud: its boot disk
(a single disk image, or the first disk of an OVF/OVA package) is fetched (a path,
file:, http(s): or an object of a declared Bucket, ``bucket:<name>/<key>``), checked
against the declared digests, converted to raw bytes with ``qemu-img`` when it is not
raw already, checksummed and imported
(``Provider.import_image``). A Volume made from a package's data disk has the same
action for that disk (``params["image"]["disk"]``). It is idempotent: an image already
imported there (found by its uid) is used as it is.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.manifest.ovf import file_chunks, read_package
from reconciler.model.artifacts import Chunks, ObservedImage, bucket_url
from reconciler.model.errors import PermanentError, TransientError
from reconciler.providers.base import ImageRequest, Provider

CHUNK = 8 * 1024 * 1024
#: qemu-img's names for the formats an Image may declare.
QEMU_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc"}


def _write(chunks: Iterable[bytes], path: Path) -> None:
    with path.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)


def _read(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _verify(path: Path, what: str, checksum: str, size: int | None = None) -> None:
    """Refuse ``path`` unless it has the declared ``checksum`` ("sha256:<hex>",
    "sha512:<hex>" or bare SHA-256 hex; "" = not declared) and ``size`` in bytes."""
    if size is not None and path.stat().st_size != size:
        raise PermanentError(
            f"{what} is {path.stat().st_size} bytes, its manifest says {size}; not imported",
            reason="ChecksumMismatch",
        )
    if not checksum:
        return
    algorithm, _, expected = checksum.rpartition(":")
    digest = hashlib.new(algorithm or "sha256")
    for chunk in _read(path):
        digest.update(chunk)
    if digest.hexdigest() != expected.lower():
        raise PermanentError(
            f"{what} has {algorithm or 'sha256'} {digest.hexdigest()}, its manifest says "
            f"{expected}; not imported (corrupt or replaced?)",
            reason="ChecksumMismatch",
        )


#: Reads an object of a declared Bucket: (Bucket name, object key) -> its bytes.
ObjectReader = Callable[[str, str], Chunks]


def bucket_reader(
    copies: Mapping[str, Sequence[Mapping[str, str]]], providers: Mapping[str, Provider]
) -> ObjectReader:
    """Reads from a Bucket's copies in the planned order (the target cloud's first),
    going on to the next copy while the object is not found."""

    def read(name: str, key: str) -> Chunks:
        missing: list[str] = []
        for copy in copies.get(name, ()):
            provider = providers.get(copy["cloud"])
            if provider is None:
                continue
            try:
                return provider.get_object(copy["bucket"], key)
            except PermanentError as exc:
                if exc.reason != "NotFound":
                    raise
                missing.append(copy["cloud"])
        where = f"not in its copies on {', '.join(missing)}" if missing else "it has no copy yet"
        raise PermanentError(
            f"image object {key} of Bucket {name}: {where}", reason="ImageNotFound"
        )

    return read


def _fetch(url: str, dest: Path, checksum: str, objects: ObjectReader) -> Path:
    """The file at ``url`` (a path, file:, http(s): or bucket:) as a local path,
    refused when it does not have the declared ``checksum``."""
    path = _download(url, dest, objects)
    _verify(path, f"image file {url}", checksum)
    return path


def _download(url: str, dest: Path, objects: ObjectReader) -> Path:
    named = bucket_url(url)
    if named is not None:
        _write(objects(*named), dest)
        return dest
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme else url)
        if not path.is_file():
            raise PermanentError(f"image file {url} not found", reason="ImageNotFound")
        return path
    if parsed.scheme not in ("http", "https"):
        raise PermanentError(
            f"image url {url}: scheme '{parsed.scheme}' is not supported (use a path, file:, "
            "http(s): or bucket:<Bucket name>/<object key>)",
            reason="BadRequest",
        )
    try:
        with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except OSError as exc:
        raise TransientError(f"downloading image {url}: {exc}", retry_after=5.0) from exc
    return dest


def _chosen_disk(image: Mapping[str, Any]) -> Mapping[str, Any]:
    """The disk of a package to import: ``image["disk"]`` by name, else the boot disk."""
    disks: list[Mapping[str, Any]] = image.get("disks") or []
    wanted = image.get("disk") or ""
    chosen = next((d for d in disks if d.get("name") == wanted), None) if wanted else None
    if chosen is None and not wanted and disks:
        chosen = disks[0]
    if chosen is None or not (chosen.get("file") or chosen.get("url")):
        what = f"disk {wanted}" if wanted else "boot disk"
        raise PermanentError(f"image {image['key']}: its package has no {what} file")
    return chosen


def _disk_file(image: Mapping[str, Any], work: Path, objects: ObjectReader) -> tuple[Path, str]:
    """The disk to import (boot disk, or ``image["disk"]``) as a local file, and its
    format (raw, qcow2, vmdk, vhd)."""
    fmt, url, checksum = image["format"], image["url"], image.get("checksum", "")
    if fmt not in ("ova", "ovf"):
        return _fetch(url, work / "download", checksum, objects), fmt
    chosen = _chosen_disk(image)
    if chosen.get("file"):
        package = read_package(str(_fetch(url, work / "package", checksum, objects)))
        stored = work / "disk.stored"
        _write(file_chunks(package, chosen["file"]), stored)
    else:
        stored = _download(str(chosen["url"]), work / "disk.stored", objects)
    what = f"disk {chosen.get('name', '')} of image {image['key']}"
    _verify(stored, what, chosen.get("sha256") or "", chosen.get("sizeBytes"))
    if chosen.get("compression") == "gzip":
        plain = work / "disk.plain"
        with gzip.open(stored, "rb") as src, plain.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
        stored = plain
    return stored, str(chosen["format"])


def raw_disk(image: Mapping[str, Any], work: Path, objects: ObjectReader) -> Path:
    """The Image's disk to import as raw bytes in a file under ``work`` (``objects``
    reads ``bucket:`` urls)."""
    source, fmt = _disk_file(image, work, objects)
    if fmt == "raw":
        return source
    qemu = shutil.which("qemu-img")
    if qemu is None:
        raise PermanentError(
            f"image {image['key']} is {fmt}; converting it to raw needs qemu-img "
            "(apt install qemu-utils)",
            reason="MissingTool",
        )
    target = work / "disk.raw"
    cmd = [qemu, "convert", "-f", QEMU_FORMATS.get(fmt, fmt), "-O", "raw", str(source), str(target)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PermanentError(
            f"image {image['key']}: qemu-img cannot convert its {fmt} disk: "
            f"{done.stderr.strip()[:300]}",
            reason="BadImage",
        )
    return target


def ensure_image(
    provider: Provider,
    params: Mapping[str, Any],
    work_root: Path,
    providers: Mapping[str, Provider],
) -> ObservedImage:
    """The image of ``params["image"]`` in ``provider``'s cloud, imported if needed
    (``providers``: every cloud's, to read ``bucket:`` urls from a Bucket's copies)."""
    tags = dict(params["tags"])
    found = provider.find_image(tags["reconciler.dev/uid"])
    if found is not None:
        return found
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_root, prefix="image-") as tmp:
        copies = params["image"].get("bucketCopies") or {}
        raw = raw_disk(params["image"], Path(tmp), bucket_reader(copies, providers))
        sha, size = hashlib.sha256(), 0
        for chunk in _read(raw):
            sha.update(chunk)
            size += len(chunk)
        request = ImageRequest(str(params["name"]), size, sha.hexdigest(), tags)
        return provider.import_image(request, _read(raw))
