"""Local emulators for examples/multicloud: ``start``, ``stop``, ``env``.

``start`` launches, on 127.0.0.1, everything the example's Clouds talk to and leaves it
running until ``stop``:

- a REAL moto server (AWS EC2/EBS/S3, instance-type and AMI validation on), with an AMI
  named after the example's Image (``ubuntu-24-04``) registered in eu-west-1;
- a REAL Swift all-in-one plus the Keystone/Nova/Cinder/Glance HTTP-boundary fake of
  tests/servers (in a long-lived child process of this script), with a Glance image of the
  same name;
- a REAL SeaweedFS (``weed mini``): the private cloud's S3-compatible object storage;
- a REAL, private libvirtd serving ``qemu:///system`` on a unix socket in the state dir.
  It runs in its own mount namespace (``unshare --mount``) in which /etc/libvirt,
  /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt, /etc/passwd and
  /etc/group are bind-mounted from the state dir: libvirt's QEMU driver needs a
  ``libvirt-qemu`` user and its own config, and nothing on the machine is changed. VMs
  are real (blank-disk) qemu processes of domain type ``qemu``. Needs root.

Then it renders the example's manifests into ``<state>/manifests`` with the real
endpoints, writes the Clouds' Secrets into ``<state>/secrets`` and the environment into
``<state>/env.sh``. Every PID is recorded in ``<state>/emulators.json``; ``stop`` kills
only those (and the qemu processes our libvirtd started) and is safe to run twice.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

EXAMPLE = ROOT / "examples" / "multicloud"
DEFAULT_STATE = ROOT / ".reconciler-multicloud"
IMAGE_NAME = "ubuntu-24-04"
#: Placeholder values in the committed manifests -> the key of the real value.
PLACEHOLDERS = {
    "http://127.0.0.1:4566": "aws",
    "http://127.0.0.1:5000/identity/v3": "keystone",
    "http://127.0.0.1:8333": "s3",
    "qemu+unix:///system?socket=/run/reconciler-multicloud/libvirt-sock": "libvirt",
}
_LIBVIRT_DIRS = {  # state subdir -> path it replaces inside libvirtd's mount namespace
    "etc": "/etc/libvirt",
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "log": "/var/log/libvirt",
    "cache": "/var/cache/libvirt",
}


# -- moto, SeaweedFS, Swift + the OpenStack fake -------------------------------------------
def _start_moto() -> dict[str, Any]:
    import boto3  # the script's own seeding, not library code
    from servers.moto import ACCESS_KEY, SECRET_KEY, start_moto

    server = start_moto()
    ec2 = boto3.client(
        "ec2",
        endpoint_url=server.url,
        region_name="eu-west-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    # "Import" the Image into this cloud under the Image's name, as an operator would.
    ec2.register_image(
        Name=IMAGE_NAME,
        Architecture="x86_64",
        RootDeviceName="/dev/xvda",
        VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
    )
    return {"url": server.url, "pids": [server.process.pid], "dirs": [str(server.log_dir)]}


def _start_seaweed() -> dict[str, Any]:
    from servers.seaweed import start_seaweed

    server = start_seaweed()
    return {"url": server.endpoint, "pids": [server.process.pid], "dirs": [str(server.root)]}


def _start_openstack(state: Path) -> dict[str, Any]:
    from servers.swift import start_swift

    swift = start_swift()
    pids = [p.pid for p in swift.processes]
    info = state / "openstack.json"
    child = subprocess.Popen(
        [sys.executable, __file__, "_openstack", str(info), str(swift.proxy_port), str(swift.root)],
        stdout=subprocess.DEVNULL,
        stderr=open(state / "openstack-fake.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    pids.append(child.pid)
    _wait(info.exists, 20, "the OpenStack fake", child)
    auth_url = json.loads(info.read_text())["auth_url"]
    return {"url": auth_url, "pids": pids, "dirs": [str(swift.root)]}


def _serve_openstack(info: Path, proxy_port: int, swift_root: str) -> None:
    """Child process: the Keystone/Nova/Cinder/Glance fake in front of the real Swift."""
    from servers.fake_openstack import FakeOpenStack
    from servers.swift import SwiftServer

    swift = SwiftServer(root=Path(swift_root), proxy_port=proxy_port)
    fake = FakeOpenStack(swift.storage_url, swift.token, settle_seconds=0.2).start()
    seeded = dict(fake.state.images[0], name=IMAGE_NAME, id="5e1f0a52-24a4-4c64-9a0e-0c0d2404a001")
    fake.state.images.append(seeded)  # the Image "uploaded to Glance" under its name
    info.write_text(json.dumps({"auth_url": fake.auth_url, "pid": os.getpid()}))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


# -- the private libvirtd -------------------------------------------------------------------
def _libvirt_files(base: Path) -> Path:
    """Config, passwd/group overlays and the namespace start script; returns the script."""
    for sub in (*_LIBVIRT_DIRS, "sock", "pool"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "etc" / "libvirtd.conf").write_text(
        f'unix_sock_dir = "{base / "sock"}"\nlisten_tls = 0\nlisten_tcp = 0\n'
        'unix_sock_rw_perms = "0700"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n'
        f'log_outputs = "3:file:{base / "libvirtd.log"}"\n'
    )
    (base / "etc" / "qemu.conf").write_text(
        'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\n'
        'security_driver = "none"\nstdio_handler = "file"\n'
    )
    (base / "etc" / "libvirt.conf").write_text("")
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    if not any(line.startswith("libvirt-qemu:") for line in passwd.splitlines()):
        passwd += "libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n"
    if not any(line.startswith("libvirt-qemu:") for line in group.splitlines()):
        group += "libvirt-qemu:x:64055:\n"
    (base / "passwd").write_text(passwd)
    (base / "group").write_text(group)
    binds = [(base / sub, target) for sub, target in _LIBVIRT_DIRS.items()]
    binds += [(base / "passwd", "/etc/passwd"), (base / "group", "/etc/group")]
    lines = ["set -e"]
    for source, target in binds:
        if not Path(target).exists():  # a mount point must exist (an empty dir is left)
            lines.append(f"mkdir -p '{target}'")
        lines.append(f"mount --bind '{source}' '{target}'")
    lines.append(f"exec libvirtd -f '{base / 'etc' / 'libvirtd.conf'}' -p '{base / 'pid'}'")
    script = base / "start.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


def _start_libvirt(state: Path) -> dict[str, Any]:
    import libvirt
    from servers.process import spawn

    if os.geteuid() != 0:
        raise SystemExit("emulators: the private libvirtd needs root (mount namespace, qemu)")
    if shutil.which("libvirtd") is None or shutil.which("qemu-system-x86_64") is None:
        raise SystemExit("emulators: apt-get install libvirt-daemon-driver-qemu qemu-system-x86")
    base = state / "libvirt"
    script = _libvirt_files(base)
    command = ["unshare", "--mount", "--propagation", "private", "sh", str(script)]
    proc = spawn(command, base / "out.log", start_new_session=True)
    sock = base / "sock" / "libvirt-sock"
    _wait(sock.exists, 20, "libvirtd", proc)
    uri = f"qemu+unix:///system?socket={sock}"
    conn = libvirt.open(uri)
    try:
        pool = conn.storagePoolDefineXML(
            "<pool type='dir'><name>default</name>"
            f"<target><path>{base / 'pool'}</path></target></pool>"
        )
        pool.create()
    finally:
        conn.close()
    return {"url": uri, "pids": [proc.pid], "dirs": []}


def _stop_libvirt(state: Path, uri: str) -> None:
    """Destroy every running domain of OUR libvirtd (it serves nothing else)."""
    try:
        import libvirt

        libvirt.registerErrorHandler(lambda *_: None, None)
        conn = libvirt.open(uri)
        for domain in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            domain.destroy()
        conn.close()
    except Exception:
        pass
    pidfiles = (state / "libvirt" / "run" / "qemu").glob("*.pid")
    _kill([(int(f.read_text().strip() or 0), "") for f in pidfiles])


# -- process helpers ------------------------------------------------------------------------
def _wait(
    ready: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes]
) -> None:
    from servers.process import wait_until

    try:
        wait_until(ready, [proc], what, timeout)
    except RuntimeError as exc:
        raise SystemExit(f"emulators: {exc}") from None


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name, or None if there is no such PID."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _started(pid: int) -> str:
    """The process's start time (to recognise OUR process, not a reused PID)."""
    fields = _proc_stat(pid)
    return fields[19] if fields else ""


