"""Read OVF packages for `reconciler import-ovf`: a ``.ovf`` descriptor with its files
next to it, an ``.ova`` or a directory holding one descriptor.

An ``.ova`` is a tar whose first member is the descriptor (DSP0243); it is read as one
stream with tarfile, nothing is extracted, and its own SHA-256 is computed in the same
pass. Every file the descriptor references is read once, in 8 MiB chunks, for its
SHA-256 and for the digests a ``.mf`` manifest lists, which are verified; declared sizes
are checked. Bad input raises ManifestError with located Diagnostics, never anything
else. The descriptor itself is parsed by ``ovfxml``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, NoReturn

from reconciler.manifest.ovfxml import Descriptor, OvfDisk, OvfFile, OvfSystem, parse_descriptor
from reconciler.model.errors import Diagnostic, ManifestError

__all__ = ["OvfDisk", "OvfFile", "OvfPackage", "OvfSystem", "file_chunks", "read_package"]

CHUNK = 8 * 1024 * 1024
#: Descriptors and manifests are text; anything larger is refused before parsing.
MAX_TEXT_BYTES = 16 * 1024 * 1024
_MF_LINE = re.compile(r"(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)")
_HEX_LEN = {"SHA1": 40, "SHA256": 64, "SHA512": 128}
_TAR_END = 1024  # a tar ends with two 512-byte zero blocks

Digests = dict[str, str]  # algorithm (SHA1, SHA256, SHA512) -> hex


@dataclass(frozen=True, slots=True)
class OvfPackage:
    """A checked package. ``path`` as given; ``location`` the .ova or descriptor file;
    ``descriptor`` its name (its member name in an .ova); ``checksum`` "sha256:<hex>" of the .ova
    (or of the descriptor); ``manifest`` the .mf verified ("" if there is none)."""

    path: str
    kind: str  # "ova" or "ovf"
    location: str
    descriptor: str
    version: str  # "1.x" or "2.x"
    systems: tuple[OvfSystem, ...]
    checksum: str
    manifest: str = ""


def read_package(path: str) -> OvfPackage:
    """Read and check the OVF package at ``path`` (.ovf, .ova or a directory)."""
    target = Path(path)
    if target.is_dir():
        found = sorted(target.glob("*.ovf"))
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            _fail(path, f"expected exactly one .ovf descriptor in the directory, found {names}")
        return _read_ovf(path, found[0])
    if not target.is_file():
        _fail(path, "no such file or directory")
    suffix = target.suffix.lower()
    if suffix == ".ova":
        return _read_ova(path, target)
    if suffix == ".ovf":
        return _read_ovf(path, target)
    _fail(path, f"expected a .ovf descriptor, an .ova or a directory, got '{target.name}'")


def file_chunks(package: OvfPackage, href: str) -> Iterator[bytes]:
    """The bytes of the package's file ``href`` as stored (still gzip'd if its File says
    so), streamed in CHUNK pieces without extracting anything (for importing disks)."""
    if package.kind == "ovf":
        with _local(Path(package.location).parent, href).open("rb") as handle:
            yield from _chunks(handle)
        return
    wanted = _norm(str(PurePosixPath(package.descriptor).parent / href))
    with open(package.location, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            if member.isfile() and _norm(member.name) == wanted:
                yield from _member_chunks(tar, member)
                return
    _fail(package.location, f"'{href}' is not in the package")


@dataclass(frozen=True, slots=True)
class _Entry:
    """One .mf line."""

    algorithm: str
    digest: str
    line: int


@dataclass
class _Read:
    """What reading the package's bytes found, by normalised name."""

    descriptor: str
    descriptor_digests: Digests
    digests: dict[str, Digests] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    manifest: dict[str, _Entry] | None = None
    manifest_file: str = ""  # where its diagnostics point
    manifest_name: str = ""
    checksum: str = ""  # SHA-256 of the .ova, or of the descriptor
    base: str = "."  # the descriptor's directory inside an .ova
    wanted: set[str] = field(default_factory=set)  # hrefs the descriptor references


def _fail(file: str, message: str, path: str = "") -> NoReturn:
    raise ManifestError([Diagnostic(file, 0, 0, path, message)])


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


