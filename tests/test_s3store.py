"""S3BucketStore against two REAL S3 servers on 127.0.0.1: moto and SeaweedFS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from servers import moto, seaweed

from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_OWNER, TAG_UID, ResourceKey, ownership_tags
from reconciler.model.specs import CloudSpec
from reconciler.providers.base import BucketRequest
from reconciler.providers.s3store import S3BucketStore, bucket_name


@pytest.fixture(params=["moto", "seaweedfs"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str]]:
    """(endpoint, access key, secret key) of a running S3 server."""
    if request.param == "moto":
        server = moto.moto_server()
        yield server.url, moto.ACCESS_KEY, moto.SECRET_KEY
    else:
        weed = seaweed.seaweed_server()
        yield weed.endpoint, seaweed.ACCESS_KEY, seaweed.SECRET_KEY


def connect(backend: tuple[str, str, str], owner: str = "reconciler") -> S3BucketStore:
    endpoint, key, secret = backend
    creds = {"accessKeyId": key, "secretAccessKey": secret}
    cloud = CloudSpec("objstore", "libvirt")
    return S3BucketStore.connect(cloud, owner, endpoint, "us-east-1", creds, 0.023)


def raw(backend: tuple[str, str, str]) -> Any:
    endpoint, key, secret = backend
    config = Config(s3={"addressing_style": "path"})
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=config,
    )


def request(uid: str, versioning: bool = False, owner: str = "reconciler") -> BucketRequest:
    tags = ownership_tags(owner, ResourceKey("Bucket", "ns", f"b-{uid}"), uid)
    return BucketRequest(f"ns-b-{uid}", versioning, tags)


def new_uid() -> str:
    return uuid.uuid4().hex[:10]


def test_bucket_name_is_dns_valid() -> None:
    assert bucket_name("NS-My_Bucket--x") == "ns-my-bucket-x"
    assert bucket_name("A") == "a-bucket"
    assert len(bucket_name("x" * 80)) == 63
    assert bucket_name("..a..b..") == "a-b"


def test_lifecycle(backend: tuple[str, str, str]) -> None:
    store, uid = connect(backend), new_uid()
    made = store.create(request(uid))
    assert made.external_id == f"ns-b-{uid}" and not made.versioning
    assert store.create(request(uid)) == made
    assert made.tags[TAG_UID] == uid and made.price_per_hour == 0.0
    assert made.external_id in {b.external_id for b in store.list_managed()}
    assert store.find_by_uid(uid) == made and store.find_by_uid("nope") is None
    assert store.update(made.external_id, True).versioning
    assert store.update(made.external_id, True).versioning
    assert not store.update(made.external_id, False).versioning
    store.delete(made.external_id)
    store.delete(made.external_id)
    assert store.find_by_uid(uid) is None


def test_versioning_at_create_and_priced_usage(backend: tuple[str, str, str]) -> None:
    store, uid = connect(backend), new_uid()
    made = store.create(request(uid, versioning=True))
    assert made.versioning
    raw(backend).put_object(Bucket=made.external_id, Key="data", Body=b"x" * 4096)
    observed = store.observe(made.external_id)
    assert observed is not None and observed.price_per_hour > 0


def test_non_empty_bucket_is_never_deleted(backend: tuple[str, str, str]) -> None:
    store, uid = connect(backend), new_uid()
    made = store.create(request(uid))
    raw(backend).put_object(Bucket=made.external_id, Key="keep-me", Body=b"data")
    with pytest.raises(PermanentError) as err:
        store.delete(made.external_id)
    assert err.value.reason == "BucketNotEmpty" and "objstore" in str(err.value)
    assert raw(backend).head_object(Bucket=made.external_id, Key="keep-me")


def test_foreign_buckets_are_invisible_and_untouched(backend: tuple[str, str, str]) -> None:
    store, other = connect(backend), connect(backend, owner="someone-else")
    uid = new_uid()
    theirs = other.create(request(uid, owner="someone-else"))
    assert theirs.external_id not in {b.external_id for b in store.list_managed()}
    assert store.find_by_uid(uid) is None and store.observe(theirs.external_id) is None
    for call in (
        lambda: store.create(request(uid)),
        lambda: store.update(theirs.external_id, True),
        lambda: store.delete(theirs.external_id),
    ):
        with pytest.raises(PermanentError) as err:
            call()
        assert err.value.reason in ("NameTaken", "NotManaged")
    assert not store.forget(theirs.external_id)
    assert other.observe(theirs.external_id) == theirs


def test_untagged_bucket_with_data_is_name_taken(backend: tuple[str, str, str]) -> None:
    store, uid = connect(backend), new_uid()
    name = bucket_name(request(uid).name)
    raw(backend).create_bucket(Bucket=name)
    raw(backend).put_object(Bucket=name, Key="user-data", Body=b"1")
    with pytest.raises(PermanentError) as err:
        store.create(request(uid))
    assert err.value.reason == "NameTaken"
    with pytest.raises(Exception, match="TagSet"):
        raw(backend).get_bucket_tagging(Bucket=name)


def test_lost_create_response_is_adopted(backend: tuple[str, str, str]) -> None:
    """CreateBucket succeeded but its response (and the tagging) was lost: the retry adopts
    the untagged, empty, just-made bucket instead of failing with NameTaken."""
    store, uid = connect(backend), new_uid()
    raw(backend).create_bucket(Bucket=bucket_name(request(uid).name))
    made = store.create(request(uid))
    assert made.tags[TAG_OWNER] == "reconciler" and store.find_by_uid(uid) == made


def test_forget_keeps_the_bucket_and_other_tags(backend: tuple[str, str, str]) -> None:
    store, uid = connect(backend), new_uid()
    made = store.create(request(uid))
    client = raw(backend)
    tag_set = [
        *({"Key": k, "Value": v} for k, v in made.tags.items()),
        {"Key": "team", "Value": "a"},
    ]
    client.put_bucket_tagging(Bucket=made.external_id, Tagging={"TagSet": tag_set})
    assert store.forget(made.external_id)
    assert store.find_by_uid(uid) is None and not store.forget(made.external_id)
    left = client.get_bucket_tagging(Bucket=made.external_id)["TagSet"]
    assert left == [{"Key": "team", "Value": "a"}]
    assert not store.forget("no-such-bucket-here")


def test_missing_secret_is_a_clear_error() -> None:
    cloud = CloudSpec("objstore", "libvirt")
    with pytest.raises(PermanentError, match="secretAccessKey") as err:
        S3BucketStore.connect(cloud, "r", "http://127.0.0.1:1", "us-east-1", {"accessKeyId": "k"})
    assert err.value.reason == "MissingCredentials"
