"""Operator observability: metric names and labels, health endpoints over real HTTP,
JSON logs with extras, and redaction of secret-looking fields."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from reconciler.operator.observability import (
    REDACTED,
    HealthServer,
    Metrics,
    setup_logging,
)


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_metrics_render_names_and_labels() -> None:
    m = Metrics()
    m.observe_reconcile(0.02, "changed")
    m.count_action("VirtualMachine", "create", "ok")
    m.count_action("VirtualMachine", "create", "ok")
    m.count_action("Volume", "attach", "failed")
    m.set_queue_depth(7)
    m.set_costs({"aws-eu": 0.25, "private-dc": 0.05})
    m.set_objects({"VirtualMachine": 3})
    m.set_leader(True)
    m.count_error()
    text = m.render().decode()
    assert 'reconciler_reconcile_duration_seconds_bucket{le="0.005",scope="changed"} 0.0' in text
    assert 'reconciler_reconcile_duration_seconds_bucket{le="60.0",scope="changed"} 1.0' in text
    assert 'reconciler_reconcile_duration_seconds_count{scope="changed"} 1.0' in text
    assert (
        'reconciler_actions_total{action="create",kind="VirtualMachine",outcome="ok"} 2.0' in text
    )
    assert 'reconciler_actions_total{action="attach",kind="Volume",outcome="failed"} 1.0' in text
    assert "reconciler_queue_depth 7.0" in text
    assert 'reconciler_cost_per_hour_usd{cloud="aws-eu"} 0.25' in text
    assert 'reconciler_objects{kind="VirtualMachine"} 3.0' in text
    assert "reconciler_is_leader 1.0" in text
    assert "reconciler_reconcile_errors_total 1.0" in text
    stamp = next(
        line for line in text.splitlines() if line.startswith("reconciler_last_reconcile_timestamp")
    )
    assert float(stamp.split()[1]) > 1.6e9


def test_vanished_clouds_and_kinds_leave_the_gauges() -> None:
    m = Metrics()
    m.set_costs({"aws-eu": 0.25, "private-dc": 0.05})
    m.set_objects({"VirtualMachine": 3, "Volume": 1})
    m.set_costs({"private-dc": 0.07})
    m.set_objects({"Volume": 2})
    text = m.render().decode()
    assert "aws-eu" not in text
    assert 'reconciler_cost_per_hour_usd{cloud="private-dc"} 0.07' in text
    assert 'kind="VirtualMachine"' not in text
    assert 'reconciler_objects{kind="Volume"} 2.0' in text


def test_registries_are_independent_and_outcomes_checked() -> None:
    a, b = Metrics(), Metrics()
    a.set_queue_depth(3)
    assert "reconciler_queue_depth 0.0" in b.render().decode()
    with pytest.raises(ValueError, match="outcome"):
        a.count_action("VirtualMachine", "create", "maybe")


def test_health_server_endpoints() -> None:
    ready: list[bool | tuple[bool, str]] = [(False, "initial sync\nnot done")]
    alive = [True]
    metrics = Metrics()
    metrics.set_queue_depth(2)
    server = HealthServer(
        metrics,
        host="127.0.0.1",
        port=0,
        ready=lambda: ready[0],
        alive=lambda: alive[0],
    )
    with server:
        base = f"http://127.0.0.1:{server.port}"
        assert server.port != 0
        code, ctype, body = _get(base + "/metrics")
        assert code == 200
        assert ctype.startswith("text/plain; version=0.0.4")
        assert "reconciler_queue_depth 2.0" in body
        assert _get(base + "/healthz")[::2] == (200, "ok\n")
        assert _get(base + "/readyz")[::2] == (503, "initial sync not done\n")
        ready[0] = True
        assert _get(base + "/readyz")[::2] == (200, "ok\n")
        alive[0] = False
        assert _get(base + "/healthz")[0] == 500
        assert _get(base + "/nothing")[0] == 404
    server.stop()  # a second stop is harmless


def test_failing_probe_answers_instead_of_crashing() -> None:
    def broken() -> bool:
        raise RuntimeError("cache gone")

    with HealthServer(Metrics(), host="127.0.0.1", port=0, ready=broken) as server:
        code, _, body = _get(f"http://127.0.0.1:{server.port}/readyz")
        assert code == 503
        assert "RuntimeError: cache gone" in body


@pytest.fixture()
def log_stream(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """What the logging handler wrote to stderr; restores the root logger afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield lambda: capsys.readouterr().err
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_json_logs_carry_extras_and_errors(log_stream: Callable[[], str]) -> None:
    setup_logging("info", "json")
    setup_logging("info", "json")  # idempotent: still one line per record
    log = logging.getLogger("reconciler.operator.test")
    log.debug("hidden")
    log.info("created %s", "web-0", extra={"key": "vm/default/web-0", "cloud": "aws-eu"})
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("apply failed", extra={"action": "create"})
    first, second = _lines(log_stream())
    assert first["msg"] == "created web-0"
    assert first["level"] == "info"
    assert first["logger"] == "reconciler.operator.test"
    assert first["key"] == "vm/default/web-0" and first["cloud"] == "aws-eu"
    assert str(first["ts"]).endswith("Z") and "T" in str(first["ts"])
    assert second["level"] == "error"
    assert second["error"] == "ValueError: bad\nthing"
    assert second["action"] == "create"


def test_secret_looking_fields_are_redacted(log_stream: Callable[[], str]) -> None:
    setup_logging("debug", "json")
    logging.getLogger("t").info(
        "connecting",
        extra={
            "api_token": "abc",
            "dbPassword": "hunter2",
            "cloud": "aws-eu",
            "spec": {"credentials": {"key": "x"}, "region": "eu"},
        },
    )
    text = log_stream()
    (line,) = _lines(text)
    assert line["api_token"] == REDACTED and line["dbPassword"] == REDACTED
    assert line["spec"] == {"credentials": REDACTED, "region": "eu"}
    assert line["cloud"] == "aws-eu"
    assert "hunter2" not in text


def test_text_format_and_bad_arguments(log_stream: Callable[[], str]) -> None:
    setup_logging("warning", "text")
    logging.getLogger("t").info("quiet")
    logging.getLogger("t").warning("loud", extra={"cloud": "aws-eu", "secret": "s"})
    out = log_stream()
    assert "quiet" not in out
    assert "WARNING t: loud cloud=aws-eu secret=[REDACTED]" in out
    assert len(out.splitlines()) == 1
    with pytest.raises(ValueError):
        setup_logging("chatty")
    with pytest.raises(ValueError):
        setup_logging("info", "xml")
