"""Volume bytes over libvirt streams (virStorageVol.download / upload).

Every transfer runs on a connection of its own, opened for it and closed after: a long
transfer then neither holds the host's lock (see hosts.py) nor blocks the driver's other
calls to that host, and a stream abandoned half-way is aborted with its connection.
libvirt errors are mapped at this edge like every other call (errors.map_error).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

import libvirt

from reconciler.model.errors import PermanentError, TransientError
from reconciler.providers.libvirt.errors import map_error
from reconciler.providers.libvirt.hosts import Host

#: Bytes yielded per chunk of a download (libvirt delivers at most 256 KiB per message).
CHUNK = 8 * 2**20
#: Largest piece handed to one virStream.send / recv call.
PIECE = 256 * 1024


@contextmanager
def connection(host: Host, what: str) -> Iterator[libvirt.virConnect]:
    """A new connection to ``host`` for one long call; libvirt errors raised inside
    leave as reconciler errors."""
    try:
        conn = libvirt.open(host.uri)
    except libvirt.libvirtError as exc:
        raise map_error(exc, host.cloud, f"{what}: connecting to host {host.index}") from exc
    try:
        yield conn
    except libvirt.libvirtError as exc:
        raise map_error(exc, host.cloud, f"{what} on host {host.index}") from exc
    finally:
        with suppress(libvirt.libvirtError):
            conn.close()


def download(host: Host, pool: str, name: str, size: int) -> Iterator[bytes]:
    """The ``size`` bytes of volume ``name``, in chunks of up to CHUNK bytes. A stream
    that ends early is a TransientError (the volume changed or the daemon went away)."""
    what = f"read volume {name}"
    with connection(host, what) as conn:
        volume = conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
        stream = conn.newStream(0)
        volume.download(stream, 0, size, 0)
        finished, received, buffer = False, 0, bytearray()
        try:
            while True:
                data = stream.recv(PIECE)
                if not data:
                    break
                received += len(data)
                buffer += data
                if len(buffer) >= CHUNK:
                    yield bytes(buffer)
                    buffer.clear()
            if buffer:
                yield bytes(buffer)
            stream.finish()
            finished = True
        finally:
            if not finished:
                with suppress(libvirt.libvirtError):
                    stream.abort()
    if received != size:
        raise TransientError(
            f"{what} on host {host.index}: the stream ended after {received} of {size} bytes",
            cloud=host.cloud,
        )


def mismatch(
    cloud: str, what: str, got: str, expected_size: int, expected_sha: str
) -> PermanentError:
    """The error for bytes that are not what an import promised."""
    return PermanentError(
        f"{what}: received {got}, expected {expected_size} bytes with sha256 "
        f"{expected_sha[:12]}...; nothing was kept",
        cloud=cloud,
        reason="ChecksumMismatch",
    )


def upload(
    host: Host, pool: str, name: str, chunks: Iterable[bytes], size: int, sha256: str | None
) -> str:
    """Write ``chunks`` into volume ``name`` from offset 0 and return their SHA-256. The
    stream must hold exactly ``size`` bytes (and hash to ``sha256`` unless None), checked
    while it flows: otherwise the upload is aborted before libvirt commits it and a
    ``ChecksumMismatch`` is raised. The caller deletes the volume on any error."""
    what = f"write volume {name}"
    digest, received = hashlib.sha256(), 0
    with connection(host, what) as conn:
        volume = conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
        stream = conn.newStream(0)
        volume.upload(stream, 0, size, 0)
        finished = False
        try:
            for chunk in chunks:
                received += len(chunk)
                if received > size:
                    raise mismatch(host.cloud, what, f"more than {size} bytes", size, sha256 or "")
                digest.update(chunk)
                _send(stream, chunk)
            got = digest.hexdigest()
            if received != size or (sha256 is not None and got != sha256):
                text = f"{received} bytes with sha256 {got[:12]}..."
                raise mismatch(host.cloud, what, text, size, sha256 or got)
            stream.finish()
            finished = True
        finally:
            if not finished:
                with suppress(libvirt.libvirtError):
                    stream.abort()
    return digest.hexdigest()


def _send(stream: libvirt.virStream, chunk: bytes) -> None:
    """Send all of ``chunk`` (virStream.send may take less than it is given)."""
    offset = 0
    while offset < len(chunk):
        sent = stream.send(chunk[offset : offset + PIECE])
        if sent <= 0:
            raise libvirt.libvirtError("stream send accepted no data")
        offset += sent
