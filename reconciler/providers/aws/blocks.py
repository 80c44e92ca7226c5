"""Raw bytes into and out of EBS snapshots with the EBS direct API.

Writing cuts a chunk stream into the snapshot's blocks (``BlockSize`` from
StartSnapshot: 512 KiB on AWS), pads the last one with zeros (AWS takes only whole
blocks), skips all-zero blocks (an unwritten block reads as zeros) and sends each other
one with PutSnapshotBlock and its SHA-256, a few at a time. Reading lists the blocks
(ListSnapshotBlocks, paginated), fetches each with GetSnapshotBlock, checks its SHA-256
and yields zeros for blocks that were never written.
"""

from __future__ import annotations

import base64
import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from reconciler.model.errors import TransientError

#: PutSnapshotBlock calls in flight at once (each holds one block in memory).
PARALLEL = 4
#: Bytes per chunk yielded when reading.
CHUNK = 8 * 2**20


def checksum(block: bytes) -> str:
    """The base64 SHA-256 EBS direct expects and returns with a block."""
    return base64.b64encode(hashlib.sha256(block).digest()).decode()


@dataclass(frozen=True, slots=True)
class Written:
    """What ``put_blocks`` consumed: every byte received (hashed), blocks written. When
    more than the limit arrived, ``size`` is larger than it and nothing more was sent."""

    size: int
    sha256: str
    blocks: int


class _Sender:
    """PutSnapshotBlock calls on a small pool, at most 2 x PARALLEL queued; the first
    failure is raised at the next ``send`` or ``drain``."""

    def __init__(self, ebs: Any, snapshot_id: str, block_size: int) -> None:
        self.ebs, self.snapshot_id, self.block_size = ebs, snapshot_id, block_size
        self.zero = bytes(block_size)
        self.pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="ebs-put")
        self.pending: deque[Future[None]] = deque()
        self.sent = 0

    def send(self, index: int, block: bytes) -> None:
        if len(block) < self.block_size:
            block += bytes(self.block_size - len(block))
        if block == self.zero:
            return
        while len(self.pending) >= 2 * PARALLEL:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self._put, index, block))
        self.sent += 1

    def _put(self, index: int, block: bytes) -> None:
        self.ebs.put_snapshot_block(
            SnapshotId=self.snapshot_id,
            BlockIndex=index,
            BlockData=block,
            DataLength=len(block),
            Checksum=checksum(block),
            ChecksumAlgorithm="SHA256",
        )

    def drain(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def close(self) -> None:
        """Stop: queued calls are cancelled, running ones finish before this returns."""
        for future in self.pending:
            future.cancel()
        self.pool.shutdown(wait=True)


def put_blocks(
    ebs: Any, snapshot_id: str, block_size: int, chunks: Iterable[bytes], limit: int
) -> Written:
    """Write ``chunks`` into the pending snapshot from block 0 (see module docstring)."""
    digest, received, index = hashlib.sha256(), 0, 0
    buffer = bytearray()
    sender = _Sender(ebs, snapshot_id, block_size)
    try:
        for chunk in chunks:
            received += len(chunk)
            if received > limit:
                return Written(received, "", sender.sent)
            digest.update(chunk)
            buffer += chunk
            offset = 0
            while len(buffer) - offset >= block_size:
                sender.send(index, bytes(buffer[offset : offset + block_size]))
                offset += block_size
                index += 1
            del buffer[:offset]
        if buffer:
            sender.send(index, bytes(buffer))
        sender.drain()
    finally:
        sender.close()
    return Written(received, digest.hexdigest(), sender.sent)


def block_tokens(ebs: Any, snapshot_id: str) -> tuple[int, dict[int, str]]:
    """(block size, token per written block index) of a completed snapshot."""
    tokens: dict[int, str] = {}
    params: dict[str, Any] = {"SnapshotId": snapshot_id, "MaxResults": 10_000}
    block_size = 0
    while True:
        page = ebs.list_snapshot_blocks(**params)
        block_size = int(page["BlockSize"])
        tokens.update({int(b["BlockIndex"]): str(b["BlockToken"]) for b in page["Blocks"]})
        if not page.get("NextToken"):
            return block_size, tokens
        params["NextToken"] = page["NextToken"]


def read_blocks(ebs: Any, snapshot_id: str, size: int, cloud: str) -> Iterator[bytes]:
    """The first ``size`` bytes of a completed snapshot, in chunks of about CHUNK bytes.
    A block whose SHA-256 differs from the one EBS returns with it is a TransientError."""
    block_size, tokens = block_tokens(ebs, snapshot_id)
    zero = bytes(block_size)
    pieces: list[bytes] = []
    held = 0
    for index in range((size + block_size - 1) // block_size):
        token = tokens.get(index)
        block = zero if token is None else _get(ebs, snapshot_id, index, token, cloud)
        piece = block[: min(block_size, size - index * block_size)]
        pieces.append(piece)
        held += len(piece)
        if held >= CHUNK:
            yield b"".join(pieces)
            pieces, held = [], 0
    if pieces:
        yield b"".join(pieces)


def _get(ebs: Any, snapshot_id: str, index: int, token: str, cloud: str) -> bytes:
    got = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockToken=token)
    body = got["BlockData"]
    try:
        data = bytes(body.read())
    finally:
        body.close()
    expected = got.get("Checksum")
    sha256 = got.get("ChecksumAlgorithm", "SHA256") == "SHA256"
    if expected and sha256 and checksum(data) != expected:
        raise TransientError(
            f"block {index} of snapshot {snapshot_id} arrived with another SHA-256 "
            "than EBS reports for it",
            cloud=cloud,
        )
    return data
