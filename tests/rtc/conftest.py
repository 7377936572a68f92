"""Meeting tests keep ICE on loopback (shared recipe): no interface but 127.0.0.1 is ever offered."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
