"""Benchmark: `reconciler operator` with N VirtualMachines resident, next to a kopf peer.

Starts a real etcd + kube-apiserver (tests/kube/kubeserver.py), one sim Cloud, one
BrokerPolicy, one Image and N VMs, then measures: initial sync (vs `kubectl get -o json`),
convergence (all VMs in the sim world, all Ready=True), spec change -> first cloud call
latency, and RSS per object; then the same for bench/kopf_peer.py over the same objects.
Run: `.venv/bin/python bench/operator_bench.py --vms 10000` (prints a markdown report).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from kube.kubeserver import KubeServer, namespace_body, vm_body  # noqa: E402
from kube.ophelp import (  # noqa: E402
    Operator,
    cloud_body,
    cond,
    create,
    image_body,
    policy_body,
    sim_resources,
    wait_for,
)

from reconciler.operator.kube import KubeClient, resource_path  # noqa: E402

NS, CLOUD = "bench", "bench-sim"
#: The allocator settings of the image and manifests/deployment.yaml (docs/operator.md).
#: RSS is sampled 2 s after the last VM turns Ready and again this long after it.
SETTLE_SECONDS = 20
DEPLOYED_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2"}
Rows = list[tuple[str, str, str]]


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a log file (other lines, e.g. tracebacks, skipped)."""
    out = []
    text = path.read_text(errors="replace") if path.exists() else ""
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def iso_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def setup_world(client: KubeClient) -> None:
    client.create("/api/v1/namespaces", namespace_body(NS))
    create(client, cloud_body(CLOUD, simulation={"latencyMs": 0}))
    create(client, policy_body(NS))
    create(client, image_body(NS))


def create_vms(client: KubeClient, count: int) -> float:
    """Create ``count`` VMs with 16 threads; return the seconds it took."""
    began = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: create(client, vm_body(f"vm-{i:05d}", NS)), range(count)))
    return time.monotonic() - began


def kubectl_seconds(kube: KubeServer) -> float:
    """Median wall time of 3 `kubectl get virtualmachines -A -o json > /dev/null`."""
    times = []
    for _ in range(3):
        began = time.monotonic()
        subprocess.run(
            ["kubectl", "--kubeconfig", kube.admin_kubeconfig, "get", "virtualmachines", "-A",
             "-o", "json"],
            stdout=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        times.append(time.monotonic() - began)
    return statistics.median(times)


def memory_top(op: Operator) -> list[str]:
    """SIGUSR1 makes a traced operator log its top allocation sites; collect them."""
    assert op.proc is not None
    mark = op.log_path.stat().st_size
    op.proc.send_signal(signal.SIGUSR1)
    lines: list[str] = []

    def logged() -> bool:
        with op.log_path.open("rb") as fh:
            fh.seek(mark)
            found = [ln.decode() for ln in fh if b"allocated at" in ln or b"traced memory" in ln]
        lines[:] = found
        return len(found) >= 26

    wait_for(logged, 300, "tracemalloc top", 1.0)
    return lines


def start_operator(kube: KubeServer, state: Path, tag: str) -> tuple[Operator, float]:
    """Start `reconciler operator` (operator user, the default --resync 60, so full
    passes run during the measurements as they would in production); wait for caches
    synced."""
    op = Operator(kube, state, tag, "--resync", "60", identity=f"bench-{tag}")
    log = op.log_path.open("ab")
    began = time.monotonic()
    op.proc = subprocess.Popen(
        op.argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **DEPLOYED_ENV}
    )
    log.close()
    return op, began


def synced_line(op: Operator, timeout: float) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        assert op.proc is not None
        if op.proc.poll() is not None:
            raise RuntimeError(f"operator exited {op.proc.returncode}:\n{op.logs()[-3000:]}")
        return next((e for e in json_lines(op.log_path) if e.get("msg") == "caches synced"), None)

    return wait_for(find, timeout, "caches synced", every=0.1)


