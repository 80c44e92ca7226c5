"""Conformance target for libvirt: a LibvirtProvider over one libvirt test-driver host.

``test:///<file>.xml`` is libvirt's in-process hypervisor; every open is its own world,
so the hooks below use the provider's own connection (``provider.hosts[0]``). Faults are
real ``libvirtError``s with the code libvirt uses, raised at the SDK boundary through
the host's fault hooks (``Host.before`` / ``Host.after``, see hosts.py): "lose the
response" lets defineXML/create take effect and then raises VIR_ERR_OPERATION_TIMEOUT.
libvirt has no capacity error, so "capacity" fills the host with a foreign domain.

Buckets go to the session's REAL SeaweedFS (tests/servers/seaweed.py) as the Cloud's
``objectStorage``. Each target has its own owner, so it never sees buckets of other
tests on that shared server, and its cleanup deletes every bucket that owner still has.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import boto3
import libvirt
from servers import seaweed

from conformance.target import ConformanceTarget, ErrorKind
from reconciler.model.keys import TAG_OWNER
from reconciler.model.specs import CloudSpec, ObjectStorage, Pricing
from reconciler.providers.base import ProviderContext
from reconciler.providers.libvirt import LibvirtProvider
from reconciler.providers.libvirt.domxml import NS, parse_domain
from reconciler.providers.libvirt.errors import make_error

HOST_FILE = Path(__file__).resolve().parents[2] / "data" / "libvirt" / "host-b.xml"
CLOUD = "conf-libvirt"
#: libvirt reads no credentials for test:/// hosts; one is given to prove it is never echoed.
SECRET = "libvirt-conformance-secret-51d0"

#: The libvirtError code each error kind arrives with from a real libvirtd.
CODES: dict[ErrorKind, int] = {
    "throttle": libvirt.VIR_ERR_RESOURCE_BUSY,
    "unavailable": libvirt.VIR_ERR_NO_CONNECT,
    "bad_request": libvirt.VIR_ERR_XML_DETAIL,
    "auth": libvirt.VIR_ERR_AUTH_FAILED,
}


def snapshot(conn: libvirt.virConnect) -> object:
    """Every domain's persistent XML and state, and every volume of every pool."""
    domains = sorted(
        (d.UUIDString(), d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), d.isActive())
        for d in conn.listAllDomains(0)
    )
    volumes = sorted(
        (p.name(), v.name(), tuple(v.info()))
        for p in conn.listAllStoragePools(0)
        for v in p.listAllVolumes(0)
    )
    return domains, volumes


def make_target(tmp_path: Path) -> Iterator[ConformanceTarget]:
    """Yield a target over a fresh test-driver host (8 CPUs, 16 GiB, pool "default")."""
    store = seaweed.seaweed_server()
    cloud = CloudSpec(
        CLOUD,
        "libvirt",
        region="dc1",
        hosts=(f"test://{HOST_FILE}",),
        pricing=Pricing(catalog="sim-private-openstack"),
        object_storage=ObjectStorage(store.endpoint),
    )
    credentials = {
        "password": SECRET,
        "accessKeyId": seaweed.ACCESS_KEY,
        "secretAccessKey": seaweed.SECRET_KEY,
    }
    owner = f"conf-libvirt-{uuid4().hex[:8]}"
    provider = LibvirtProvider(
        cloud, ProviderContext(owner=owner, state_dir=tmp_path, credentials=credentials)
    )
    host = provider.hosts[0]

    def conn() -> libvirt.virConnect:
        with host.lock:
            return host.connection()

    def make_foreign_vm() -> str:
        xml = (
            "<domain type='test'><name>foreign-vm</name><memory unit='MiB'>1024</memory>"
            "<vcpu>1</vcpu><os><type>hvm</type></os><metadata>"
            f"<r:tags xmlns:r='{NS}'><tag key='{TAG_OWNER}' value='someone-else'/></r:tags>"
            "</metadata></domain>"
        )
        with host.lock:
            domain = conn().defineXML(xml)
            domain.create()
            return f"{host.index}/{domain.UUIDString()}"

    def foreign_vm_state(external_id: str) -> object:
        uuid = external_id.partition("/")[2]
        with host.lock:
            try:
                domain = conn().lookupByUUIDString(uuid)
            except libvirt.libvirtError:
                return None
            view = parse_domain(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            return view.tags, view.vcpus, view.memory_kib, domain.isActive()

    s3 = boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        region_name="us-east-1",
        aws_access_key_id=seaweed.ACCESS_KEY,
        aws_secret_access_key=seaweed.SECRET_KEY,
    )

    foreign_buckets: list[str] = []

    def make_foreign_bucket(name: str) -> str:
        s3.create_bucket(Bucket=name)
        foreign_buckets.append(name)
        return name

    def backend_state() -> object:
        """The libvirt host, plus the bucket names on the store (reads never create)."""
        buckets = sorted(b["Name"] for b in s3.list_buckets().get("Buckets", []))
        with host.lock:
            return snapshot(conn()), buckets

    @contextmanager
    def lose() -> Iterator[None]:
        armed = [True]

        def after(operation: str) -> None:
            if operation == "create" and armed[0]:
                armed[0] = False
                raise make_error(libvirt.VIR_ERR_OPERATION_TIMEOUT, "response lost (injected)")

        host.after = after
        try:
            yield
        finally:
            host.after = None

    @contextmanager
    def host_full() -> Iterator[None]:
        """libvirt has no capacity error code: a full host is a real condition the
        driver detects itself. A foreign domain takes every CPU and all memory."""
        with host.lock:
            total = conn().getInfo()
            hog = conn().defineXML(
                f"<domain type='test'><name>hog</name><memory unit='MiB'>{total[1]}</memory>"
                f"<vcpu>{total[2]}</vcpu><os><type>hvm</type></os></domain>"
            )
        try:
            yield
        finally:
            with host.lock:
                hog.undefine()

    @contextmanager
    def fail(kind: ErrorKind) -> Iterator[None]:
        if kind == "capacity":
            with host_full():
                yield
            return
        armed = [True]

        def before(_operation: str) -> None:
            if armed[0]:
                armed[0] = False
                raise make_error(CODES[kind], f"injected {kind}")

        host.before = before
        try:
            yield
        finally:
            host.before = None

    try:
        yield ConformanceTarget(
            name="libvirt",
            provider=provider,
            instance_types=("m1.small", "m1.large"),
            image="debian-12",
            volume_class="standard",
            make_foreign_vm=make_foreign_vm,
            foreign_vm_state=foreign_vm_state,
            backend_state=backend_state,
            lose_next_response=lose,
            fail_next_call=fail,
            secrets=(SECRET, seaweed.SECRET_KEY),
            make_foreign_bucket=make_foreign_bucket,
        )
    finally:
        try:
            for bucket in provider.list_managed().buckets:
                provider.delete_bucket(bucket.external_id)
            for name in foreign_buckets:
                s3.delete_bucket(Bucket=name)
        finally:
            provider.close()
