"""Signed, expiring link tokens: what they carry, and every way a token is refused."""

from __future__ import annotations

import pytest

from app.signing import BadToken, sign, verify

SECRET = "s" * 32


def test_round_trip_keeps_claims() -> None:
    token = sign(SECRET, "guest", {"room": "abc", "name": "佐藤"}, expires_at=2_000)
    claims = verify(SECRET, "guest", token, now=1_000)
    assert claims["room"] == "abc" and claims["name"] == "佐藤" and claims["exp"] == 2_000


@pytest.mark.parametrize(
    ("secret", "purpose", "now", "reason"),
    [
        ("t" * 32, "guest", 1_000, "signature"),  # another key
        (SECRET, "other", 1_000, "signature"),  # another purpose
        (SECRET, "guest", 2_000, "expired"),  # at expiry
    ],
)
def test_refusals(secret: str, purpose: str, now: int, reason: str) -> None:
    token = sign(SECRET, "guest", {"room": "abc"}, expires_at=2_000)
    with pytest.raises(BadToken) as info:
        verify(secret, purpose, token, now=now)
    assert str(info.value) == reason
    assert info.value.expired == (reason == "expired")


def test_tampered_payload_is_refused() -> None:
    token = sign(SECRET, "guest", {"room": "abc"}, expires_at=2_000)
    forged = sign(SECRET, "guest", {"room": "xyz"}, expires_at=2_000)
    mixed = forged.split(".")[0] + "." + token.split(".")[1]
    for bad in (mixed, "", "no-dot", "a.b.c", token + "x", "abc.é", token + "é"):
        with pytest.raises(BadToken):
            verify(SECRET, "guest", bad, now=1_000)
