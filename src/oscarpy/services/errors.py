"""What can go wrong with service definitions and the registry.

    ServiceError
    ├── ServiceDefinitionError   a definition (JSON body or FDL file) is invalid
    ├── ServiceExists            create with a name already taken
    ├── ServiceNotFound          read, update or delete of an absent service
    └── ServiceForbidden         the caller's user may not do this with the service

Their HTTP statuses are in `oscarpy/errors.py`.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error of the services package."""


class ServiceDefinitionError(ServiceError, ValueError):
    """A definition is invalid; the message names the file (for FDL) and the field."""


class ServiceExists(ServiceError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a service named {name!r} already exists; update it with PUT instead")
        self.name = name


class ServiceNotFound(ServiceError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no service named {name!r}")
        self.name = name


class ServiceForbidden(ServiceError):
    """The caller is signed in but may not do this with the service (see `services.access`)."""