def _alive(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def _kill(pids: list[tuple[int, str]]) -> None:
    """SIGTERM each (pid, start time), then SIGKILL what is left after 5 s; a PID that now
    names another process (other start time) is left alone."""
    ours = [p for p, start in pids if p > 0 and _alive(p) and start in ("", _started(p))]
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in ours:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- secrets, manifests, env ----------------------------------------------------------------
def _write_secrets(state: Path) -> Path:
    from servers import moto, seaweed
    from servers.fake_openstack import Account

    account = Account()
    secrets = {
        "aws-local": {"accessKeyId": moto.ACCESS_KEY, "secretAccessKey": moto.SECRET_KEY},
        "openstack-local": {
            "username": account.username,
            "password": account.password,
            "projectName": account.project,
            "userDomainName": "Default",
            "projectDomainName": "Default",
        },
        "private-s3": {"accessKeyId": seaweed.ACCESS_KEY, "secretAccessKey": seaweed.SECRET_KEY},
    }
    folder = state / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    for name, values in secrets.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(values, indent=2) + "\n")
        path.chmod(0o600)
    return folder


def render(urls: dict[str, str], source: Path, target: Path) -> None:
    """Copy the example's manifests with every placeholder endpoint replaced."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.yaml")):
        text = path.read_text()
        for placeholder, key in PLACEHOLDERS.items():
            text = text.replace(placeholder, urls[key])
        (target / path.name).write_text(text)


def env_lines(state: Path) -> list[str]:
    record = json.loads((state / "emulators.json").read_text())
    values = {
        "RECONCILER_SECRETS_DIR": str(state / "secrets"),
        "RECONCILER_STATE": str(state / "reconciler"),
        "MULTICLOUD_MANIFESTS": str(state / "manifests"),
        "MULTICLOUD_AWS_ENDPOINT": record["urls"]["aws"],
        "MULTICLOUD_KEYSTONE_URL": record["urls"]["keystone"],
        "MULTICLOUD_S3_ENDPOINT": record["urls"]["s3"],
        "MULTICLOUD_LIBVIRT_URI": record["urls"]["libvirt"],
    }
    return [f"export {key}='{value}'" for key, value in values.items()]


# -- commands -------------------------------------------------------------------------------
def start(state: Path) -> None:
    if (state / "emulators.json").exists():
        stop(state)
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    record: dict[str, Any] = {"urls": {}, "pids": [], "dirs": []}

    def save() -> None:
        (state / "emulators.json").write_text(json.dumps(record, indent=2) + "\n")

    steps: tuple[tuple[str, Callable[[], dict[str, Any]]], ...] = (
        ("libvirt", lambda: _start_libvirt(state)),
        ("aws", _start_moto),
        ("s3", _start_seaweed),
        ("keystone", lambda: _start_openstack(state)),
    )
    try:
        for key, step in steps:
            begun = time.monotonic()
            started = step()
            record["urls"][key] = started["url"]
            record["pids"] += [[pid, _started(pid)] for pid in started["pids"]]
            record["dirs"] += started["dirs"]
            save()
            print(f"emulators: {key:8} {started['url']} ({time.monotonic() - begun:.1f} s)")
    except BaseException:
        save()
        stop(state)
        raise
    _write_secrets(state)
    render(record["urls"], EXAMPLE, state / "manifests")
    (state / "env.sh").write_text("\n".join(env_lines(state)) + "\n")
    print(f"emulators: manifests in {state / 'manifests'}; env: . {state / 'env.sh'}")


def stop(state: Path) -> None:
    path = state / "emulators.json"
    if not path.exists():
        print(f"emulators: nothing recorded in {state}")
        return
    record = json.loads(path.read_text())
    if "libvirt" in record["urls"]:
        _stop_libvirt(state, record["urls"]["libvirt"])
    _kill([(int(pid), str(started)) for pid, started in record["pids"]])
    for folder in record["dirs"]:
        shutil.rmtree(folder, ignore_errors=True)
    path.unlink()
    print(f"emulators: stopped {len(record['pids'])} processes")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("command", choices=("start", "stop", "env", "_openstack"))
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("MULTICLOUD_STATE", DEFAULT_STATE)),
        help="where PIDs, logs, secrets and rendered manifests live "
        "(default .reconciler-multicloud, or $MULTICLOUD_STATE)",
    )
    options = parser.parse_args(argv)
    state = options.state_dir.resolve()
    if options.command == "start":
        start(state)
    elif options.command == "stop":
        stop(state)
    elif options.command == "env":
        print("\n".join(env_lines(state)))
    else:
        info, port, root = options.args
        _serve_openstack(Path(info), int(port), root)


if __name__ == "__main__":
    main()
