"""What one driver gives the provider conformance suite (tests/conformance/test_conformance.py).

Every driver (sim, libvirt, aws, openstack, azure) supplies a ``ConformanceTarget`` from a
factory in ``tests/conformance/targets/<name>.py``:

    def make_target(tmp_path: Path) -> Iterator[ConformanceTarget]   # a generator fixture body

The factory starts (or reuses a session-wide) real server on 127.0.0.1, or sets up the
HTTP-boundary fake with recorded API shapes, and yields a target whose backend holds no
managed resources. The suite then drives ``target.provider`` only through the Provider
contract, and uses the other members to arrange what the contract must withstand: a
foreign resource, a lost response, an SDK error of each class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Literal

from reconciler.providers.base import Provider

#: Error classes a backend can be made to return for the next call (its real wire shape:
#: an AWS XML error, an OpenStack JSON fault, a libvirtError code, an HTTP 5xx...).
#: "throttle" and "unavailable" must map to TransientError; "bad_request" and "auth" to
#: PermanentError; "capacity" to CapacityError.
ErrorKind = Literal["throttle", "unavailable", "bad_request", "auth", "capacity"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("throttle", "unavailable", "bad_request", "auth", "capacity")


@dataclass
class ConformanceTarget:
    """One driver under test, plus hooks into its backend that bypass the driver."""

    #: "sim", "libvirt", "aws", "openstack" or "azure".
    name: str
    provider: Provider
    #: Two instance types of this cloud with different sizes, for resize.
    instance_types: tuple[str, str]
    #: An image (name or id) this backend accepts for create_vm.
    image: str
    #: A volume class this backend accepts (ignored if the cloud has no volumes).
    volume_class: str
    #: Create a VM directly through the SDK, not owned by us (no tags, or another owner's);
    #: returns its external id.
    make_foreign_vm: Callable[[], str]
    #: A stable, comparable snapshot of a foreign VM (e.g. its tags, size and power state),
    #: or None if it no longer exists: the suite checks we never changed it.
    foreign_vm_state: Callable[[str], object]
    #: A snapshot of everything on the backend (raw SDK listing), to prove read calls
    #: never mutate: equal before and after describe/offers/list_managed/observe/find.
    backend_state: Callable[[], object]
    #: Within this context the next create call reaches the backend and takes effect,
    #: but the driver sees the response lost (timeout / connection reset).
    lose_next_response: Callable[[], AbstractContextManager[None]]
    #: Within this context the next backend call fails with that kind of error.
    fail_next_call: Callable[[ErrorKind], AbstractContextManager[None]]
    #: Secret values in the provider's credentials: never in any message or repr.
    secrets: tuple[str, ...] = ()
    #: Errors the backend cannot be made to return, with the reason (say why in docs).
    unsupported_errors: dict[ErrorKind, str] = field(default_factory=dict)
    #: Create a bucket named ``name`` directly through the SDK, with no reconciler tags
    #: (someone else's bucket); returns its external id. None: the backend has no
    #: buckets outside the driver (the simulator); object tests then use only a bucket
    #: made by a second driver instance with another owner.
    make_foreign_bucket: Callable[[str], str] | None = None


TargetFactory = Callable[..., Iterator[ConformanceTarget]]
