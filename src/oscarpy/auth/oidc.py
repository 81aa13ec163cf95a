"""Bearer tokens of trusted OpenID Connect issuers, turned into identities.

A JWT access token is checked here, against the issuer's discovery document and JWKS: its
signature (asymmetric algorithms only), `iss` (one of the trusted issuers, read before the
signature only to pick the keys), `exp`, and `aud` when an audience is configured. Any other
token is opaque and asked about at the userinfo endpoint of each trusted issuer, as OSCAR does
for every token. Groups come from the configured claim of the token, else of userinfo.

Results are cached: discovery documents and key sets per issuer (refetched when a token names
an unknown key), a JWT's identity until it expires, an opaque token's for a minute.

PyJWT (with `cryptography`) does the JWT work: it is small, maintained, verifies RS/PS/ES/EdDSA
signatures from a JWKS, and leaves HTTP to us (httpx, with timeouts and our caching).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from oscarpy.config import Settings

log = logging.getLogger(__name__)

#: Signature algorithms accepted from an issuer's keys; never `none` nor a shared-secret HMAC.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
#: How long an issuer's discovery document and keys are used before they are fetched again.
METADATA_SECONDS = 3600.0
#: How long the userinfo answer for an opaque token is trusted.
OPAQUE_SECONDS = 60.0
#: Least time between two fetches of one issuer's keys forced by an unknown key id.
REFETCH_SECONDS = 10.0
_MAX_CACHED_TOKENS = 10_000
_HTTP_TIMEOUT = 5.0
#: Clock skew allowed between the issuer and this server when checking `exp`.
LEEWAY_SECONDS = 30
#: EGI Check-in's entitlements name a group as urn:mace:egi.eu:group:<group>:...
EGI_GROUP_PREFIX = "urn:mace:egi.eu:group:"


class TokenRefused(Exception):
    """A bearer token that signs no one in; `status` is 401 (not valid) or 403 (valid, but
    the user may not use this platform)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    name: str = ""
    groups: frozenset[str] = field(default_factory=frozenset)


@dataclass
class _Issuer:
    url: str
    metadata: dict[str, Any] = field(default_factory=dict)
    keys: jwt.PyJWKSet | None = None
    fetched_at: float = 0.0


def groups_of(value: object) -> frozenset[str]:
    """The groups a claim's value names: each string as given, and for an EGI entitlement URN
    also its group (as OSCAR reads `eduperson_entitlement`)."""
    items: list[object] = [value] if isinstance(value, str) else []
    if isinstance(value, list):
        items = value
    found: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            continue
        found.add(item)
        if item.lower().startswith(EGI_GROUP_PREFIX):
            fields = item.split(":")
            if len(fields) >= 5:
                found.add(fields[4].lower())
    return frozenset(found)


def _issuer_key(url: str) -> str:
    return url.rstrip("/")


