"""The openstacksdk Connection of one Cloud: settings, credentials, lazy thread-safe build.

The Connection is built from the Cloud alone (``load_yaml_config``/``load_envvars`` off, so
a stray clouds.yaml or OS_* variable can never change which cloud we talk to), once per
provider, under a lock. SDK-level retries are off (``connect_retries``/``status_code_
retries`` = 0): a POST whose response was lost must not be re-sent blindly; retrying is
the executor's job, after the driver has looked the resource up by its uid.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import openstack
from openstack.config import loader

from reconciler.model.errors import PermanentError
from reconciler.model.specs import CloudSpec
from reconciler.providers.openstack.errors import edge

#: settings keys this driver reads (everything else in spec.settings is refused).
SETTINGS = {
    "interface": "Keystone catalog interface: public (default), internal or admin",
    "network": "network name or id for new servers (default: Nova's 'auto' allocation)",
    "availabilityZone": "availability zone for new servers and volumes",
    "volumeType": "Cinder volume type used for the volume class 'standard'",
    "waitTimeout": "seconds to wait for a server/volume to settle (default 300)",
    "pollInterval": "seconds between status polls while waiting (default 2)",
}
_INTERFACES = ("public", "internal", "admin")


def _invalid(cloud: CloudSpec, message: str) -> PermanentError:
    return PermanentError(f"Cloud {cloud.name}: {message}", cloud=cloud.name, reason="InvalidCloud")


def validate_settings(cloud: CloudSpec) -> dict[str, str]:
    """spec.settings with defaults; PermanentError(InvalidCloud) naming a bad key."""
    unknown = sorted(set(cloud.settings) - set(SETTINGS))
    if unknown:
        raise _invalid(
            cloud, f"unknown settings {unknown} for openstack (known: {sorted(SETTINGS)})"
        )
    settings = {"interface": "public", "waitTimeout": "300", "pollInterval": "2"}
    settings.update(cloud.settings)
    if settings["interface"] not in _INTERFACES:
        raise _invalid(cloud, f"settings.interface must be one of {list(_INTERFACES)}")
    for key in ("waitTimeout", "pollInterval"):
        try:
            if float(settings[key]) <= 0:
                raise ValueError(key)
        except ValueError:
            raise _invalid(cloud, f"settings.{key} must be a positive number of seconds") from None
    if not cloud.endpoint:
        raise _invalid(
            cloud, "spec.endpoint must be the Keystone auth URL (e.g. https://keystone:5000/v3)"
        )
    return settings


def auth_options(cloud: CloudSpec, credentials: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """(auth_type, auth dict) from the Cloud's credentials; MissingCredentials names the key."""

    def need(*keys: str) -> None:
        missing = [k for k in keys if not credentials.get(k)]
        if missing:
            raise PermanentError(
                f"Cloud {cloud.name}: missing credential key(s) {', '.join(missing)} "
                "(openstack needs username, password, projectName, or applicationCredentialId "
                "and applicationCredentialSecret)",
                cloud=cloud.name,
                reason="MissingCredentials",
            )

    if credentials.get("applicationCredentialId"):
        need("applicationCredentialSecret")
        return "v3applicationcredential", {
            "auth_url": cloud.endpoint,
            "application_credential_id": credentials["applicationCredentialId"],
            "application_credential_secret": credentials["applicationCredentialSecret"],
        }
    need("username", "password", "projectName")
    return "password", {
        "auth_url": cloud.endpoint,
        "username": credentials["username"],
        "password": credentials["password"],
        "project_name": credentials["projectName"],
        "user_domain_name": credentials.get("userDomainName") or "Default",
        "project_domain_name": credentials.get("projectDomainName") or "Default",
    }


class LazyConnection:
    """One openstacksdk Connection per provider, built on first use under a lock."""

    def __init__(self, cloud: CloudSpec, credentials: Mapping[str, str], interface: str) -> None:
        self._cloud = cloud
        self._credentials = credentials
        self._interface = interface
        self._lock = threading.Lock()
        self._conn: Any = None
        self._proxies: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"LazyConnection(cloud={self._cloud.name!r}, endpoint={self._cloud.endpoint!r})"

    def _build(self) -> Any:
        auth_type, auth = auth_options(self._cloud, self._credentials)
        with edge(self._cloud.name, "connecting to Keystone"):
            config = loader.OpenStackConfig(load_yaml_config=False, load_envvars=False)
            region = config.get_one(
                auth_type=auth_type,
                auth=auth,
                region_name=self._cloud.region or None,
                interface=self._interface,
                connect_retries=0,
                status_code_retries=0,
                image_status_code_retries=0,
            )
            return openstack.connection.Connection(config=region)

    def proxy(self, service: str) -> Any:
        """The SDK proxy of ``service`` (compute, block_storage, image, network, object_store)."""
        with self._lock:
            found = self._proxies.get(service)
            if found is None:
                if self._conn is None:
                    self._conn = self._build()
                with edge(self._cloud.name, f"finding the {service} endpoint"):
                    found = getattr(self._conn, service)
                self._proxies[service] = found
            return found

    def has_service(self, service_type: str) -> bool:
        """Whether Keystone's catalog lists ``service_type`` for our region/interface."""
        with self._lock:
            if self._conn is None:
                self._conn = self._build()
            conn = self._conn
        with edge(self._cloud.name, "reading the Keystone catalog"):
            catalog = conn.session.auth.get_access(conn.session).service_catalog
            return bool(
                catalog.get_endpoints(
                    service_type=service_type,
                    interface=self._interface,
                    region_name=self._cloud.region or None,
                ).get(service_type)
            )
