"""Identifier checks (IMEI, ICCID, E.164) and the box that keeps SIM PINs and PUKs encrypted at rest."""

from __future__ import annotations

import base64
import re
import unicodedata

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.errors import DomainError

ASSET_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
E164_RE = re.compile(r"\+[1-9][0-9]{7,14}")
SECRET_RE = re.compile(r"[0-9]{4,8}")


def luhn_ok(digits: str) -> bool:
    """The Luhn check digit used by IMEIs and ICCIDs."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def luhn_digit(body: str) -> str:
    """The check digit that makes body + digit pass Luhn (for tests, demo data and benchmarks)."""
    for d in "0123456789":
        if luhn_ok(body + d):
            return d
    raise ValueError(body)  # pragma: no cover


def _plain(value: str) -> str:
    """Full-width digits and the spaces/hyphens people type become plain digits."""
    return re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", value))


def imei(value: str | None) -> str | None:
    """A 15-digit IMEI with a valid check digit, or None when empty."""
    if value is None or not value.strip():
        return None
    digits = _plain(value)
    if len(digits) != 15 or not luhn_ok(digits):
        raise DomainError("devices.bad_imei", status_code=422, field="imei", value=value[:40])
    return digits


def iccid(value: str) -> str:
    """An ICCID: 19 or 20 digits starting 89 (telecom) with a valid Luhn check digit."""
    digits = _plain(value or "")
    if not (19 <= len(digits) <= 20 and digits.startswith("89") and luhn_ok(digits)):
        raise DomainError("devices.bad_iccid", status_code=422, field="iccid", value=(value or "")[:40])
    return digits


def e164(value: str) -> str:
    """A phone number in E.164 (+819012345678); a Japanese national number (090-1234-5678) is converted."""
    raw = _plain(value or "").replace("(", "").replace(")", "")
    if raw.startswith("0") and not raw.startswith("00") and raw.isdigit():
        raw = "+81" + raw[1:]
    if not E164_RE.fullmatch(raw):
        raise DomainError("devices.bad_number", status_code=422, field="number", value=(value or "")[:40])
    return raw


def asset_tag(value: str) -> str:
    tag = unicodedata.normalize("NFKC", value or "").strip().upper()
    if not ASSET_TAG_RE.fullmatch(tag):
        raise DomainError(
            "devices.bad_asset_tag", status_code=422, field="asset_tag", value=(value or "")[:40]
        )
    return tag


def sim_secret(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    plain = _plain(value)
    if not SECRET_RE.fullmatch(plain):
        raise DomainError("devices.bad_secret", status_code=422, field=name)
    return plain


class SecretBox:
    """Fernet keyed by HKDF from the app's secret key; its own label keeps the key for SIM secrets only."""

    def __init__(self, secret_key: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"telework-hub", info=b"devices/sim-secrets/v1"
        ).derive(secret_key.encode("utf-8"))
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, value: str | None) -> str | None:
        return None if value is None else self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, token: str | None) -> str | None:
        if token is None:
            return None
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise DomainError("devices.secret_unreadable", status_code=409) from exc
