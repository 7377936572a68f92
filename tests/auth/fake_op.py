"""A small OpenID Provider on 127.0.0.1 for the SSO tests, fully under the test's control.

Real HTTP on loopback: discovery, JWKS, authorization (no UI: it signs in `op.user` at once and
requires PKCE S256), token (client secret, single-use codes, PKCE check), userinfo, end_session.
Tests can rotate its key, override ID-token claims, and mint logout tokens.
"""

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlparse

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

BCL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class FakeOP:
    def __init__(self, client_id: str = "telework", client_secret: str = "s3cret") -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.key = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)
        self.published = [self.key]  # keys served at /jwks
        self.user: dict = {"sub": "u-1"}  # claims of whoever "logs in" next
        self.id_token_overrides: dict = {}  # e.g. {"aud": "x"}, {"exp": 1}, {"nonce": "bad"}
        self.codes: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}
        self.jwks_hits, self.end_session_calls = 0, []
        self.last_sid = ""
        self._srv = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(target=self._srv.serve_forever, args=(0.05,), daemon=True)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._srv.server_address[1]}"

    def __enter__(self) -> "FakeOP":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(2)

    def sign(self, claims: dict, header: dict | None = None, key: RSAKey | None = None) -> str:
        k = key or self.key
        return jwt.encode({"alg": "RS256", "kid": k.kid, **(header or {})}, claims, k, algorithms=["RS256"])

    def rotate_key(self, keep_old: bool = False) -> RSAKey:
        self.key = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)
        self.published = [*self.published, self.key] if keep_old else [self.key]
        return self.key

    def logout_token(self, sub: str | None = None, sid: str | None = None, **overrides: object) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
            "events": {BCL_EVENT: {}},
        }
        claims |= {k: v for k, v in (("sub", sub), ("sid", sid)) if v is not None} | overrides
        return self.sign(claims, header={"typ": "logout+jwt"})

    def discovery(self) -> dict:
        i = self.issuer
        return {
            "issuer": i,
            "authorization_endpoint": f"{i}/authorize",
            "token_endpoint": f"{i}/token",
            "jwks_uri": f"{i}/jwks",
            "userinfo_endpoint": f"{i}/userinfo",
            "end_session_endpoint": f"{i}/end_session",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "backchannel_logout_supported": True,
        }


def _make_handler(op: FakeOP) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: object = None, headers: dict | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            hdrs = {"Content-Type": "application/json", "Cache-Control": "no-store", **(headers or {})}
            for k, v in {**hdrs, "Content-Length": str(len(data))}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _redirect(self, url: str, params: dict) -> None:
            qs = urlencode({k: v for k, v in params.items() if v})
            self._send(302, headers={"Location": url + ("&" if urlparse(url).query else "?") + qs})

        def do_GET(self) -> None:
            u = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            if u.path == "/.well-known/openid-configuration":
                return self._send(200, op.discovery())
            if u.path == "/jwks":
                op.jwks_hits += 1
                return self._send(200, KeySet(op.published).as_dict())
            if u.path == "/authorize":  # no UI: "logs in" op.user at once; PKCE S256 mandatory
                if (q.get("client_id"), q.get("response_type"), q.get("code_challenge_method")) != (
                    op.client_id,
                    "code",
                    "S256",
                ) or not q.get("code_challenge"):
                    return self._send(400, {"error": "invalid_request"})
                code = secrets.token_urlsafe(24)
                op.last_sid = secrets.token_urlsafe(8)
                op.codes[code] = {**q, "user": dict(op.user), "sid": op.last_sid}
                return self._redirect(
                    q["redirect_uri"], {"code": code, "state": q.get("state"), "iss": op.issuer}
                )
            if u.path == "/userinfo":
                tok = op.tokens.get(self.headers.get("Authorization", "").removeprefix("Bearer "))
                return self._send(200, tok) if tok else self._send(401, {"error": "invalid_token"})
            if u.path == "/end_session":
                op.end_session_calls.append(q)
                if q.get("post_logout_redirect_uri"):
                    return self._redirect(q["post_logout_redirect_uri"], {"state": q.get("state")})
                return self._send(200, {"logged_out": True})
            self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:
            f = {
                k: v[0]
                for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()
            }
            if urlparse(self.path).path != "/token":
                return self._send(404, {"error": "not_found"})
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):  # client_secret_basic, else client_secret_post
                cid, _, secret = map(unquote, base64.b64decode(auth[6:]).decode().partition(":"))
            else:
                cid, secret = f.get("client_id", ""), f.get("client_secret", "")
            if (cid, secret) != (op.client_id, op.client_secret):
                return self._send(401, {"error": "invalid_client"})
            c = op.codes.pop(f.get("code", ""), None)  # single use
            if (
                f.get("grant_type") != "authorization_code"
                or not c
                or c["redirect_uri"] != f.get("redirect_uri")
            ):
                return self._send(400, {"error": "invalid_grant"})
            if create_s256_code_challenge(f.get("code_verifier", "")) != c["code_challenge"]:
                return self._send(400, {"error": "invalid_grant", "error_description": "PKCE failed"})
            now, at = int(time.time()), secrets.token_urlsafe(24)
            claims = {
                "iss": op.issuer,
                "aud": op.client_id,
                "iat": now,
                "exp": now + 300,
                "auth_time": now,
                "sid": c["sid"],
                **({"nonce": c["nonce"]} if "nonce" in c else {}),
                **c["user"],
            }
            op.tokens[at] = c["user"]
            id_token = op.sign(claims | op.id_token_overrides)
            self._send(
                200, {"access_token": at, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
            )

    return H
