"""The simulator's disk and object bytes: a content-addressed store on local disk.

Every simulated disk, image, snapshot and object has real bytes, so migration and bucket
copies move real data and can be checked end to end by SHA-256. Disks are scaled down
(``BYTES_PER_GIB`` bytes stand for each declared GiB) and that is documented: the
simulator proves the data path, not throughput. Blobs are never deleted while the world
exists (content-addressed, shared by every record with the same bytes).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

CHUNK = 1024 * 1024
#: Bytes of simulated content per declared GiB of an empty volume.
BYTES_PER_GIB = 4096
#: Size of the generated content of a catalog image (a VM's first boot disk).
BASE_IMAGE_BYTES = 64 * 1024


class BlobStore:
    """Files named by their SHA-256 under ``directory``; writes are atomic (rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made: dict[tuple[str, object], tuple[str, int]] = {}

    def _memo(self, kind: str, arg: object, make: Callable[[], bytes]) -> tuple[str, int]:
        """Generated content, computed and stored once per process."""
        found = self._made.get((kind, arg))
        if found is None or not self.path(found[0]).exists():
            found = self._made[(kind, arg)] = self.put_bytes(make())
        return found

    def path(self, sha: str) -> Path:
        return self.directory / sha[:2] / sha

    def put(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store a stream; returns (sha256 hex, size). Nothing is left on failure."""
        self.directory.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            final = self.path(sha)
            final.parent.mkdir(exist_ok=True)
            os.replace(tmp, final)
            return sha, size
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        sha = hashlib.sha256(data).hexdigest()
        if not self.path(sha).exists():
            self.put([data])
        return sha, len(data)

    def read(self, sha: str) -> Iterator[bytes]:
        """The bytes of a stored blob, in chunks (the empty digest needs no file)."""
        if sha == EMPTY_SHA256:
            return
        with self.path(sha).open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def size(self, sha: str) -> int:
        return 0 if sha == EMPTY_SHA256 else self.path(sha).stat().st_size

    def base_image(self, name: str) -> tuple[str, int]:
        """Deterministic content for a catalog image name (same bytes in every cloud)."""
        seed = f"reconciler-sim-image:{name}".encode()

        def make() -> bytes:
            count = BASE_IMAGE_BYTES // 32
            return b"".join(
                hashlib.sha256(seed + i.to_bytes(8, "big")).digest() for i in range(count)
            )

        return self._memo("image", name, make)

    def zeros(self, size_gib: int) -> tuple[str, int]:
        """Content of a new empty volume of ``size_gib``."""
        return self._memo("zeros", size_gib, lambda: bytes(BYTES_PER_GIB * max(1, size_gib)))


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
