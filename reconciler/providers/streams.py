"""Byte streams cut into the pieces an object store uploads (S3 parts, Azure blocks),
checksummed on the way, so no driver holds more than one piece in memory."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

from reconciler.model.artifacts import Chunks


class HashedParts:
    """``chunks`` re-cut into pieces of ``size_of(index)`` bytes (the last one shorter;
    one empty piece for an empty stream). ``sha256`` and ``size`` are final once every
    piece was taken."""

    def __init__(self, chunks: Chunks, size_of: Callable[[int], int]) -> None:
        self._chunks = chunks
        self._size_of = size_of
        self._sha = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def __iter__(self) -> Iterator[bytes]:
        buffer, index = bytearray(), 0
        for chunk in self._chunks:
            self._sha.update(chunk)
            self.size += len(chunk)
            buffer += chunk
            while len(buffer) >= self._size_of(index):
                cut = self._size_of(index)
                yield bytes(buffer[:cut])
                del buffer[:cut]
                index += 1
        if buffer or index == 0:
            yield bytes(buffer)


def rejoin(first: bytes, second: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """The pieces again after the first two were taken to see whether there are two."""
    yield first
    yield second
    yield from rest
