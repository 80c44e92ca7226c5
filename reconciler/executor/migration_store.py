"""Where a migration's progress is kept between steps (and between processes).

The clouds are the source of truth for *whether* a migration is in flight (the tags on
its source VM) and every step finds what an earlier attempt made by uid, so a lost
record only costs work (a disk is read again). The record adds what the clouds cannot
say cheaply: the checksum and size of each disk as read from the source, the staged
objects' etags, and which step was reached (for status and ``reconciler migrate``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Protocol

from reconciler.executor.jsonfile import write_json

Record = dict[str, Any]


class MigrationStore(Protocol):
    """Persist migration records; ``save`` must be durable when it returns."""

    def load(self, migration_id: str) -> Record | None: ...

    def save(self, migration_id: str, record: Record) -> None: ...

    def delete(self, migration_id: str) -> None: ...

    def all(self) -> list[Record]: ...


class FileMigrationStore:
    """One JSON file per migration under ``directory``, replaced atomically (fsync)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def _path(self, migration_id: str) -> Path:
        safe = hashlib.sha256(migration_id.encode()).hexdigest()[:20]
        return self.directory / f"{safe}.json"

    def load(self, migration_id: str) -> Record | None:
        try:
            raw = json.loads(self._path(migration_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return raw if isinstance(raw, dict) and raw.get("id") == migration_id else None

    def save(self, migration_id: str, record: Record) -> None:
        with self._lock:
            write_json(self._path(migration_id), {**record, "id": migration_id})

    def delete(self, migration_id: str) -> None:
        self._path(migration_id).unlink(missing_ok=True)

    def all(self) -> list[Record]:
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(raw, dict):
                found.append(raw)
        return found


class MemoryMigrationStore:
    """Records for one process only (tests, and applies given no store): a crash loses
    them, which costs a re-read of the disks on resume, never correctness."""

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._lock = threading.Lock()

    def load(self, migration_id: str) -> Record | None:
        with self._lock:
            found = self._records.get(migration_id)
            return json.loads(json.dumps(found)) if found is not None else None

    def save(self, migration_id: str, record: Record) -> None:
        with self._lock:
            self._records[migration_id] = json.loads(json.dumps({**record, "id": migration_id}))

    def delete(self, migration_id: str) -> None:
        with self._lock:
            self._records.pop(migration_id, None)

    def all(self) -> list[Record]:
        with self._lock:
            return [json.loads(json.dumps(r)) for r in self._records.values()]
