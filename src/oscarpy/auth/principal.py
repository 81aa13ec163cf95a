"""Who makes a request, as every edge and check below them sees it.

The REST API, the S3 front-end and the dashboard each turn their credentials (the admin's Basic
password, a dashboard session, an OIDC bearer token, a user's S3 key pair) into a `Principal`;
ownership and visibility checks (services, buckets) take a `Principal` and nothing else, so
they read the same whatever the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: OSCAR's owner of what the admin's Basic credentials create (services, buckets).
ADMIN_USER_ID = "cluster_admin"


@dataclass(frozen=True)
class Principal:
    """A signed-in caller.

    `user_id` is what ownership records and `allowed_users` lists hold: `ADMIN_USER_ID` for the
    admin, and for a user signed in through OIDC the subject as OSCAR writes it (see
    `oscarpy.auth.users`). `admin` callers see and may change everything.
    """

    user_id: str
    admin: bool = False
    name: str = ""
    groups: frozenset[str] = field(default_factory=frozenset)


#: The admin, whether from Basic credentials, a dashboard session or the S3 admin key pair.
ADMIN = Principal(ADMIN_USER_ID, admin=True, name="admin")
