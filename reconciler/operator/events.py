"""Kubernetes Events for our objects, sent off the reconcile path and aggregated.

``record`` only enqueues (a bounded queue; when full the event is dropped and counted), so a
slow or failing API server never delays reconciling. A background thread creates core/v1
Events; the same (uid, type, reason, message) within 10 minutes PATCHes ``count`` and
``lastTimestamp`` of the Event already sent instead of creating another, like client-go's
correlator. The operator's RBAC allows only create and patch on events, so the recorder
remembers what it created rather than reading Events back.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.model.keys import API_VERSION, CLUSTER_SCOPED
from reconciler.operator.kube import KubeClient, NotFound, resource_path

__all__ = ["EventRecorder", "ObjectRef"]

log = logging.getLogger(__name__)

AGGREGATE_SECONDS = 600.0
MAX_MESSAGE = 1024
_REMEMBERED = 4096


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The object an Event is about."""

    kind: str
    namespace: str
    name: str
    uid: str
    api_version: str = API_VERSION


@dataclass(slots=True)
class _Sent:
    namespace: str
    name: str
    count: int
    at: float


@dataclass(frozen=True, slots=True)
class _Pending:
    ref: ObjectRef
    type_: str
    reason: str
    message: str
    when: datetime


class EventRecorder:
    """Records Events asynchronously; never raises, never blocks the caller."""

    def __init__(
        self,
        client: KubeClient,
        component: str = "reconciler",
        instance: str = "",
        queue_size: int = 1000,
    ) -> None:
        self.client = client
        self.component = component
        self.instance = instance
        self.dropped = 0
        self.failed = 0
        self.sent = 0
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=queue_size)
        self._sent: OrderedDict[tuple[str, str, str, str], _Sent] = OrderedDict()
        self._idle = threading.Condition()
        self._unfinished = 0
        self._thread = threading.Thread(target=self._work, name="event-recorder", daemon=True)
        self._thread.start()

    def record(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        """Queue an Event (type_ "Normal" or "Warning"); dropped and counted when full."""
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 3] + "..."
        item = _Pending(ref, type_, reason, message, datetime.now(UTC))
        with self._idle:
            self._unfinished += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._done()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:  # a burst must not flood the log
                log.warning(
                    "event queue full; dropped %s %s for %s (%d dropped so far)",
                    type_,
                    reason,
                    ref.name,
                    self.dropped,
                )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued Event was sent (or failed); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout``), then stop the background thread."""
        self.flush(timeout)
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=0.1)
        self._thread.join(timeout)

    def _done(self) -> None:
        with self._idle:
            self._unfinished -= 1
            if self._unfinished == 0:
                self._idle.notify_all()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._send(item)
                self.sent += 1
            except Exception as exc:  # an Event is never worth failing for
                self.failed += 1
                log.warning("event %s for %s not recorded: %s", item.reason, item.ref.name, exc)
            finally:
                self._done()

    def _send(self, item: _Pending) -> None:
        ref = item.ref
        key = (
            ref.uid or f"{ref.kind}/{ref.namespace}/{ref.name}",
            item.type_,
            item.reason,
            item.message,
        )
        stamp = item.when.strftime("%Y-%m-%dT%H:%M:%SZ")
        seen = self._sent.get(key)
        now = time.monotonic()
        if seen is not None and now - seen.at <= AGGREGATE_SECONDS:
            patch = {"count": seen.count + 1, "lastTimestamp": stamp}
            try:
                self.client.merge_patch(resource_path("Event", seen.namespace, seen.name), patch)
                seen.count += 1
                self._sent.move_to_end(key)
                return
            except NotFound:  # expired server-side (events have a TTL): create anew
                pass
        body = self._event(item, stamp)
        created = self.client.create(resource_path("Event", body["metadata"]["namespace"]), body)
        meta = created.get("metadata") or body["metadata"]
        self._sent[key] = _Sent(meta["namespace"], meta["name"], 1, now)
        self._sent.move_to_end(key)
        while len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)

    def _event(self, item: _Pending, stamp: str) -> dict[str, Any]:
        ref = item.ref
        cluster_scoped = ref.kind in CLUSTER_SCOPED or not ref.namespace
        namespace = "default" if cluster_scoped else ref.namespace
        involved = {
            "apiVersion": ref.api_version,
            "kind": ref.kind,
            "name": ref.name,
            "uid": ref.uid,
        }
        if not cluster_scoped:
            involved["namespace"] = ref.namespace
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref.name[:200]}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": involved,
            "type": item.type_,
            "reason": item.reason,
            "message": item.message,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": self.component, "host": self.instance},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
