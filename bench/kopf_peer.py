"""A minimal kopf operator: the side-by-side peer for bench/operator_bench.py.

It handles reconciler.dev/v1alpha1 VirtualMachines with create/update/resume handlers
that stand in for "calling the cloud" by appending one JSON line (wall-clock time,
handler, key) to the file named by $KOPF_PEER_LOG. No planning, no cloud I/O: this is
the floor a per-object framework costs, not a functionally equal operator. kopf runs
with its default settings (it stores progress in annotations and posts an Event per
handler outcome).
Run: `KOPF_PEER_LOG=/tmp/peer.jsonl kopf run --standalone --all-namespaces bench/kopf_peer.py`
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import kopf

GROUP, VERSION, PLURAL = "reconciler.dev", "v1alpha1", "virtualmachines"
_OUT = open(os.environ.get("KOPF_PEER_LOG", "kopf-peer.jsonl"), "a", buffering=1)  # noqa: SIM115


def _record(handler: str, namespace: str | None, name: str | None) -> None:
    """Append one line per handler call; line buffering makes it visible at once."""
    key = f"VirtualMachine/{namespace}/{name}"
    _OUT.write(json.dumps({"ts": time.time(), "handler": handler, "key": key}) + "\n")


@kopf.on.create(GROUP, VERSION, PLURAL)
async def on_create(namespace: str | None, name: str | None, **_: Any) -> None:
    _record("create", namespace, name)


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def on_update(namespace: str | None, name: str | None, **_: Any) -> None:
    _record("update", namespace, name)


@kopf.on.resume(GROUP, VERSION, PLURAL)
async def on_resume(namespace: str | None, name: str | None, **_: Any) -> None:
    _record("resume", namespace, name)
