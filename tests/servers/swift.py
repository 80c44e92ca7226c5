"""A REAL OpenStack Swift all-in-one on 127.0.0.1, started once per test session.

Recipe (see /work/shared/BACKENDS.md): swift 2.38 from pip + memcached (apt), one replica,
rings with part power 8, tempauth + s3api, ``swift_dir`` in every config, object server on
a plain directory with ``mount_check = false`` (the tmp filesystem must support user
xattrs; checked at start). Object versioning (``X-Versions-Enabled``) is on in the proxy.
Every process is started by us and terminated by PID at interpreter exit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from servers.process import (
    find_binary,
    free_ports,
    once_per_session,
    spawn,
    stop_processes,
    wait_until,
)

#: tempauth account, user and key of the all-in-one (test data, not a secret).
ACCOUNT, USER, KEY = "test", "tester", "testing"


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
        stop_processes(self.processes, self.root)
        self.processes.clear()


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


def _answers(server: SwiftServer) -> bool:
    """True once tempauth and the account answer (the account is auto-created on first
    use; a HEAD proves the whole chain)."""
    try:
        request = urllib.request.Request(
            server.storage_url, method="HEAD", headers={"X-Auth-Token": server.token()}
        )
        with urllib.request.urlopen(request, timeout=5):
            return True
    except OSError:
        return False


def start_swift() -> SwiftServer:
    """Start a new all-in-one in a fresh tmp dir (callers normally use ``swift_server``)."""
    root = Path(tempfile.mkdtemp(prefix="reconciler-swift-"))
    _check_xattrs(root)
    kinds = ("account", "container", "object", "proxy")
    *server_ports, memcache_port = free_ports(len(kinds) + 1)
    ports = dict(zip(kinds, server_ports, strict=True))
    _write_configs(root, ports, memcache_port)
    server = SwiftServer(root=root, proxy_port=ports["proxy"])
    memcached = shutil.which("memcached") or "/usr/bin/memcached"
    memcache = [memcached, "-l", "127.0.0.1", "-p", str(memcache_port), "-U", "0", "-m", "32"]
    if os.geteuid() == 0:  # memcached refuses to run as root without -u
        memcache += ["-u", "root"]
    commands = [memcache]
    install = "run scripts/install-cloud-backends.sh"
    commands += [
        [find_binary(f"swift-{kind}-server", install), str(root / f"{kind}-server.conf")]
        for kind in kinds
    ]
    try:
        for command in commands:
            log = root / f"{Path(command[0]).name}.log"
            server.processes.append(spawn(command, log, cwd=root))
    except BaseException:
        server.stop()
        raise
    wait_until(lambda: _answers(server), server.processes, "Swift", 30.0, logs=root)
    return server


@once_per_session
def swift_server() -> SwiftServer:
    """The session's Swift all-in-one, started on first use and stopped at exit."""
    return start_swift()
