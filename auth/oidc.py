"""OpenID Connect relying party: discovery, PKCE code flow, ID-token and logout-token validation.

Authlib supplies the protocol helpers (PKCE, OIDC claim rules) and joserfc, its JOSE engine, verifies
signatures; httpx talks to the provider. Keys are cached and fetched again when a token names an
unknown key id, so the provider can rotate keys without a restart here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jws, jwt
from joserfc.errors import InvalidClaimError, InvalidKeyIdError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from auth.oidc_errors import OidcError, ProviderUnavailable

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256"]
JWKS_MIN_REFETCH_SECONDS = 5.0


@dataclass
class AuthRequest:
    """What the callback needs to finish a sign-in, kept server-side keyed by `state`."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass
class OidcClient:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scopes: str = "openid email profile"
    timeout: float = 10.0
    leeway: int = 60
    # Unknown key ids trigger a refetch, but at most this often (an unauthenticated caller can send any kid).
    jwks_min_refetch_seconds: float = JWKS_MIN_REFETCH_SECONDS
    metadata: dict[str, Any] = field(default_factory=dict)
    key_ids_seen: set[str] = field(default_factory=set)
    _keys: KeySet | None = None
    _keys_fetched_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._http() as http:
                response = await http.get(url)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable("provider_unreachable", f"{type(exc).__name__} for {url}") from exc
        if response.status_code != 200:
            raise ProviderUnavailable("provider_error", f"HTTP {response.status_code} for {url}")
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderUnavailable("provider_error", f"not JSON from {url}") from exc
        if not isinstance(data, dict):
            raise ProviderUnavailable("provider_error", f"unexpected document from {url}")
        return data

    async def discover(self) -> dict[str, Any]:
        """Fetch and check the discovery document once; later calls reuse it."""
        if self.metadata:
            return self.metadata
        async with self._lock:
            if not self.metadata:
                doc = await self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
                if doc.get("issuer") != self.issuer:
                    raise ProviderUnavailable("issuer_mismatch", f"discovery says {doc.get('issuer')!r}")
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(doc.get(key), str):
                        raise ProviderUnavailable("provider_error", f"discovery lacks {key}")
                self.metadata = doc
        return self.metadata

    async def _fetch_keys(self) -> KeySet:
        doc = await self._get_json((await self.discover())["jwks_uri"])
        try:
            keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailable("provider_error", "unusable key set") from exc
        self._keys, self._keys_fetched_at = keys, time.monotonic()
        self.key_ids_seen.update(k.kid for k in keys.keys if k.kid)
        return keys

    async def _key_for(self, token: str) -> Any:
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise OidcError("malformed_token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise OidcError("bad_algorithm", str(header.get("alg")))
        kid = header.get("kid")
        keys = self._keys or await self._fetch_keys()
        try:
            return keys.get_by_kid(kid) if kid else _only_key(keys)
        except InvalidKeyIdError:
            # Rotation: a new kid means a new key set; fetch it again, but not in a tight loop.
            if time.monotonic() - self._keys_fetched_at < self.jwks_min_refetch_seconds:
                raise OidcError("unknown_key", str(kid)) from None
            try:
                return (await self._fetch_keys()).get_by_kid(kid)
            except InvalidKeyIdError:
                raise OidcError("unknown_key", str(kid)) from None

    async def _verified(self, token: str) -> Any:
        key = await self._key_for(token)
        try:
            return jwt.decode(token, key, algorithms=ALGORITHMS)
        except JoseError as exc:
            raise OidcError("bad_signature", type(exc).__name__) from exc

    async def authorization_request(self) -> AuthRequest:
        """A fresh state, nonce and PKCE verifier, and the URL to send the browser to."""
        meta = await self.discover()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        url = add_params_to_uri(
            meta["authorization_endpoint"],
            [
                ("response_type", "code"),
                ("client_id", self.client_id),
                ("redirect_uri", self.redirect_uri),
                ("scope", self.scopes),
                ("state", state),
                ("nonce", nonce),
                ("code_challenge", create_s256_code_challenge(verifier)),
                ("code_challenge_method", "S256"),
            ],
        )
        return AuthRequest(url=url, state=state, nonce=nonce, code_verifier=verifier)

    async def exchange_code(self, code: str, code_verifier: str) -> dict[str, Any]:
        meta = await self.discover()
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": code_verifier,
        }
        try:
            async with self._http() as http:
                response = await http.post(
                    meta["token_endpoint"], data=data, auth=(self.client_id, self.client_secret)
                )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable("provider_unreachable", type(exc).__name__) from exc
        if response.status_code != 200:
            error = _safe_error(response)
            raise OidcError("token_exchange_failed", error)
        try:
            tokens = response.json()
        except ValueError as exc:
            raise ProviderUnavailable("provider_error", "token response is not JSON") from exc
        if not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
            raise OidcError("no_id_token")
        return tokens

    async def validate_id_token(
        self, id_token: str, nonce: str, access_token: str | None = None
    ) -> dict[str, Any]:
        """Signature, iss, aud (must contain our client id), exp/iat with leeway, nonce, azp, at_hash."""
        token = await self._verified(id_token)
        claims = CodeIDToken(
            token.claims,
            token.header,
            options={
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.client_id},
                "nonce": {"essential": True, "value": nonce},
                "exp": {"essential": True},
                "iat": {"essential": True},
                "sub": {"essential": True},
            },
            params={"nonce": nonce, "client_id": self.client_id, "access_token": access_token},
        )
        try:
            claims.validate(now=int(time.time()), leeway=self.leeway)
        except JoseError as exc:
            raise OidcError("invalid_id_token", f"{type(exc).__name__}: {exc}") from exc
        if int(token.claims.get("iat", 0)) > time.time() + self.leeway:
            raise OidcError("invalid_id_token", "issued in the future")
        return dict(token.claims)

    async def validate_logout_token(self, logout_token: str) -> dict[str, Any]:
        """OIDC Back-Channel Logout 1.0, section 2.6 (replay is checked by the caller, who has the store)."""
        token = await self._verified(logout_token)
        if token.header.get("typ") != "logout+jwt":
            raise OidcError("invalid_logout_token", "typ must be logout+jwt")
        claims = token.claims
        try:
            JWTClaimsRegistry(
                leeway=self.leeway,
                now=int(time.time()),
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client_id},
                iat={"essential": True},
                exp={"essential": True},
                jti={"essential": True},
            ).validate(claims)
            events = claims.get("events")
            if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
                raise InvalidClaimError("events")
            if "nonce" in claims:
                raise InvalidClaimError("nonce")
            if not (claims.get("sub") or claims.get("sid")):
                raise MissingClaimError("sub")
        except JoseError as exc:
            raise OidcError("invalid_logout_token", f"{type(exc).__name__}: {exc}") from exc
        if int(claims.get("iat", 0)) > time.time() + self.leeway:
            raise OidcError("invalid_logout_token", "issued in the future")
        return dict(claims)

    async def end_session_url(self, id_token: str | None, post_logout_redirect_uri: str) -> str | None:
        """Where to send the browser for RP-initiated logout, when the provider offers it."""
        try:
            endpoint = (await self.discover()).get("end_session_endpoint")
        except ProviderUnavailable:
            return None
        if not isinstance(endpoint, str):
            return None
        params = [("client_id", self.client_id), ("post_logout_redirect_uri", post_logout_redirect_uri)]
        if id_token:
            params.insert(0, ("id_token_hint", id_token))
        return add_params_to_uri(endpoint, params)


def _only_key(keys: KeySet) -> Any:
    """A token without kid is acceptable only when the provider publishes exactly one key."""
    if len(keys.keys) != 1:
        raise InvalidKeyIdError("token has no kid and the key set has several keys")
    return keys.keys[0]


def _safe_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        return f"HTTP {response.status_code} {str(body.get('error', ''))[:100]}"
    return f"HTTP {response.status_code}"
