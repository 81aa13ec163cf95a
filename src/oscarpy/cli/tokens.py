"""The OIDC access token a command sends, from what the cluster's entry holds.

- `oidc_account_name`: asked of oidc-agent (its `oidc-token NAME` command), as oscar-cli does;
- `oidc_refresh_token`: exchanged at the issuer's token endpoint (`oidc_token_endpoint`, else the
  one the refresh token's issuer publishes, when the refresh token is a JWT as Keycloak's are),
  for the client `oidc_client_id` (else the refresh token's `azp`, else EGI's `token-portal`,
  oscar_python's default);
- `oidc_token`: sent as it is.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from typing import Any

from oscarpy.cli.clusters import Cluster
from oscarpy.cli.errors import ConfigError, Unauthorized

DEFAULT_CLIENT_ID = "token-portal"
_TIMEOUT = 30.0


def access_token(cluster: Cluster) -> str:
    if cluster.oidc_account_name:
        return _from_oidc_agent(cluster.oidc_account_name)
    if cluster.oidc_refresh_token:
        return refreshed(cluster)
    return cluster.oidc_token


def _from_oidc_agent(account: str) -> str:
    command = shutil.which("oidc-token")
    if command is None:
        raise ConfigError(
            f"the cluster signs in through oidc-agent account {account!r}, but oidc-agent's "
            "`oidc-token` command is not installed"
        )
    try:
        answer = subprocess.run(
            [command, account], capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise Unauthorized(f"oidc-agent gave no token for {account!r} in time") from None
    token = answer.stdout.strip()
    if answer.returncode != 0 or not token:
        reason = answer.stderr.strip() or f"exit status {answer.returncode}"
        raise Unauthorized(f"oidc-agent gave no token for {account!r}: {reason}")
    return token


def refreshed(cluster: Cluster) -> str:
    """A fresh access token for the cluster's refresh token; when the issuer rotates refresh
    tokens, the new one replaces the spent one in `cluster` (the caller saves it)."""
    import httpx

    claims = _jwt_claims(cluster.oidc_refresh_token)
    endpoint = cluster.oidc_token_endpoint or _token_endpoint(claims, cluster.ssl_verify)
    client_id = cluster.oidc_client_id or str(claims.get("azp") or DEFAULT_CLIENT_ID)
    try:
        answer = httpx.post(
            endpoint,
            data={
                "grant_type": "refresh_token",
                "refresh_token": cluster.oidc_refresh_token,
                "client_id": client_id,
            },
            verify=cluster.ssl_verify,
            timeout=_TIMEOUT,
        )
    except httpx.HTTPError as error:
        raise Unauthorized(f"cannot reach the token endpoint {endpoint}: {error}") from None
    body = answer.json() if answer.is_success else {}
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise Unauthorized(
            f"the token endpoint {endpoint} refused the refresh token ({answer.status_code}: "
            f"{answer.text[:200]}); get a new one and run `oscar cluster add` again"
        )
    rotated = body.get("refresh_token")
    if isinstance(rotated, str) and rotated:
        cluster.oidc_refresh_token = rotated
    return token


def _token_endpoint(claims: dict[str, Any], verify: bool) -> str:
    import httpx

    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise ConfigError(
            "the refresh token names no issuer: give the token endpoint with "
            "`oscar cluster add ... --oidc-token-endpoint URL`"
        )
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        endpoint = httpx.get(url, verify=verify, timeout=_TIMEOUT).json().get("token_endpoint")
    except (httpx.HTTPError, ValueError) as error:
        raise Unauthorized(f"cannot read {url}: {error}") from None
    if not isinstance(endpoint, str):
        raise Unauthorized(f"{url} names no token_endpoint")
    return endpoint


def _jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (only to find where to send it); {} for anything else."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}
