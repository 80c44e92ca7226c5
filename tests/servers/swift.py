"""A REAL OpenStack Swift all-in-one on 127.0.0.1, started once per test session.

Recipe (see /work/shared/BACKENDS.md): swift 2.38 from pip + memcached (apt), one replica,
rings with part power 8, tempauth + s3api, ``swift_dir`` in every config, object server on
a plain directory with ``mount_check = false`` (the tmp filesystem must support user
xattrs; checked at start). Object versioning (``X-Versions-Enabled``) is on in the proxy.
Every process is started by us and terminated by PID at interpreter exit.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

#: tempauth account, user and key of the all-in-one (test data, not a secret).
ACCOUNT, USER, KEY = "test", "tester", "testing"

_LOCK = threading.Lock()
_SERVER: SwiftServer | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin(name: str) -> str:
    """A Swift console script from this interpreter's venv, else from PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"'{name}' not found: run scripts/install-cloud-backends.sh")
    return found


@dataclass
class SwiftServer:
    """A running all-in-one: proxy URL, storage URL of the tempauth account, PIDs."""

    root: Path
    proxy_port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def storage_url(self) -> str:
        return f"{self.proxy_url}/v1/AUTH_{ACCOUNT}"

    def token(self) -> str:
        """A fresh tempauth token for the test account (valid 24 h)."""
        request = urllib.request.Request(
            f"{self.proxy_url}/auth/v1.0",
            headers={"X-Auth-User": f"{ACCOUNT}:{USER}", "X-Auth-Key": KEY},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return str(response.headers["X-Auth-Token"])

    def _call(self, method: str, path: str = "") -> bytes:
        request = urllib.request.Request(
            f"{self.storage_url}{path}", method=method, headers={"X-Auth-Token": self.token()}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())

    def containers(self) -> list[str]:
        """Every container of the test account (hidden versions containers included)."""
        return [str(c["name"]) for c in json.loads(self._call("GET", "?format=json") or b"[]")]

    def clear(self) -> None:
        """Delete every object (all versions) and container: an empty backend."""
        for name in self.containers():
            path = "/" + quote(name, safe="")
            listing = json.loads(self._call("GET", f"{path}?format=json&versions") or b"[]")
            for obj in listing:
                version = obj.get("version_id")
                suffix = f"?version-id={version}" if version and version != "null" else ""
                self._call("DELETE", f"{path}/{quote(obj['name'])}{suffix}")
            self._call("DELETE", path)

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processes.clear()
        shutil.rmtree(self.root, ignore_errors=True)


_COMMON = """[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
swift_dir = {root}
devices = {root}/node
mount_check = false
log_level = WARNING
log_name = {name}
"""

_SERVER_APP = """
[pipeline:main]
pipeline = {name}

[app:{name}]
use = egg:swift#{kind}
"""

_PROXY = """
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth
    copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:tempauth]
use = egg:swift#tempauth
user_{account}_{user} = {key} .admin

[filter:s3api]
use = egg:swift#s3api

[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true
allow_object_versioning = true

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcache_port}

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:symlink]
use = egg:swift#symlink
"""


def _check_xattrs(root: Path) -> None:
    probe = root / "xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.swift.probe", b"1")
    except OSError as exc:
        raise RuntimeError(f"Swift needs user xattrs on {root}: {exc}") from exc
    finally:
        probe.unlink()


_RING_SCRIPT = """
import sys
from swift.common.ring import RingBuilder
for arg in sys.argv[1:]:
    path, port = arg.rsplit(":", 1)
    builder = RingBuilder(8, 1, 1)
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                     "device": "sdb1", "weight": 100.0, "meta": ""})
    builder.rebalance()
    builder.get_ring().save(path)
"""


def _build_rings(root: Path, ports: dict[str, int]) -> None:
    """One-replica rings, part power 8, one device each (as swift-ring-builder writes them),
    built in ONE child process: importing Swift (eventlet) into the test process is unsafe."""
    args = [f"{root / kind}.ring.gz:{ports[kind]}" for kind in ("account", "container", "object")]
    subprocess.run([sys.executable, "-c", _RING_SCRIPT, *args], check=True, capture_output=True)


def _write_configs(root: Path, ports: dict[str, int], memcache_port: int) -> None:
    (root / "swift.conf").write_text(
        "[swift-hash]\nswift_hash_path_suffix = reconciler-test\n"
        "swift_hash_path_prefix = reconciler-test\n\n"
        "[storage-policy:0]\nname = gold\ndefault = yes\n"
    )
    (root / "node" / "sdb1").mkdir(parents=True)
    for kind in ("account", "container", "object"):
        name = f"{kind}-server"
        text = _COMMON.format(port=ports[kind], root=root, name=name)
        (root / f"{name}.conf").write_text(text + _SERVER_APP.format(name=name, kind=kind))
    _build_rings(root, ports)
    proxy = _COMMON.format(port=ports["proxy"], root=root, name="proxy-server")
    proxy += _PROXY.format(account=ACCOUNT, user=USER, key=KEY, memcache_port=memcache_port)
    (root / "proxy-server.conf").write_text(proxy)


def _wait_ready(server: SwiftServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in server.processes:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"a Swift process exited early: {proc.args!r}; see {server.root}"
                )
        try:
            server.token()
            # The account is auto-created on first use; a HEAD proves the whole chain.
            request = urllib.request.Request(
                server.storage_url, method="HEAD", headers={"X-Auth-Token": server.token()}
            )
            with urllib.request.urlopen(request, timeout=5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"Swift did not become ready in {timeout:.0f} s; logs in {server.root}")


def start_swift() -> SwiftServer:
    """Start a new all-in-one in a fresh tmp dir (callers normally use ``swift_server``)."""
    root = Path(tempfile.mkdtemp(prefix="reconciler-swift-"))
    _check_xattrs(root)
    ports = {kind: free_port() for kind in ("account", "container", "object", "proxy")}
    memcache_port = free_port()
    _write_configs(root, ports, memcache_port)
    server = SwiftServer(root=root, proxy_port=ports["proxy"])
    memcached = shutil.which("memcached") or "/usr/bin/memcached"
    memcache = [memcached, "-l", "127.0.0.1", "-p", str(memcache_port), "-U", "0", "-m", "32"]
    if os.geteuid() == 0:  # memcached refuses to run as root without -u
        memcache += ["-u", "root"]
    commands = [memcache]
    commands += [
        [_bin(f"swift-{kind}-server"), str(root / f"{kind}-server.conf")]
        for kind in ("account", "container", "object", "proxy")
    ]
    try:
        for command in commands:
            log = open(root / f"{Path(command[0]).name}.log", "wb")  # noqa: SIM115
            server.processes.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root)
            )
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def swift_server() -> SwiftServer:
    """The session's Swift all-in-one, started on first use and stopped at exit."""
    global _SERVER
    with _LOCK:
        if _SERVER is None:
            _SERVER = start_swift()
            atexit.register(_SERVER.stop)
        return _SERVER
