"""examples/multicloud end to end, through the CLI as users run it, against REAL local
backends started by scripts/emulators.py for this module: a private libvirtd running qemu
VMs, moto (EC2/EBS/S3), Swift + the Keystone/Nova/Cinder/Glance fake, and SeaweedFS.

A backend that cannot start fails the module; nothing here is skipped.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import libvirt
import pytest
from clirun import ROOT, run
from servers.moto import ACCESS_KEY, SECRET_KEY

SCRIPT = ROOT / "scripts" / "emulators.py"


class Emulators:
    """The running emulators: their state dir, env and rendered manifests."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.env: dict[str, str] = {}
        for line in (state / "env.sh").read_text().splitlines():
            key, value = line.removeprefix("export ").split("=", 1)
            self.env[key] = value.strip("'")
        self.manifests = Path(self.env["MULTICLOUD_MANIFESTS"])

    def cli(self, *args: str) -> tuple[int, str]:
        result = run(*args, env=self.env, timeout=90)  # RECONCILER_STATE is in env
        return result.code, result.out + result.err

    def ec2(self) -> object:
        return boto3.client(
            "ec2",
            endpoint_url=self.env["MULTICLOUD_AWS_ENDPOINT"],
            region_name="eu-west-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


@pytest.fixture(scope="module")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    state = tmp_path_factory.mktemp("multicloud") / "state"
    command = [sys.executable, str(SCRIPT)]
    try:
        subprocess.run([*command, "start", "--state-dir", str(state)], check=True, timeout=120)
        yield Emulators(state)
    finally:
        subprocess.run([*command, "stop", "--state-dir", str(state)], check=False, timeout=60)


def _running_domains(uri: str) -> list[str]:
    conn = libvirt.open(uri)
    try:
        return sorted(
            d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        )
    finally:
        conn.close()


def test_plan_apply_replan_no_changes(emulators: Emulators) -> None:
    code, out = emulators.cli("validate", "examples/multicloud")
    assert code == 0, out
    code, out = emulators.cli("plan", str(emulators.manifests), "--detailed-exitcode")
    assert code == 2, out
    assert "Plan: 7 to create, 1 to change, 0 to delete." in out
    assert "VirtualMachine/default/web-0 on private-kvm  m1.small" in out
    assert "VirtualMachine/default/web-2 on aws-eu  t3.micro" in out  # spread: 2 per cloud
    assert "VirtualMachine/default/batch on openstack-lab  m1.medium" in out  # kvm full
    code, out = emulators.cli("apply", str(emulators.manifests), "--auto-approve")
    assert code == 0, out
    assert "Apply finished: 1 attach, 7 create; 0 failed" in out
    code, out = emulators.cli("plan", str(emulators.manifests), "--detailed-exitcode")
    assert code == 0, out
    assert "No changes." in out
    # The private cloud's VMs are real qemu processes under our libvirtd.
    domains = _running_domains(emulators.env["MULTICLOUD_LIBVIRT_URI"])
    assert [d.split("-")[1] for d in domains] == ["web", "web"], domains


def test_resize_reaches_the_real_backend(emulators: Emulators, tmp_path: Path) -> None:
    code, out = emulators.cli("apply", str(emulators.manifests), "--auto-approve")
    assert code == 0, out
    changed = tmp_path / "manifests"
    shutil.copytree(emulators.manifests, changed)
    workloads = changed / "workloads.yaml"
    text = workloads.read_text()
    db = text.index("name: db\n")
    workloads.write_text(text[:db] + text[db:].replace("memoryGiB: 4", "memoryGiB: 8", 1))
    code, out = emulators.cli("plan", str(changed), "--detailed-exitcode")
    assert code == 2, out
    assert "~ update VirtualMachine/default/db on aws-eu" in out
    assert "t3.large  $0.0456/h -> $0.0912/h" in out
    assert "'t3.medium' -> 't3.large'" in out
    code, out = emulators.cli("apply", str(changed), "--auto-approve")
    assert code == 0, out
    ec2 = emulators.ec2()
    found = ec2.describe_instances(  # type: ignore[attr-defined]
        Filters=[
            {"Name": "tag:reconciler.dev/key", "Values": ["*/default/db"]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )
    types = [i["InstanceType"] for r in found["Reservations"] for i in r["Instances"]]
    assert types == ["t3.large"], found
    code, out = emulators.cli("plan", str(changed), "--detailed-exitcode")
    assert code == 0, out
