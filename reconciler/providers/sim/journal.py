"""Crash-safe persistence of the simulated world: a snapshot plus an append-only log.

Layout of the state directory (``<state_dir>/sim-world``)::

    snapshot.json   {"format": 1, "seq": S, "resources": [...]}  (atomic rename)
    log.jsonl       one mutation per line: {"s": seq, "put": {...}} or {"s": seq, "del": id}
    lock            flock()ed by every process around each mutation

Every mutation is written with one ``os.write`` on an O_APPEND descriptor before the
call that made it returns, so a SIGKILL loses nothing acknowledged (the page cache
survives the process); with ``fsync=True`` each write is also fsynced (survives power
loss, much slower). Sequence numbers make replay idempotent: a log line whose seq is
not above the snapshot's is skipped, so a crash between writing the snapshot and
truncating the log is harmless. Compaction replaces the log by a new file (new
inode); other processes notice the inode change and reload.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FORMAT = 1


class Journal:
    """File-level operations; the caller (SimWorld) serializes access with locks."""

    def __init__(self, directory: Path, fsync: bool = False) -> None:
        self.directory = directory
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        self.snapshot_path = directory / "snapshot.json"
        self.log_path = directory / "log.jsonl"
        self._lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._log_fd = -1
        self._log_ino = -1
        self.offset = 0
        self._size = 0
        self.log_lines = 0

    # -- locking -------------------------------------------------------------------
    def lock(self, exclusive: bool) -> None:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    def unlock(self) -> None:
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- reading -------------------------------------------------------------------
    def _open_log(self) -> None:
        if self._log_fd >= 0:
            os.close(self._log_fd)
        self._log_fd = os.open(self.log_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._log_ino = os.fstat(self._log_fd).st_ino
        self.offset = 0
        self._size = 0
        self.log_lines = 0

    def load_snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        """(seq, resources) of the snapshot, (0, []) if there is none yet."""
        self._open_log()
        try:
            text = self.snapshot_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0, []
        raw = json.loads(text)
        if raw.get("format") != FORMAT:
            raise ValueError(f"{self.snapshot_path}: unsupported format {raw.get('format')}")
        return int(raw["seq"]), list(raw["resources"])

    def read_new(self) -> list[dict[str, Any]] | None:
        """Complete log lines appended since the last read (by anyone), or None when
        another process compacted (the log is a new inode: the caller must reload)."""
        try:
            stat = os.stat(self.log_path)
        except FileNotFoundError:
            return None
        if stat.st_ino != self._log_ino:
            return None
        self._size = stat.st_size
        if self._size <= self.offset:
            return []
        data = os.pread(self._log_fd, self._size - self.offset, self.offset)
        end = data.rfind(b"\n") + 1
        if end == 0:
            return []
        self.offset += end
        lines = data[:end].splitlines()
        self.log_lines += len(lines)
        return [json.loads(line) for line in lines if line.strip()]

    def drop_torn_tail(self) -> None:
        """Cut a partial last line left by a process killed mid-write.

        Only called under the exclusive lock, after ``read_new``: nobody is writing,
        so bytes past ``offset`` are an unacknowledged, torn write.
        """
        if self._size > self.offset:
            os.ftruncate(self._log_fd, self.offset)
            self._size = self.offset

    # -- writing -------------------------------------------------------------------
    def append(self, entry: dict[str, Any]) -> None:
        data = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        written = os.write(self._log_fd, data)
        if written != len(data):
            os.ftruncate(self._log_fd, self.offset)
            raise OSError(f"short write to {self.log_path}")
        if self.fsync:
            os.fsync(self._log_fd)
        self.offset += written
        self._size = self.offset
        self.log_lines += 1

    def compact(self, seq: int, resources: Iterable[dict[str, Any]]) -> None:
        """Write a snapshot at ``seq`` then start an empty log (exclusive lock held)."""
        tmp = self.directory / "snapshot.json.tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(
                {"format": FORMAT, "seq": seq, "resources": list(resources)},
                out,
                separators=(",", ":"),
            )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.snapshot_path)
        empty = self.directory / "log.jsonl.tmp"
        with open(empty, "wb") as out:
            os.fsync(out.fileno())
        os.replace(empty, self.log_path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._open_log()

    def close(self) -> None:
        for fd in (self._log_fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._log_fd = self._lock_fd = -1
