"""Kernel errors from IPVS operations, as exceptions that say what went wrong and to what.

Netlink reports a negative errno per failed message; the same errno means different things
depending on the operation (ENOENT is "no such destination" for a destination op but "no such
scheduler" when adding a service), so the mapping takes both into account. The in-memory fake
raises the very same classes, which the shared contract suite checks.
"""

from __future__ import annotations

import errno
import os

from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteRealServer,
    DeleteService,
    Operation,
    UpdateRealServer,
    UpdateService,
)


class IpvsError(Exception):
    """An IPVS operation the kernel refused. `errno` is the kernel's (positive) error number."""

    def __init__(self, code: int, what: str) -> None:
        self.errno = code
        self.what = what
        super().__init__(f"{what}: {os.strerror(code)} ({errno.errorcode.get(code, code)})")


class IpvsUnavailable(IpvsError):
    """The kernel has no IPVS (module not loaded, or not built)."""


class ServiceExists(IpvsError):
    """Adding a virtual server that already exists."""


class ServiceNotFound(IpvsError):
    """Changing, deleting, or adding a destination to a virtual server that does not exist."""


class DestinationExists(IpvsError):
    """Adding a real server that the virtual server already has."""


class DestinationNotFound(IpvsError):
    """Changing or deleting a real server the virtual server does not have."""


class SchedulerNotFound(IpvsError):
    """The scheduler (or persistence engine) named is not available in this kernel."""


class InvalidArgument(IpvsError):
    """The kernel rejected a value (EINVAL / ERANGE / EAFNOSUPPORT)."""


class PermissionDenied(IpvsError):
    """The caller lacks CAP_NET_ADMIN."""


_SERVICE_OPS = (AddService, UpdateService, DeleteService)
_DEST_OPS = (AddRealServer, UpdateRealServer, DeleteRealServer)


def describe(op: Operation) -> str:
    """A short human description of an operation for error messages and logs."""
    match op:
        case AddService(server=s):
            return f"add service {s.key} (scheduler {s.scheduler})"
        case UpdateService(server=s):
            return f"update service {s.key} (scheduler {s.scheduler})"
        case DeleteService(key=k):
            return f"delete service {k}"
        case AddRealServer(service=k, server=d):
            return f"add real server {d.address}:{d.port} to {k}"
        case UpdateRealServer(service=k, server=d):
            return f"update real server {d.address}:{d.port} of {k}"
        case DeleteRealServer(service=k, address=a, port=p):
            return f"delete real server {a}:{p} of {k}"
    raise TypeError(f"not an IPVS operation: {op!r}")


def error_for(op: Operation, code: int) -> IpvsError:
    """The exception for `op` failing with positive errno `code`."""
    what = describe(op)
    is_service_op = isinstance(op, _SERVICE_OPS)
    cls: type[IpvsError]
    if code == errno.EEXIST:
        cls = ServiceExists if is_service_op else DestinationExists
    elif code == errno.ESRCH:
        cls = ServiceNotFound
    elif code == errno.ENOENT:
        cls = (
            SchedulerNotFound
            if isinstance(op, AddService | UpdateService)
            else (ServiceNotFound if is_service_op else DestinationNotFound)
        )
    else:
        return error_from_code(code, what)
    return cls(code, what)


def error_from_code(code: int, what: str) -> IpvsError:
    """The exception for a failure whose meaning does not depend on the operation."""
    cls: type[IpvsError] = IpvsError
    if code in (errno.EINVAL, errno.ERANGE, errno.EAFNOSUPPORT, errno.EOPNOTSUPP):
        cls = InvalidArgument
    elif code == errno.EPERM:
        cls = PermissionDenied
    return cls(code, what)