def patch_latencies(
    client: KubeClient, res: dict[str, Any], seen: Callable[[str, float], float | None]
) -> list[float]:
    """Patch random VMs' vcpus 2<->4 every 1.5 s; latency = first cloud-call time - t0.

    ``res["vcpus"]`` remembers each VM's current value across runs, so every patch changes.
    """
    rng = random.Random(len(res["vcpus"]) + 3)
    vcpus: dict[str, int] = res["vcpus"]
    names = [f"vm-{i:05d}" for i in range(res["vms"])]
    sent: list[tuple[str, float]] = []
    for _ in range(res["patches"]):
        name = rng.choice(names)
        vcpus[name] = 4 if vcpus.get(name, 2) == 2 else 2
        t0 = time.time()
        client.merge_patch(
            resource_path("VirtualMachine", NS, name),
            {"spec": {"resources": {"vcpus": vcpus[name]}}},
        )
        sent.append((f"VirtualMachine/{NS}/{name}", t0))
        time.sleep(1.5)
    deadline = time.monotonic() + 120
    while True:
        found = [seen(key, t0) for key, t0 in sent]
        if all(f is not None for f in found) or time.monotonic() > deadline:
            return [f - t0 for f, (_, t0) in zip(found, sent, strict=True) if f is not None]
        time.sleep(1)


def operator_call_finder(op: Operator) -> Callable[[str, float], float | None]:
    def seen(key: str, t0: float) -> float | None:
        for e in json_lines(op.log_path):
            if e.get("msg") == "action start" and e.get("key") == key:
                ts = iso_ts(e["ts"])
                if ts >= t0 - 0.001:  # log ts has millisecond resolution
                    return ts
        return None

    return seen


def vm_ready(client: KubeClient, index: int) -> bool:
    obj = client.get(resource_path("VirtualMachine", NS, f"vm-{index:05d}"))
    return cond(obj, "Ready").get("status") == "True"


def ready_count(client: KubeClient) -> int:
    items = client.list(resource_path("VirtualMachine", NS)).get("items") or []
    return sum(cond(i, "Ready").get("status") == "True" for i in items)


def stop_operator(op: Operator, res: dict[str, Any], timeout: float = 10) -> None:
    """SIGTERM; note in ``res["sigterm"]`` whether it exited in time (else SIGKILL)."""
    assert op.proc is not None
    began = time.monotonic()
    try:
        code = op.terminate(timeout)
        res.setdefault("sigterm", []).append(f"exit {code} in {time.monotonic() - began:.1f} s")
    except subprocess.TimeoutExpired:
        res.setdefault("sigterm", []).append(f"no exit {timeout:.0f} s after SIGTERM; killed")
        op.kill()


def problems(op_log: Path) -> dict[str, int]:
    """Warning/error log lines, counted by message with the object name cut off."""
    bad = [e for e in json_lines(op_log) if e.get("level") in ("warning", "error", "critical")]
    return dict(Counter(f"{e['level']}: {str(e.get('msg')).split(' for ')[0]}" for e in bad))


def pass_seconds(op: Operator) -> dict[str, tuple[float, float]]:
    """(sum, count) of the operator's reconcile-duration histogram, by pass scope."""
    name = "reconciler_reconcile_duration_seconds"
    return {
        scope: (op.metric(f"{name}_sum", scope=scope), op.metric(f"{name}_count", scope=scope))
        for scope in ("full", "changed")
    }


def wait_quiet(path: Path, quiet: float = 5.0, timeout: float = 600) -> None:
    """Wait until ``path`` has not grown for ``quiet`` seconds (a process settled)."""
    size, since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = path.stat().st_size if path.exists() else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.5)


def bench_operator(
    kube: KubeServer, work: Path, n: int, base_rss: int, res: dict[str, Any]
) -> None:
    """Initial sync, convergence, latency and RSS of our operator (baseline RSS given)."""
    client = kube.admin_client()
    op, began = start_operator(kube, work / "state", "main")
    try:
        synced = synced_line(op, 600)
        assert op.proc is not None
        res["sync_objects"], res["sync_seconds"] = synced["objects"], synced["seconds"]
        res["rss_synced"] = rss_kib(op.proc.pid)
        wait_for(lambda: len(sim_resources(op.state, CLOUD)) >= n, 3600, "all VMs in sim", 1.0)
        res["converged_sim"] = time.monotonic() - began
        sample = random.Random(1).sample(range(n), min(5, n))
        for i in sample:
            wait_for(partial(vm_ready, client, i), 3600, f"vm-{i:05d} Ready", 1.0)
        wait_for(lambda: ready_count(client) >= n, 3600, "all VMs Ready", 2.0)
        res["converged_ready"] = time.monotonic() - began
        time.sleep(2)
        res["rss_converged"] = rss_kib(op.proc.pid)
        time.sleep(SETTLE_SECONDS - 2)  # no changes meanwhile: the steady state
        res["rss_settled"] = rss_kib(op.proc.pid)
        if "PYTHONTRACEMALLOC" in DEPLOYED_ENV:
            res["memory_top"] = memory_top(op)
        before = pass_seconds(op)
        res["latency"] = patch_latencies(client, res, operator_call_finder(op))
        after = pass_seconds(op)
        res["passes"] = {
            scope: {
                "count": after[scope][1] - before[scope][1],
                "mean": (after[scope][0] - before[scope][0])
                / max(1.0, after[scope][1] - before[scope][1]),
            }
            for scope in after
        }
        res["rss_after_patches"] = rss_kib(op.proc.pid)
        if "PYTHONTRACEMALLOC" in DEPLOYED_ENV:
            res["memory_top_after_patches"] = memory_top(op)
        res["problems"] = problems(op.log_path)
        res["op_rss_per_obj"] = (res["rss_converged"] - base_rss) * 1024 / n
        stop_operator(op, res)
    finally:
        op.close()
        client.close()