def _member_chunks(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    handle = tar.extractfile(member)
    if handle is not None:
        yield from _chunks(handle)


def _text_bytes(chunks: Iterable[bytes], file: str) -> bytes:
    """All of a descriptor or manifest, refused beyond MAX_TEXT_BYTES."""
    parts: list[bytes] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > MAX_TEXT_BYTES:
            _fail(file, f"larger than {MAX_TEXT_BYTES // 2**20} MiB: not an OVF text file")
        parts.append(chunk)
    return b"".join(parts)


def _digest(chunks: Iterable[bytes], algorithms: Iterable[str]) -> tuple[Digests, int]:
    """(digests, size) of a stream, in one pass."""
    hashers = {alg: hashlib.new(alg.lower()) for alg in algorithms}
    size = 0
    for chunk in chunks:
        size += len(chunk)
        for hasher in hashers.values():
            hasher.update(chunk)
    return {alg: h.hexdigest() for alg, h in hashers.items()}, size


def _norm(name: str) -> str:
    """A tar member name or href, normalised ("./a/b" -> "a/b")."""
    return str(PurePosixPath(name.lstrip("/"))).removeprefix("./")


def _local(base: Path, href: str) -> Path:
    """The file ``href`` names next to the descriptor; never a URL or outside ``base``."""
    parts = PurePosixPath(href).parts
    if "://" in href or href.startswith("/") or ".." in parts:
        _fail(str(base), f"'{href}' is not a relative path inside the package")
    return base.joinpath(*parts)


def _manifest(text: bytes, file: str) -> dict[str, _Entry]:
    """The digests of a .mf (``SHA256(name)= hex`` lines; SHA1 and SHA512 too)."""
    entries: dict[str, _Entry] = {}
    problems: list[Diagnostic] = []
    for number, raw in enumerate(text.decode("utf-8", "replace").splitlines(), 1):
        line = raw.strip()
        match = _MF_LINE.fullmatch(line)
        if match is not None and len(match[3]) == _HEX_LEN[match[1]]:
            entries[_norm(match[2].strip())] = _Entry(match[1], match[3].lower(), number)
        elif line:
            message = f"expected 'SHA256(name)= <hex digest>' (or SHA1, SHA512), got {line[:80]!r}"
            problems.append(Diagnostic(file, number, 1, "", message))
    if problems:
        raise ManifestError(problems)
    return entries


def _algorithms(manifest: dict[str, _Entry] | None, name: str) -> set[str]:
    """SHA256 always, plus what the manifest lists for ``name`` (all, if not read yet)."""
    if manifest is None:
        return set(_HEX_LEN)
    entry = manifest.get(name)
    return {"SHA256", entry.algorithm} if entry else {"SHA256"}


def _verify(desc: Descriptor, read: _Read) -> None:
    """Every referenced file present with its declared size; every .mf digest matches."""
    problems = desc.problems
    for file in desc.files.values():
        node, path = desc.where[file.file_id]
        name = _norm(file.href)
        if name not in read.digests:
            desc.fail(node, f"{path}/@href", f"file '{file.href}' is not in the package")
        elif file.size is not None and read.sizes[name] != file.size:
            got = read.sizes[name]
            desc.fail(node, f"{path}/@size", f"declared {file.size} bytes, the file has {got}")
    mf = read.manifest
    if mf is not None:
        seen = {read.descriptor: read.descriptor_digests, **read.digests}
        for name, entry in mf.items():
            digest = seen.get(name, {}).get(entry.algorithm)
            if name not in seen:
                message = f"lists '{name}', which is not in the package"
            elif digest != entry.digest:
                message = (
                    f"digest mismatch: the manifest says {entry.digest}, '{name}' has {digest}"
                )
            else:
                continue
            path = f"{entry.algorithm}({name})"
            problems.append(Diagnostic(read.manifest_file, entry.line, 1, path, message))
        for name in sorted(set(seen) - set(mf)):
            message = f"has no digest for '{name}' (every file must be listed)"
            problems.append(Diagnostic(read.manifest_file, 0, 0, "", message))
    if problems:
        raise ManifestError(problems)


def _package(given: str, kind: str, location: Path, desc: Descriptor, read: _Read) -> OvfPackage:
    """Verify what was read against the descriptor and assemble the package."""
    _verify(desc, read)
    files = {
        fid: dataclasses.replace(f, sha256=read.digests[_norm(f.href)]["SHA256"])
        for fid, f in desc.files.items()
    }
    systems = tuple(
        dataclasses.replace(
            system,
            disks=tuple(
                dataclasses.replace(d, file=files[d.file.file_id] if d.file else None)
                for d in system.disks
            ),
        )
        for system in desc.systems
    )
    return OvfPackage(
        path=given,
        kind=kind,
        location=str(location),
        descriptor=read.descriptor if read.base == "." else f"{read.base}/{read.descriptor}",
        version=desc.version,
        systems=systems,
        checksum=f"sha256:{read.checksum}",
        manifest=read.manifest_name,
    )


def _read_ovf(given: str, descriptor: Path) -> OvfPackage:
    """A descriptor with its files (and optional .mf) next to it."""
    file = str(descriptor)
    with descriptor.open("rb") as handle:
        data = _text_bytes(_chunks(handle), file)
    desc = parse_descriptor(data, file)
    digests, _ = _digest([data], _HEX_LEN)
    read = _Read(descriptor.name, digests, checksum=digests["SHA256"])
    mf_path = descriptor.with_suffix(".mf")
    if mf_path.is_file():
        with mf_path.open("rb") as handle:
            read.manifest = _manifest(_text_bytes(_chunks(handle), str(mf_path)), str(mf_path))
        read.manifest_file, read.manifest_name = str(mf_path), mf_path.name
    for ovf_file in desc.files.values():
        path = _local(descriptor.parent, ovf_file.href)
        if path.is_file():
            name = _norm(ovf_file.href)
            with path.open("rb") as handle:
                algorithms = _algorithms(read.manifest, name)
                read.digests[name], read.sizes[name] = _digest(_chunks(handle), algorithms)
    return _package(given, "ovf", descriptor, desc, read)


class _HashingReader:
    """A read-only file object that hashes everything read through it (the .ova's own
    SHA-256, in the same single pass as its members') and keeps the last 1 KiB, to tell
    a complete tar (ending in two zero blocks) from one cut at a member boundary."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.tail = b""

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)
        self.size += len(data)
        self.tail = (self.tail + data[-_TAR_END:])[-_TAR_END:]
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def complete(self) -> bool:
        return self.size % 512 == 0 and self.tail == bytes(_TAR_END)


def _read_ova(given: str, path: Path) -> OvfPackage:
    """An OVA: descriptor first, then (in any order) the .mf, the files and others."""
    member = ""
    desc: Descriptor | None = None
    read: _Read | None = None
    try:
        with path.open("rb") as raw:
            reader = _HashingReader(raw)
            with tarfile.open(fileobj=reader, mode="r|", bufsize=CHUNK) as tar:  # type: ignore[call-overload]
                for index, info in enumerate(tar):
                    member = info.name
                    if index == 0:
                        desc, read = _ova_descriptor(path, tar, info)
                    elif desc is not None and read is not None:
                        _ova_member(path, tar, info, read)
            reader.drain()
    except (tarfile.TarError, EOFError) as exc:
        where = f"member '{member}'" if member else ""
        message = f"not a complete tar archive ({exc}): the OVA is truncated or damaged"
        _fail(str(path), message, where)
    if desc is None or read is None:
        _fail(str(path), "empty archive: expected the .ovf descriptor as its first member")
    if not reader.complete():
        _fail(str(path), "no end-of-archive marker: the OVA is truncated", f"after '{member}'")
    read.checksum = reader.sha256.hexdigest()
    return _package(given, "ova", path, desc, read)


def _ova_descriptor(
    path: Path, tar: tarfile.TarFile, info: tarfile.TarInfo
) -> tuple[Descriptor, _Read]:
    if not info.isfile() or not info.name.lower().endswith(".ovf"):
        message = f"the first member must be the .ovf descriptor (DSP0243), found '{info.name}'"
        _fail(str(path), message)
    file = f"{path}[{info.name}]"
    data = _text_bytes(_member_chunks(tar, info), file)
    desc = parse_descriptor(data, file)
    digests, _ = _digest([data], _HEX_LEN)
    name = PurePosixPath(_norm(info.name))
    wanted = {_norm(f.href) for f in desc.files.values()}
    return desc, _Read(name.name, digests, base=str(name.parent), wanted=wanted)


def _ova_member(path: Path, tar: tarfile.TarFile, info: tarfile.TarInfo, read: _Read) -> None:
    """Hash a member the descriptor references; read the .mf; skip anything else."""
    name = _norm(info.name)
    if read.base != ".":
        if not name.startswith(read.base + "/"):
            return
        name = name[len(read.base) + 1 :]
    if not info.isfile():
        return
    if name == str(PurePosixPath(read.descriptor).with_suffix(".mf")):
        read.manifest_file, read.manifest_name = f"{path}[{info.name}]", name
        text = _text_bytes(_member_chunks(tar, info), read.manifest_file)
        read.manifest = _manifest(text, read.manifest_file)
    elif name in read.wanted:
        algorithms = _algorithms(read.manifest, name)
        read.digests[name], read.sizes[name] = _digest(_member_chunks(tar, info), algorithms)
