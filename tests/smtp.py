"""A real SMTP server on loopback (aiosmtpd) for mail tests, and settings that send to it.

A test module that imports ``smtp_fixture`` and ``smtp_settings_fixture`` (``# noqa: F401``: pytest finds them
there) can ask for the fixtures ``smtp`` and ``smtp_settings``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from aiosmtpd.controller import Controller

from tests.live_server import free_port


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.rcpt: list[list[str]] = []

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:  # type: ignore[no-untyped-def]
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.01)  # a little latency, so concurrent workers really overlap
        self.raw.append(envelope.original_content or envelope.content)
        self.rcpt.append(list(envelope.rcpt_tos))
        return "250 OK"

    @property
    def messages(self) -> list[EmailMessage]:
        return [BytesParser(policy=policy.default).parsebytes(r) for r in self.raw]  # type: ignore[misc]


@pytest.fixture(name="smtp")
def smtp_fixture() -> Iterator[tuple[int, Inbox]]:
    """A real SMTP server on loopback that keeps what it receives: (port, inbox)."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


@pytest.fixture(name="smtp_settings")
def smtp_settings_fixture(settings, smtp):
    """The app settings, sending mail to that server."""
    return dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=smtp[0])