def kopf_start(kube: KubeServer, out: Path, name: str) -> tuple[subprocess.Popen[bytes], float]:
    env = {**os.environ, "KUBECONFIG": kube.admin_kubeconfig, "KOPF_PEER_LOG": str(out)}
    argv = [str(Path(sys.executable).parent / "kopf"), "run", "--standalone", "--all-namespaces",
            str(ROOT / "bench" / "kopf_peer.py")]  # fmt: skip
    log = (out.parent / f"{name}.log").open("ab")
    began = time.monotonic()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    return proc, began


def kopf_stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def kopf_baseline(kube: KubeServer, work: Path) -> int:
    """RSS of the kopf peer watching zero VirtualMachines (after it settles)."""
    out = work / "kopf-base.jsonl"
    proc, _ = kopf_start(kube, out, "kopf-base")
    try:
        time.sleep(8)
        if proc.poll() is not None:
            raise RuntimeError((work / "kopf-base.log").read_text()[-3000:])
        return rss_kib(proc.pid)
    finally:
        kopf_stop(proc)


def bench_kopf(kube: KubeServer, work: Path, n: int, base_rss: int, res: dict[str, Any]) -> None:
    out = work / "kopf.jsonl"
    client = kube.admin_client()
    proc, began = kopf_start(kube, out, "kopf")
    try:

        def handled() -> bool:
            if proc.poll() is not None:
                raise RuntimeError((work / "kopf.log").read_text()[-3000:])
            keys = {e["key"] for e in json_lines(out) if e["handler"] in ("create", "resume")}
            return len(keys) >= n

        wait_for(handled, 3600, "kopf handled all objects", 1.0)
        res["kopf_initial"] = time.monotonic() - began
        wait_quiet(work / "kopf.log")  # kopf logs per object while it patches annotations
        res["kopf_settled"] = time.monotonic() - began
        res["kopf_rss"] = rss_kib(proc.pid)
        res["kopf_rss_per_obj"] = (res["kopf_rss"] - base_rss) * 1024 / n

        def seen(key: str, t0: float) -> float | None:
            return next(
                (e["ts"] for e in json_lines(out)
                 if e["handler"] == "update" and e["key"] == key and e["ts"] >= t0),
                None,
            )  # fmt: skip

        res["kopf_latency"] = patch_latencies(client, res, seen)
    finally:
        kopf_stop(proc)
        client.close()


