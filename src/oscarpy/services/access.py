"""Who may do what with a service: OSCAR's ownership and visibility, in one place.

- the owner (its creator's user id) and admins: everything;
- `public`: every signed-in user may read and invoke it;
- `restricted`: the users in `allowed_users` may read and invoke it;
- `private`: nobody else.

Only the owner and admins may update or delete a service, or read and delete its jobs and logs
(OSCAR shows a non-owner the jobs they started; oscar-py does not record who started a job).
A service's token opens its `/job` and `/run` only, checked in `oscarpy.api.auth`.
"""

from __future__ import annotations

from typing import Literal

from oscarpy.auth.principal import Principal
from oscarpy.services.errors import ServiceForbidden
from oscarpy.services.model import Service

Action = Literal["read", "invoke", "change", "manage jobs of"]


def allows(principal: Principal, service: Service, action: Action) -> bool:
    if principal.admin or principal.user_id == service.owner:
        return True
    if action in ("change", "manage jobs of"):
        return False
    if service.visibility == "public":
        return True
    return service.visibility == "restricted" and principal.user_id in service.allowed_users


def require(principal: Principal, service: Service, action: Action) -> Service:
    """`service`, or `ServiceForbidden` (403) when `principal` may not `action` it."""
    if not allows(principal, service, action):
        raise ServiceForbidden(
            f"user {principal.user_id} may not {action} the service {service.name!r}"
        )
    return service


def visible(principal: Principal, services: list[Service]) -> list[Service]:
    """The services `principal` may read, as `GET /system/services` lists them."""
    return [service for service in services if allows(principal, service, "read")]


def shown_to(principal: Principal, service: Service) -> Service:
    """`service` as `principal` may read it: secret values blanked; the token and the storage
    providers' credentials only for those who may change the service (the owner's storage
    clients need the credentials, as in OSCAR; a user it is shared with invokes it with their
    own token, and loses access when the owner stops sharing it)."""
    owner = allows(principal, service, "change")
    shown = service.redacted(provider_secrets=owner)
    if not owner:
        shown.token = ""
    return shown
