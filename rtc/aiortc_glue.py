"""Every use of aiortc's private names, in one place (aiortc is pinned: aiortc==1.16.0).

aiortc has no pass-through mode, so the SFU takes over four seams of a peer connection:
- a receiver's RTP hook (`RTCRtpReceiver._handle_rtp_packet`): packets go to the forwarder, not a decoder;
- a receiver's RTCP hook (`RTCRtpReceiver._handle_rtcp_packet`): the publisher's sender reports;
- a sender's RTCP hook (`RTCRtpSender._handle_rtcp_packet`): NACK, PLI/FIR, REMB and receiver reports from the
  subscriber; its own report loop (`RTCRtpSender._send_rtcp`) is silenced (it would report zero packets);
- the DTLS transport's `_send_rtp`, which protects (SRTP) and sends one RTP or RTCP packet; for forwarded RTP
  a shortcut does the same synchronously (`_tx_srtp`, the ICE transport's `_connection`, aioice's `_nominated`
  pair and its protocol's datagram transport).
It also reads a sender's SSRCs (`_ssrc`, `_rtx_ssrc`) and a transceiver's negotiated codecs and header
extensions (`_codecs`, `_headerExtensions`), and adds a publisher's RTX SSRC to the DTLS transport's RTP
router (`_rtp_router.ssrc_table`). tests/rtc/test_aiortc_glue.py checks each of these against the
installed aiortc, so an upgrade that moves one fails there, loudly, instead of silently dropping media.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from aioice.ice import StunProtocol
from aiortc import RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

AIORTC_VERSION = "1.16.0"

RtpHook = Callable[[RtpPacket, int], Awaitable[None]]
RtcpHook = Callable[[Any], Awaitable[None]]

# (class, attribute, parameter names) the seams rely on; checked by the glue tests.
SEAMS: tuple[tuple[type, str, tuple[str, ...]], ...] = (
    (RTCRtpReceiver, "_handle_rtp_packet", ("self", "packet", "arrival_time_ms")),
    (RTCRtpReceiver, "_handle_rtcp_packet", ("self", "packet")),
    (RTCRtpSender, "_handle_rtcp_packet", ("self", "packet")),
    (RTCRtpSender, "_send_rtcp", ("self", "packets")),
    (RTCDtlsTransport, "_send_rtp", ("self", "data")),
)


def check_seams() -> list[str]:
    """What no longer matches in the installed aiortc (empty when every seam is where we expect it)."""
    problems = []
    for cls, name, params in SEAMS:
        method = getattr(cls, name, None)
        if method is None or not inspect.iscoroutinefunction(method):
            problems.append(f"{cls.__name__}.{name} is missing or no longer a coroutine")
            continue
        found = tuple(inspect.signature(method).parameters)
        if found != params:
            problems.append(f"{cls.__name__}.{name}{found} != {params}")
    return problems


def hook_receiver(receiver: RTCRtpReceiver, on_rtp: RtpHook, on_rtcp: RtcpHook) -> None:
    """Route a receiver's packets to the forwarder; nothing reaches aiortc's jitter buffer or decoder."""
    original_rtcp = receiver._handle_rtcp_packet

    async def rtcp(packet: Any) -> None:
        await on_rtcp(packet)
        await original_rtcp(packet)

    receiver._handle_rtp_packet = on_rtp  # type: ignore[method-assign,assignment]
    receiver._handle_rtcp_packet = rtcp  # type: ignore[method-assign,assignment]


def hook_sender(sender: RTCRtpSender, on_rtcp: RtcpHook) -> None:
    """Take a sender's incoming RTCP, and silence its own reports (the SFU writes correct ones)."""

    async def silent(packets: list[Any]) -> None:
        return None

    sender._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign,assignment]
    sender._send_rtcp = silent  # type: ignore[method-assign]


def route_ssrc(receiver: RTCRtpReceiver, ssrc: int) -> None:
    """Deliver packets of `ssrc` (a publisher's RTX stream) to this receiver.

    aiortc registers only the primary SSRC, and drops RTX packets whose payload type several receivers share.
    """
    receiver.transport._rtp_router.ssrc_table[ssrc] = receiver


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """(media SSRC, RTX SSRC) the sender announced in the SDP."""
    return sender._ssrc, sender._rtx_ssrc


def negotiated(transceiver: RTCRtpTransceiver) -> tuple[list[Any], list[Any]]:
    """(codecs, header extensions) agreed for a transceiver; the primary codec first, RTX entries included."""
    return list(transceiver._codecs), list(transceiver._headerExtensions)


def send_rtp(transport: RTCDtlsTransport, data: bytes) -> Awaitable[None]:
    """Protect (SRTP/SRTCP) and send one packet; ConnectionError when not connected."""
    return transport._send_rtp(data)


def fast_rtp_sender(transport: Any) -> Callable[[bytes], None] | None:
    """A synchronous RTP send for a connected transport: SRTP-protect, then `sendto` on the nominated pair.

    It is what `RTCDtlsTransport._send_rtp` and aioice's `Connection.send` do, minus four coroutine layers per
    packet; None when the transport is not a connected plain-UDP pair (e.g. TURN), where `send_rtp` applies.
    """
    try:
        if transport.state != "connected":
            return None
        srtp = transport._tx_srtp
        pair = transport.transport._connection._nominated.get(1)
    except AttributeError:
        return None
    if srtp is None or pair is None or type(pair.protocol) is not StunProtocol:
        return None
    udp, address, protect = pair.protocol.transport, pair.remote_addr, srtp.protect

    def send(data: bytes) -> None:
        udp.sendto(protect(data), address)

    return send


def primary_and_rtx(codecs: list[Any]) -> tuple[Any | None, int | None]:
    """The negotiated primary codec and the RTX payload type bound to it (RFC 4588 apt), if any."""
    primary = next((c for c in codecs if not is_rtx(c)), None)
    if primary is None:
        return None, None
    rtx = next(
        (c.payloadType for c in codecs if is_rtx(c) and c.parameters.get("apt") == primary.payloadType), None
    )
    return primary, rtx


class SilentTrack(MediaStreamTrack):
    """The track behind a forwarding sender: aiortc's own send loop waits on it forever and never encodes."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[None] | None = None

    async def recv(self) -> Any:
        self._never = asyncio.get_running_loop().create_future()
        await self._never
        raise asyncio.CancelledError  # pragma: no cover - the future is never resolved
