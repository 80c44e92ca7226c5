"""Operator observability: Prometheus metrics, health endpoints and structured logs.

Nothing here talks to Kubernetes; the operator feeds ``Metrics`` and serves it with
``HealthServer``. Each ``Metrics`` has its own registry (never the process-global one),
so tests and several operators in one process do not collide.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = frozenset({"ok", "failed", "skipped"})
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Readiness = Callable[[], bool | tuple[bool, str]]
"""A readiness probe returns ``True``/``False``, or ``(ready, reason)``: the reason is
sent as the one-line body of a 503 so ``kubectl describe pod`` says why."""


class Metrics:
    """The operator's Prometheus metrics, all named ``reconciler_*``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.reconcile_seconds = Histogram(
            "reconciler_reconcile_duration_seconds",
            "Time one reconcile pass took (observe, plan, apply), by scope: full (every "
            "object, every cloud observed) or changed (only objects changed since).",
            ["scope"],
            buckets=RECONCILE_BUCKETS,
            registry=reg,
        )
        self.actions_total = Counter(
            "reconciler_actions_total",
            "Cloud actions carried out, by resource kind, action and outcome.",
            ["kind", "action", "outcome"],
            registry=reg,
        )
        self.queue_depth = Gauge(
            "reconciler_queue_depth", "Objects waiting to be reconciled.", registry=reg
        )
        self.cost_per_hour = Gauge(
            "reconciler_cost_per_hour_usd",
            "What the placed resources cost per hour, by cloud, in USD.",
            ["cloud"],
            registry=reg,
        )
        self.objects = Gauge(
            "reconciler_objects",
            "Objects in the operator's cache, by kind.",
            ["kind"],
            registry=reg,
        )
        self.is_leader = Gauge(
            "reconciler_is_leader", "1 while this replica holds the leader Lease.", registry=reg
        )
        self.last_reconcile_timestamp = Gauge(
            "reconciler_last_reconcile_timestamp_seconds",
            "Unix time the last reconcile pass finished.",
            registry=reg,
        )
        self.reconcile_errors_total = Counter(
            "reconciler_reconcile_errors_total",
            "Reconcile passes that ended in an error.",
            registry=reg,
        )
        self.status_writes_total = Counter(
            "reconciler_status_writes_total",
            "Status PATCHes sent (a converged cluster sends none).",
            registry=reg,
        )
        self._lock = threading.Lock()
        self._clouds: set[str] = set()
        self._kinds: set[str] = set()

    def observe_reconcile(self, seconds: float, scope: str = "full") -> None:
        """Record one finished reconcile pass and stamp its end time."""
        self.reconcile_seconds.labels(scope=scope).observe(seconds)
        self.last_reconcile_timestamp.set(time.time())

    def count_status_write(self) -> None:
        self.status_writes_total.inc()

    def count_error(self) -> None:
        self.reconcile_errors_total.inc()

    def count_action(self, kind: str, action: str, outcome: str) -> None:
        """Count one action; ``outcome`` is ok, failed or skipped."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
        self.actions_total.labels(kind=kind, action=action, outcome=outcome).inc()

    def set_queue_depth(self, n: int) -> None:
        self.queue_depth.set(n)

    def set_leader(self, leader: bool) -> None:
        self.is_leader.set(1 if leader else 0)

    def set_costs(self, per_cloud: Mapping[str, float]) -> None:
        """Replace the $/h per cloud; clouds no longer present disappear from the gauge."""
        with self._lock:
            self._clouds = _replace_series(self.cost_per_hour, self._clouds, per_cloud)

    def set_objects(self, per_kind: Mapping[str, int]) -> None:
        """Replace the object counts per kind; kinds no longer present disappear."""
        with self._lock:
            self._kinds = _replace_series(self.objects, self._kinds, per_kind)

    def render(self) -> bytes:
        """Every metric in the Prometheus text exposition format."""
        return generate_latest(self.registry)


def _replace_series(gauge: Gauge, old: set[str], values: Mapping[str, float]) -> set[str]:
    for gone in old - set(values):
        gauge.remove(gone)
    for label, value in values.items():
        gauge.labels(label).set(value)
    return set(values)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        metrics: Metrics,
        ready: Readiness,
        alive: Callable[[], bool],
    ) -> None:
        super().__init__(address, _Handler)
        self.metrics = metrics
        self.ready = ready
        self.alive = alive


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, self.server.metrics.render(), CONTENT_TYPE)
        elif path == "/healthz":
            ok, reason = _probe(self.server.alive, "not alive")
            self._send(200 if ok else 500, _line("ok" if ok else reason))
        elif path == "/readyz":
            ok, reason = _probe(self.server.ready, "not ready")
            self._send(200 if ok else 503, _line("ok" if ok else reason))
        else:
            self._send(404, b"not found\n")

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: probes hit these endpoints every few seconds."""


def _probe(check: Readiness, default_reason: str) -> tuple[bool, str]:
    try:
        result = check()
    except Exception as exc:  # a failing probe must answer, not kill the server thread
        return False, f"probe failed: {type(exc).__name__}: {exc}"
    if isinstance(result, tuple):
        return bool(result[0]), str(result[1]) or default_reason
    return bool(result), default_reason


def _line(text: str) -> bytes:
    return (" ".join(text.split()) + "\n").encode("utf-8")


class HealthServer:
    """Serves /metrics, /healthz and /readyz from a daemon thread.

    ``alive()`` -> 200 "ok" or 500. ``ready()`` returns a bool or ``(bool, reason)``
    -> 200 "ok" or 503 with the reason on one line. A probe that raises counts as failing.
    ``port=0`` picks a free port; read the chosen one from ``port`` after ``start()``.
    """

    def __init__(
        self,
        metrics: Metrics,
        host: str = "0.0.0.0",
        port: int = 8080,
        ready: Readiness = lambda: True,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self._port = port
        self._ready = ready
        self._alive = alive
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started, else the requested one."""
        return self._server.server_address[1] if self._server else self._port

    def start(self) -> None:
        """Bind and serve in the background; raises OSError if the port is taken."""
        if self._server is not None:
            return
        self._server = _Server((self.host, self._port), self.metrics, self._ready, self._alive)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- structured logging -------------------------------------------------------------

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
SENSITIVE = re.compile(r"token|passw|secret|credential|api_?key|authorization|private_?key", re.I)
REDACTED = "[REDACTED]"
_HANDLER_MARK = "_reconciler_handler"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and k[0] != "_"}


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: REDACTED if SENSITIVE.search(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


class RedactFilter(logging.Filter):
    """Blank the value of every extra field named like a secret (nested dicts too).

    Defence in depth: callers never log secrets, this catches the mistake if one does.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _extras(record).items():
            setattr(record, key, REDACTED if SENSITIVE.search(key) else _redact(value))
        return True


def _timestamp(record: logging.LogRecord) -> str:
    when = dt.datetime.fromtimestamp(record.created, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the extras, and ``error``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = "".join(traceback.format_exception(exc)).rstrip()
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For humans: ``ts LEVEL logger: msg key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line} {fields}" if fields else line
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line += f" error={type(exc).__name__}: {exc}"
        return line


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    """Configure the root logger: one stderr handler, JSON or text, secrets redacted.

    Idempotent: a second call replaces the handler this function installed before.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    if fmt not in ("json", "text"):
        raise ValueError(f"unknown log format {fmt!r}; use json or text")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactFilter())
    root.addHandler(handler)
    root.setLevel(numeric)
