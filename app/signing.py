"""Signed, expiring tokens for links that carry their own authority (a guest's way into one meeting).

A token is ``<payload>.<mac>``: the payload is URL-safe base64 of compact JSON: the caller's claims plus
``p`` (the purpose, so a token made for one use is refused for another) and ``exp`` (Unix seconds); the MAC is
HMAC-SHA256 over the purpose and payload with a key derived from SECRET_KEY. Nothing is stored: revoking
one link means changing what it points at (cancelling the meeting, removing the guest).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


class BadToken(ValueError):
    """The token is malformed, was signed for another purpose or key, or has expired (see ``expired``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.expired = reason == "expired"


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"telework-hub/signing/v1\0" + secret.encode()).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, payload: str) -> str:
    return _b64(hmac.new(_key(secret), f"{purpose}\0{payload}".encode(), hashlib.sha256).digest())


def sign(secret: str, purpose: str, claims: dict[str, Any], *, expires_at: float) -> str:
    """A token for ``purpose`` carrying ``claims`` (JSON values), valid until ``expires_at`` (Unix time)."""
    if not secret:
        raise ValueError("no signing secret")
    body = dict(claims, p=purpose, exp=int(expires_at))
    payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_mac(secret, purpose, payload)}"


def verify(secret: str, purpose: str, token: str, *, now: float | None = None) -> dict[str, Any]:
    """The claims of a valid token; BadToken otherwise. ``p`` and ``exp`` are left in the result."""
    if (
        not secret
        or not isinstance(token, str)
        or len(token) > 4096
        or not token.isascii()
        or token.count(".") != 1
    ):
        raise BadToken("malformed")
    payload, mac = token.split(".")
    if not hmac.compare_digest(mac, _mac(secret, purpose, payload)):
        raise BadToken("signature")
    try:
        claims = json.loads(_unb64(payload))
    except ValueError as exc:
        raise BadToken("malformed") from exc
    if not isinstance(claims, dict) or claims.get("p") != purpose or not isinstance(claims.get("exp"), int):
        raise BadToken("malformed")
    if claims["exp"] <= (time.time() if now is None else now):
        raise BadToken("expired")
    return claims
