"""Connections to the hosts of one libvirt Cloud: opened lazily, one per host, each
guarded by its own lock (a virConnect is not safe to share between threads mid-call),
reopened after the connection broke.

Every libvirt call goes through ``Host.session(what)``: it holds the host lock, maps
``libvirtError`` at the edge (errors.map_error), and runs the optional fault hooks the
conformance target installs (``before`` raises the next error as libvirt would;
``after`` loses the response of a call that did take effect).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import libvirt

from reconciler.model.errors import PermanentError
from reconciler.providers.libvirt.errors import is_connection_error, map_error


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; errors are raised, not printed."""


libvirt.registerErrorHandler(_quiet, None)

#: A fault hook: called with the operation name ("read", "create", "update", "delete").
Hook = Callable[[str], None]


@dataclass
class Host:
    """One hypervisor: its URI, its position in ``spec.hosts`` and its connection."""

    cloud: str
    index: int
    uri: str
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    before: Hook | None = field(default=None, repr=False)
    after: Hook | None = field(default=None, repr=False)
    _conn: libvirt.virConnect | None = field(default=None, repr=False)

    def connection(self) -> libvirt.virConnect:
        """The open connection (opened now if needed); call with ``lock`` held."""
        conn = self._conn
        if conn is not None:
            return conn
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            error = map_error(exc, self.cloud, f"connecting to host {self.uri}")
            if isinstance(error, PermanentError) and error.reason != "Unauthorized":
                error = PermanentError(
                    f"Cloud {self.cloud}: cannot open libvirt host {self.uri}: "
                    f"{exc.get_error_message() or exc}",
                    cloud=self.cloud,
                    reason="InvalidCloud",
                )
            raise error from exc
        self._conn = conn
        return conn

    @contextmanager
    def session(self, what: str, operation: str = "read") -> Iterator[libvirt.virConnect]:
        """Hold the host, yield its connection, map libvirt errors raised inside."""
        with self.lock:
            try:
                if self.before is not None:
                    self.before(operation)
                yield self.connection()
                if self.after is not None:
                    self.after(operation)
            except libvirt.libvirtError as exc:
                if is_connection_error(exc):
                    self._drop_if_dead()
                raise map_error(exc, self.cloud, f"{what} on host {self.index}") from exc

    def _drop_if_dead(self) -> None:
        """Forget a connection that died, so the next call reopens it. A live one is kept
        (a test:/// world lives only as long as its connection)."""
        conn = self._conn
        if conn is None:
            return
        try:
            alive = bool(conn.isAlive())
        except libvirt.libvirtError:
            alive = False
        if not alive:
            self._conn = None
            with suppress(libvirt.libvirtError):
                conn.close()

    def close(self) -> None:
        with self.lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with suppress(libvirt.libvirtError):
                    conn.close()