def report(res: dict[str, Any]) -> str:
    """The markdown table (plus machine and command) for docs/benchmarks.md."""
    n, lat, klat = res["vms"], res.get("latency") or [0.0], res.get("kopf_latency") or [0.0]

    def ms(xs: list[float], q: float) -> str:
        return f"{pct(xs, q) * 1000:.0f} ms"

    rows: Rows = [
        ("create N VMs (16 threads, admin)", f"{res['create_seconds']:.1f} s", "same objects"),
        ("`kubectl get virtualmachines -A -o json` (median of 3)",
         f"{res['kubectl_seconds']:.2f} s", "—"),
        ("initial sync (list+watch all kinds, `caches synced`)",
         f"{res['sync_seconds']:.2f} s ({res['sync_objects']} objects)", "—"),
        ("all N handled: ours = created in the sim cloud / kopf = create/resume handler ran",
         f"{res['converged_sim']:.1f} s", f"{res.get('kopf_initial', 0):.1f} s"),
        ("all N Ready=True in status", f"{res['converged_ready']:.1f} s", "— (writes no status)"),
        (f"spec change -> first cloud call, p50 ({len(lat)} patches)", ms(lat, 0.5),
         ms(klat, 0.5)),
        ("spec change -> first cloud call, p99", ms(lat, 0.99), ms(klat, 0.99)),
        ("spec change -> first cloud call, max", f"{max(lat) * 1000:.0f} ms",
         f"{max(klat) * 1000:.0f} ms"),
        ("RSS with 0 VMs (baseline)", f"{res['base_rss'] / 1024:.0f} MiB",
         f"{res.get('kopf_base_rss', 0) / 1024:.0f} MiB"),
        ("RSS after convergence", f"{res['rss_converged'] / 1024:.0f} MiB",
         f"{res.get('kopf_rss', 0) / 1024:.0f} MiB"),
        ("RSS per object ((converged - baseline) / N)",
         f"{res['op_rss_per_obj'] / 1024:.1f} KiB",
         f"{res.get('kopf_rss_per_obj', 0) / 1024:.1f} KiB"),
        (f"RSS per object settled ({SETTLE_SECONDS} s after convergence, no changes)",
         f"{(res['rss_settled'] - res['base_rss']) * 1024 / n / 1024:.1f} KiB", "—"),
    ]  # fmt: skip
    lines = [f"| measure ({n:,} VMs) | reconciler operator | kopf peer |", "|---|---:|---:|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines.append("")
    lines.append(f"RSS at `caches synced`: {res['rss_synced'] / 1024:.0f} MiB; after the "
                 f"latency patches: {res['rss_after_patches'] / 1024:.0f} MiB.")  # fmt: skip
    lines.append(f"Operator SIGTERM: {'; '.join(res.get('sigterm', []))}.")
    lines.append(f"Operator log warnings/errors: {sum(res['problems'].values())}")
    lines += [f"- {count} x `{msg}`" for msg, count in res["problems"].items()]
    passes = "; ".join(
        f"{p['count']:.0f} {scope} (mean {p['mean']:.3f} s)" for scope, p in res["passes"].items()
    )
    lines.append(
        f"Reconcile passes during the latency patches: {passes}. kopf settled (log quiet "
        f"5 s) {res.get('kopf_settled', 0):.1f} s after start."
    )
    return "\n".join(lines)


def machine() -> str:
    mem = Path("/proc/meminfo").read_text().split()[1]
    return (f"{os.cpu_count()} cores {platform.machine()}, {int(mem) // 1024 // 1024} GiB, "
            f"Python {platform.python_version()}, measured {datetime.now():%Y-%m-%d}")  # fmt: skip


def run(n: int, patches: int, with_kopf: bool, work: Path) -> dict[str, Any]:
    res: dict[str, Any] = {"vms": n, "patches": patches, "vcpus": {}}
    kube = KubeServer().start()
    try:
        client = kube.admin_client()
        setup_world(client)
        op, _ = start_operator(kube, work / "state", "base")
        try:
            synced_line(op, 120)
            time.sleep(3)  # a first reconcile pass over the empty world
            assert op.proc is not None
            res["base_rss"] = rss_kib(op.proc.pid)
            stop_operator(op, res)
        finally:
            op.close()
        if with_kopf:
            res["kopf_base_rss"] = kopf_baseline(kube, work)
        res["create_seconds"] = create_vms(client, n)
        client.close()
        res["kubectl_seconds"] = kubectl_seconds(kube)
        bench_operator(kube, work, n, res["base_rss"], res)
        if with_kopf:
            bench_kopf(kube, work, n, res["kopf_base_rss"], res)
    finally:
        kube.stop()
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=10000)
    parser.add_argument("--patches", type=int, default=30)
    parser.add_argument("--no-kopf", action="store_true", help="skip the kopf peer")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="run the operator under tracemalloc and log where its memory is at convergence "
        "(RSS numbers then include tracemalloc's own overhead)",
    )
    args = parser.parse_args()
    if args.trace_memory:
        DEPLOYED_ENV["PYTHONTRACEMALLOC"] = "1"
    work = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    began = time.monotonic()
    res = run(args.vms, args.patches, not args.no_kopf, work)
    res["total_seconds"] = time.monotonic() - began
    res.pop("vcpus")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    print(f"Machine: {machine()}; whole run {res['total_seconds']:.0f} s; work dir {work}\n")
    print(report(res))
    for heading in ("memory_top", "memory_top_after_patches"):
        print(f"\n{heading}:")
        for line in res.get(heading, ()):
            print(line.rstrip())
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
