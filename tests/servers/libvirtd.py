"""A private session libvirtd for tests that need a real hypervisor (qemu, TCG).

``qemu:///embed`` has no storage driver, and the driver keeps boot disks in a storage
pool, so tests start their own libvirtd in session mode: every path (config, sockets,
domain definitions, pool, logs) lives in a fresh tmp dir, and tests connect with
``qemu:///session?socket=<tmp>/...``. When the tests run as root the daemon drops to
``nobody`` (root would make it the system daemon, with /etc and /run paths); as that
user /dev/kvm is closed, so the domain type is ``qemu`` (TCG). A missing libvirtd is an
error, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import libvirt

from servers.process import stop_processes, wait_until

LIBVIRTD = "/usr/sbin/libvirtd"
NOBODY = 65534
#: The dir pool ``start_libvirtd(pool=True)`` creates.
POOL = "reconciler"


@dataclass
class Libvirtd:
    """A private session libvirtd: its tmp root, process and connection URI."""

    root: Path
    process: subprocess.Popen[bytes]

    @property
    def uri(self) -> str:
        return f"qemu:///session?socket={self.root / 'run/libvirt/libvirt-sock'}"

    @property
    def pool_dir(self) -> Path:
        return self.root / "pool"

    def qemu_pid(self, domain: str) -> int:
        """PID of the domain's qemu process (the session qemu driver's pid file)."""
        return int((self.root / f"run/libvirt/qemu/run/{domain}.pid").read_text().strip())

    def stop(self) -> None:
        """Destroy leftover domains (their qemu would outlive the daemon), stop the daemon
        by PID, remove the tmp root."""
        with contextlib.suppress(libvirt.libvirtError):
            conn = libvirt.open(self.uri)
            for domain in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                domain.destroy()
            conn.close()
        stop_processes([self.process], self.root, timeout=10)


def alive(pid: int) -> bool:
    """True while ``pid`` is a live (not zombie) process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def start_libvirtd(timeout: float = 30.0, pool: bool = False) -> Libvirtd:
    """libvirtd in session mode under a fresh tmp root (as ``nobody`` when we are root);
    with ``pool``, a started dir pool POOL in ``pool_dir``."""
    if not Path(LIBVIRTD).exists():
        raise RuntimeError(f"{LIBVIRTD} missing: apt-get install libvirt-daemon")
    root = Path(tempfile.mkdtemp(prefix="reconciler-libvirtd-"))
    for sub in ("config/libvirt", "run", "cache", "data"):
        (root / sub).mkdir(parents=True)
    # stdio "file": qemu logs go straight to files, so no virtlogd daemon is spawned.
    (root / "config/libvirt/qemu.conf").write_text('stdio_handler = "file"\n')
    (root / "config/libvirt/libvirtd.conf").write_text(f'log_outputs = "3:file:{root}/log"\n')
    env = {
        "HOME": str(root),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        **{f"XDG_{k.upper()}_HOME": str(root / k) for k in ("config", "cache", "data")},
        "XDG_RUNTIME_DIR": str(root / "run"),
    }
    as_root = os.geteuid() == 0
    if as_root:
        for path in (root, *root.rglob("*")):
            os.chown(path, NOBODY, NOBODY)
    process = subprocess.Popen(
        [LIBVIRTD, "--timeout", "600"],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=NOBODY if as_root else None,
        group=NOBODY if as_root else None,
        extra_groups=[] if as_root else None,
    )
    daemon = Libvirtd(root, process)

    def answers() -> bool:
        if not (root / "run/libvirt/libvirt-sock").exists():
            return False
        with contextlib.suppress(libvirt.libvirtError):
            libvirt.open(daemon.uri).close()
            return True
        return False

    try:
        wait_until(answers, [process], "libvirtd", timeout)
        if pool:
            conn = libvirt.open(daemon.uri)
            conn.storagePoolCreateXML(
                f"<pool type='dir'><name>{POOL}</name>"
                f"<target><path>{daemon.pool_dir}</path></target></pool>",
                libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD,
            )
            conn.close()
    except BaseException:
        daemon.stop()
        raise
    return daemon


def write_volume(uri: str, name: str, data: bytes) -> None:
    """Create pool volume ``name`` in POOL holding ``data``, through the SDK (not the
    driver): what a tenant's disk already holds."""
    conn = libvirt.open(uri)
    try:
        pool = conn.storagePoolLookupByName(POOL)
        xml = f"<volume><name>{name}</name><capacity unit='bytes'>{len(data)}</capacity></volume>"
        vol = pool.createXML(xml, 0)
        stream = conn.newStream(0)
        vol.upload(stream, 0, len(data), 0)
        for start in range(0, len(data), 2**18):
            stream.send(data[start : start + 2**18])
        stream.finish()
    finally:
        conn.close()
