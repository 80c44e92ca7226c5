"""Conformance target for the AWS driver: AwsProvider against a REAL moto server over HTTP.

Faults are injected with botocore's own event hooks on the provider's clients, so the real
request/parse path runs: a lost response lets RunInstances reach moto and then raises a
ReadTimeoutError; a failing call gets AWS's XML error body and status from ``before-send``
(for every retry attempt of that one API call, so botocore's retries cannot hide it).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from servers.moto import ACCESS_KEY, SECRET_KEY, moto_server

from conformance.target import ConformanceTarget, ErrorKind
from reconciler.model.specs import CloudSpec, Pricing
from reconciler.providers.aws import AwsProvider
from reconciler.providers.base import ProviderContext

CLOUD = "conf-aws"
REGION = "us-east-1"

#: (HTTP status, EC2 error code, S3 error code) per error kind, as AWS returns them.
ERRORS: dict[ErrorKind, tuple[int, str, str]] = {
    "throttle": (503, "RequestLimitExceeded", "SlowDown"),
    "unavailable": (503, "Unavailable", "ServiceUnavailable"),
    "bad_request": (400, "InvalidParameterValue", "InvalidArgument"),
    "auth": (401, "AuthFailure", "AccessDenied"),
    "capacity": (500, "InsufficientInstanceCapacity", "TooManyBuckets"),
}
_CREATES = ("ec2.RunInstances", "ec2.CreateVolume", "s3.CreateBucket")


class _Body:
    """The raw body of a canned response (what AWSResponse.content reads)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def error_body(service: str, code: str) -> bytes:
    """AWS's real error document: EC2's query-protocol <Response>, S3's <Error>."""
    error = f"<Code>{code}</Code><Message>simulated {code} from the test</Message>"
    if service == "s3":
        return f"<?xml version='1.0'?><Error>{error}<RequestId>T1</RequestId></Error>".encode()
    body = f"<Response><Errors><Error>{error}</Error></Errors><RequestID>T1</RequestID></Response>"
    return f"<?xml version='1.0'?>{body}".encode()


def clients_of(provider: AwsProvider) -> list[Any]:
    return [provider.clients.client("ec2"), provider.clients.client("s3")]


@contextmanager
def failing_call(provider: AwsProvider, kind: ErrorKind) -> Iterator[None]:
    """The next API call (every retry attempt of it) gets ``kind``'s AWS error response."""
    status, ec2_code, s3_code = ERRORS[kind]
    armed = [True]

    def before_send(request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        if not armed[0]:
            return None
        service = event_name.split(".")[1]
        code = s3_code if service == "s3" else ec2_code
        headers = {"Content-Type": "text/xml"}
        return AWSResponse(request.url, status, headers, _Body(error_body(service, code)))

    def after_call(**_: Any) -> None:
        armed[0] = False

    clients = clients_of(provider)
    for client in clients:
        client.meta.events.register("before-send", before_send, unique_id="conf-fail")
        client.meta.events.register("after-call", after_call, unique_id="conf-fail-done")
    try:
        yield
    finally:
        for client in clients:
            client.meta.events.unregister("before-send", unique_id="conf-fail")
            client.meta.events.unregister("after-call", unique_id="conf-fail-done")


@contextmanager
def lost_response(provider: AwsProvider) -> Iterator[None]:
    """The next create call reaches moto and takes effect; the driver sees a read timeout."""
    armed = [True]

    def after_call(**_: Any) -> None:
        if armed[0]:
            armed[0] = False
            raise ReadTimeoutError(endpoint_url="http://moto.test/")

    clients = clients_of(provider)
    for client in clients:
        for op in _CREATES:
            client.meta.events.register(f"after-call.{op}", after_call, unique_id=f"lost-{op}")
    try:
        yield
    finally:
        for client in clients:
            for op in _CREATES:
                client.meta.events.unregister(f"after-call.{op}", unique_id=f"lost-{op}")


def raw_ec2(url: str) -> Any:
    """A plain client outside the driver (no hooks) for arranging and inspecting moto."""
    session = boto3.session.Session(ACCESS_KEY, SECRET_KEY, region_name=REGION)
    return session.client("ec2", endpoint_url=url)


@functools.cache
def first_ami(url: str) -> str:
    """An Amazon AMI moto serves (the same after every reset, so looked up once)."""
    flt = [{"Name": "name", "Values": ["ubuntu/images/*"]}]
    images = raw_ec2(url).describe_images(Owners=["amazon"], Filters=flt)["Images"]
    return str(sorted(i["ImageId"] for i in images)[0])


def make_provider(url: str, **cloud: Any) -> AwsProvider:
    spec = CloudSpec(CLOUD, "aws", region=REGION, endpoint=url, **cloud)
    context = ProviderContext(
        credentials={"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY}
    )
    return AwsProvider(spec, context)


def make_target(tmp_path: Path) -> Iterator[ConformanceTarget]:
    """Yield a target over an empty moto (reset before and after)."""
    server = moto_server()
    server.reset()
    ec2 = raw_ec2(server.url)
    s3 = boto3.session.Session(ACCESS_KEY, SECRET_KEY, region_name=REGION).client(
        "s3", endpoint_url=server.url
    )
    image = first_ami(server.url)
    provider = make_provider(server.url, pricing=Pricing(catalog="aws-us-east-1"))

    def make_foreign_vm() -> str:
        tags = [
            {"Key": "reconciler.dev/owner", "Value": "someone-else"},
            {"Key": "team", "Value": "b"},
        ]
        made = ec2.run_instances(
            ImageId=image,
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        return str(made["Instances"][0]["InstanceId"])

    def foreign_vm_state(external_id: str) -> object:
        found = ec2.describe_instances(InstanceIds=[external_id])["Reservations"]
        for inst in (i for r in found for i in r["Instances"]):
            if inst["State"]["Name"] != "terminated":
                tags = sorted((t["Key"], t["Value"]) for t in inst.get("Tags", []))
                return (inst["InstanceType"], inst["State"]["Name"], tags)
        return None

    def backend_state() -> object:
        instances = [
            (
                i["InstanceId"],
                i["InstanceType"],
                i["State"]["Name"],
                sorted(map(str, i.get("Tags", []))),
            )
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
        ]
        volumes = [
            (v["VolumeId"], v["Size"], v["State"], sorted(map(str, v.get("Tags", []))))
            for v in ec2.describe_volumes()["Volumes"]
        ]
        buckets = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
        return sorted(instances), sorted(volumes), buckets

    def make_foreign_bucket(name: str) -> str:
        s3.create_bucket(Bucket=name)
        return name

    try:
        yield ConformanceTarget(
            name="aws",
            provider=provider,
            instance_types=("t3.micro", "t3.large"),
            image=image,
            volume_class="gp3",
            make_foreign_vm=make_foreign_vm,
            foreign_vm_state=foreign_vm_state,
            backend_state=backend_state,
            lose_next_response=lambda: lost_response(provider),
            fail_next_call=lambda kind: failing_call(provider, kind),
            secrets=(SECRET_KEY,),
            make_foreign_bucket=make_foreign_bucket,
        )
    finally:
        server.reset()
