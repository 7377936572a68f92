"""Identifier checks and the SIM secret box, without a database."""

from __future__ import annotations

import pytest

from app.errors import DomainError
from devices import checks
from tests.devices.helpers import iccid, imei


def test_imei_needs_fifteen_digits_and_a_valid_check_digit():
    good = imei(1)
    assert checks.imei(good) == good
    assert checks.imei(" ３５" + good[2:]) == good  # full-width digits typed on a Japanese keyboard
    assert checks.imei("") is None
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    for value in (bad, good[:-1], good + "0", "35abc"):
        with pytest.raises(DomainError) as err:
            checks.imei(value)
        assert err.value.key == "devices.bad_imei" and err.value.status_code == 422


def test_iccid_is_19_or_20_digits_starting_89_with_luhn():
    good = iccid(5)
    assert checks.iccid(good) == good
    assert checks.iccid(good[:4] + " " + good[4:]) == good
    for value in ("", "12" + good[2:], good[:-1] + str((int(good[-1]) + 1) % 10), good[:15]):
        with pytest.raises(DomainError, match=r"devices.bad_iccid"):
            checks.iccid(value)


def test_numbers_become_e164():
    assert checks.e164("090-1234-5678") == "+819012345678"
    assert checks.e164("+81 90 1234 5678") == "+819012345678"
    assert checks.e164("０９０１２３４５６７８") == "+819012345678"
    for value in ("", "12345", "+0123456789", "phone", "+81901234567890123"):
        with pytest.raises(DomainError, match=r"devices.bad_number"):
            checks.e164(value)


def test_asset_tags_are_upper_case_and_plain():
    assert checks.asset_tag(" pc-001 ") == "PC-001"
    for value in ("", "-PC", "PC 1", "x" * 33, "ＰＣ＝１"):
        with pytest.raises(DomainError, match=r"devices.bad_asset_tag"):
            checks.asset_tag(value)


def test_secret_box_round_trip_and_key_separation():
    box = checks.SecretBox("k1")
    sealed = box.seal("1234")
    assert sealed is not None and "1234" not in sealed
    assert box.open(sealed) == "1234"
    assert box.seal(None) is None
    with pytest.raises(DomainError, match=r"devices.secret_unreadable"):
        checks.SecretBox("k2").open(sealed)


def test_sim_secrets_are_digits():
    assert checks.sim_secret("１２３４", "pin") == "1234"
    assert checks.sim_secret("", "pin") is None
    for value in ("12", "abcd", "123456789"):
        with pytest.raises(DomainError, match=r"devices.bad_secret"):
            checks.sim_secret(value, "pin")
