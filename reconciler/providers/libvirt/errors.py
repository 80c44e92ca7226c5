"""libvirtError -> reconciler errors, mapped at the edge by error code.

libvirt reports failures as ``libvirt.libvirtError`` whose ``get_error_code()`` is one of
the ``VIR_ERR_*`` numbers; the mapping below is the only place that reads them.
Host capacity is never a libvirt error: the driver checks it itself (CapacityError).
"""

from __future__ import annotations

import libvirt

from reconciler.model.errors import PermanentError, ProviderError, TransientError

#: Codes meaning "the object you asked for does not exist": callers turn these into
#: "absent" (None, or success for deletes).
ABSENT_CODES = frozenset(
    {
        libvirt.VIR_ERR_NO_DOMAIN,
        libvirt.VIR_ERR_NO_STORAGE_VOL,
        libvirt.VIR_ERR_NO_DOMAIN_METADATA,
    }
)

#: The connection or the daemon is in trouble: retry (after reconnecting if it died).
TRANSIENT_CODES = frozenset(
    {
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_INVALID_CONN,
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_OPERATION_TIMEOUT,
        libvirt.VIR_ERR_RESOURCE_BUSY,
        libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
    }
)

UNAUTHORIZED_CODES = frozenset(
    {
        libvirt.VIR_ERR_AUTH_FAILED,
        libvirt.VIR_ERR_AUTH_CANCELLED,
        libvirt.VIR_ERR_AUTH_UNAVAILABLE,
        libvirt.VIR_ERR_ACCESS_DENIED,
    }
)

#: Codes whose meaning is "this hypervisor driver cannot do that".
UNSUPPORTED_CODES = frozenset({libvirt.VIR_ERR_NO_SUPPORT})

#: Seconds to wait before retrying a transient libvirt failure.
RETRY_AFTER = 2.0


def error_code(exc: libvirt.libvirtError) -> int:
    """The VIR_ERR_* code of ``exc`` (0 when libvirt recorded none)."""
    code = exc.get_error_code()
    return int(code) if code is not None else 0


def is_absent(exc: libvirt.libvirtError) -> bool:
    """True when ``exc`` says the domain, volume or metadata does not exist."""
    return error_code(exc) in ABSENT_CODES


def is_connection_error(exc: libvirt.libvirtError) -> bool:
    """True when the connection itself may be broken (reopen it before the next call)."""
    return error_code(exc) in {
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_INVALID_CONN,
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_RPC,
    }


def map_error(exc: libvirt.libvirtError, cloud: str, where: str) -> ProviderError:
    """The reconciler error for ``exc`` raised while doing ``where`` on a host."""
    code = error_code(exc)
    message = f"libvirt {where}: {exc.get_error_message() or exc} (code {code})"
    if code in TRANSIENT_CODES:
        return TransientError(message, cloud=cloud, retry_after=RETRY_AFTER)
    if code in UNAUTHORIZED_CODES:
        return PermanentError(message, cloud=cloud, reason="Unauthorized")
    if code in UNSUPPORTED_CODES:
        return PermanentError(message, cloud=cloud, reason="Unsupported")
    if code in ABSENT_CODES:
        return PermanentError(message, cloud=cloud, reason="NotFound")
    if code in (libvirt.VIR_ERR_XML_ERROR, libvirt.VIR_ERR_XML_DETAIL, libvirt.VIR_ERR_INVALID_ARG):
        return PermanentError(message, cloud=cloud, reason="BadRequest")
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return PermanentError(message, cloud=cloud, reason="InvalidOperation")
    return PermanentError(message, cloud=cloud, reason="LibvirtError")


def make_error(code: int, message: str) -> libvirt.libvirtError:
    """A libvirtError carrying ``code``, as libvirt itself would raise it (for tests and
    fault injection at the SDK boundary)."""
    exc = libvirt.libvirtError(message)
    exc.err = (code, libvirt.VIR_FROM_NONE, message, libvirt.VIR_ERR_ERROR, "", None, None, 0, 0)
    return exc