class OidcVerifier:
    """Checks bearer tokens against the trusted issuers of one platform."""

    def __init__(
        self,
        issuers: list[str],
        *,
        required_groups: list[str] | None = None,
        groups_claim: str = "eduperson_entitlement",
        audience: str = "",
        http: httpx.Client | None = None,
    ) -> None:
        self.issuers = {_issuer_key(url): _Issuer(url) for url in issuers}
        self.required_groups = frozenset(required_groups or [])
        self.groups_claim = groups_claim
        self.audience = audience
        self.http = http or httpx.Client(timeout=_HTTP_TIMEOUT, follow_redirects=False)
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[Identity, float]] = {}
        self.leeway = LEEWAY_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        if not settings.oidc_issuer_list:
            return None
        return cls(
            settings.oidc_issuer_list,
            required_groups=settings.oidc_group_list,
            groups_claim=settings.oidc_groups_claim,
            audience=settings.oidc_audience,
        )

    def identify(self, token: str) -> Identity:
        """Who `token` signs in, or `TokenRefused`."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        now = time.time()
        with self._lock:
            cached = self._tokens.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        identity, valid_until = self._check(token)
        self._check_groups(identity)
        with self._lock:
            if len(self._tokens) >= _MAX_CACHED_TOKENS:
                self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
                if len(self._tokens) >= _MAX_CACHED_TOKENS:
                    self._tokens.clear()
            self._tokens[digest] = (identity, valid_until)
        return identity

    def _check(self, token: str) -> tuple[Identity, float]:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return self._opaque(token)
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or _issuer_key(issuer) not in self.issuers:
            raise TokenRefused(f"{issuer!r} is not a trusted issuer of this platform")
        claims = self._verified_claims(token, self.issuers[_issuer_key(issuer)])
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenRefused("the token names no subject (sub)")
        groups_value = claims.get(self.groups_claim)
        name = claims.get("name")
        if groups_value is None and self.required_groups:
            # Issuers such as EGI Check-in put entitlements in userinfo, not the access token.
            info = self._userinfo(self.issuers[_issuer_key(issuer)], token)
            if info is not None and info.get("sub") == subject:
                groups_value = info.get(self.groups_claim)
                name = name or info.get("name")
        identity = Identity(
            issuer, subject, name if isinstance(name, str) else "", groups_of(groups_value)
        )
        return identity, float(claims["exp"])

    def discovery(self, issuer_url: str) -> dict[str, Any]:
        """The discovery document of the trusted issuer `issuer_url` (cached)."""
        return self._metadata(self.issuers[_issuer_key(issuer_url)])

    def id_token_claims(
        self, token: str, issuer_url: str, client_id: str, nonce: str
    ) -> dict[str, Any]:
        """The claims of an ID token the dashboard's sign-in received: signed by the issuer's
        keys, for `client_id`, current, and answering the sign-in that sent `nonce`."""
        claims = self._verified_claims(
            token, self.issuers[_issuer_key(issuer_url)], audience=client_id
        )
        given = claims.get("nonce")
        if not isinstance(given, str) or not hmac.compare_digest(given, nonce):
            raise TokenRefused("the ID token answers another sign-in (its nonce differs)")
        return claims

    def _verified_claims(
        self, token: str, issuer: _Issuer, *, audience: str | None = None
    ) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TokenRefused(f"malformed token: {error}") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenRefused(f"tokens signed with {algorithm!r} are not accepted")
        key = self._signing_key(issuer, header.get("kid"))
        audience = self.audience if audience is None else audience
        options: jwt.types.Options = {
            "require": ["exp", "iss", "sub"],
            "verify_aud": bool(audience),
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=issuer.metadata.get("issuer", issuer.url),
                audience=audience or None,
                options=options,
                leeway=self.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused(f"the token is not meant for {audience!r}") from None
        except jwt.PyJWTError as error:
            raise TokenRefused(f"invalid token: {error}") from None
        return claims

    def _signing_key(self, issuer: _Issuer, kid: object) -> jwt.PyJWK:
        keys = self._keys(issuer, refresh=False)
        found = _find_key(keys, kid)
        if found is None and time.time() - issuer.fetched_at > REFETCH_SECONDS:
            found = _find_key(self._keys(issuer, refresh=True), kid)
        if found is None:
            raise TokenRefused("the token is signed with a key its issuer does not publish")
        return found

    def _keys(self, issuer: _Issuer, *, refresh: bool) -> jwt.PyJWKSet:
        with self._lock:
            fresh = time.time() - issuer.fetched_at < METADATA_SECONDS
            if issuer.keys is not None and fresh and not refresh:
                return issuer.keys
        metadata = self._metadata(issuer, refresh=True)
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise TokenRefused(f"the issuer {issuer.url} publishes no jwks_uri", 401)
        document = self._get_json(jwks_uri, f"the keys of {issuer.url}")
        try:
            keys = jwt.PyJWKSet.from_dict(document)
        except jwt.PyJWTError as error:
            raise TokenRefused(f"the keys of {issuer.url} are unusable: {error}") from None
        with self._lock:
            issuer.keys = keys
            issuer.fetched_at = time.time()
        return keys

    def _metadata(self, issuer: _Issuer, *, refresh: bool = False) -> dict[str, Any]:
        with self._lock:
            if issuer.metadata and not refresh:
                return issuer.metadata
        url = issuer.url.rstrip("/") + "/.well-known/openid-configuration"
        metadata = self._get_json(url, f"the discovery document of {issuer.url}")
        if _issuer_key(str(metadata.get("issuer", ""))) != _issuer_key(issuer.url):
            raise TokenRefused(f"the discovery document of {issuer.url} names another issuer")
        with self._lock:
            issuer.metadata = metadata
        return metadata

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            answer = self.http.get(url)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, json.JSONDecodeError) as error:
            log.warning("cannot read %s: %s", what, error)
            raise TokenRefused(f"cannot read {what}; try again later", 503) from None
        if not isinstance(document, dict):
            raise TokenRefused(f"{what} is not a JSON object", 503)
        return document

    def _userinfo(self, issuer: _Issuer, token: str) -> dict[str, Any] | None:
        """The userinfo of `token` at `issuer`, or None when the issuer does not accept it."""
        endpoint = self._metadata(issuer).get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return None
        try:
            answer = self.http.get(endpoint, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as error:
            log.warning("cannot reach the userinfo endpoint of %s: %s", issuer.url, error)
            raise TokenRefused("cannot reach the token's issuer; try again later", 503) from None
        if answer.status_code != 200:
            return None
        try:
            document = answer.json()
        except json.JSONDecodeError:
            return None
        return document if isinstance(document, dict) else None

    def _opaque(self, token: str) -> tuple[Identity, float]:
        """An opaque token: whichever trusted issuer's userinfo accepts it says who it is."""
        for issuer in self.issuers.values():
            info = self._userinfo(issuer, token)
            subject = info.get("sub") if info is not None else None
            if isinstance(subject, str) and subject and info is not None:
                name = info.get("name")
                identity = Identity(
                    issuer.metadata.get("issuer", issuer.url),
                    subject,
                    name if isinstance(name, str) else "",
                    groups_of(info.get(self.groups_claim)),
                )
                return identity, time.time() + OPAQUE_SECONDS
        raise TokenRefused("the token is neither a valid JWT nor known to a trusted issuer")

    def _check_groups(self, identity: Identity) -> None:
        if self.required_groups and not (self.required_groups & identity.groups):
            raise TokenRefused(
                f"{identity.subject} is not in any group allowed on this platform "
                f"({', '.join(sorted(self.required_groups))})",
                403,
            )


def _find_key(keys: jwt.PyJWKSet, kid: object) -> jwt.PyJWK | None:
    signing = [key for key in keys.keys if getattr(key, "public_key_use", None) in (None, "sig")]
    if kid is None:
        return signing[0] if len(signing) == 1 else None
    return next((key for key in signing if key.key_id == kid), None)
