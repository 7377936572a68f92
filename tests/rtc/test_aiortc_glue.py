"""aiortc's internals are still where rtc/aiortc_glue.py expects them (fails loudly on an upgrade)."""

from __future__ import annotations

import importlib.metadata

from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from rtc import aiortc_glue as glue


def test_the_pinned_aiortc_is_installed():
    assert importlib.metadata.version("aiortc") == glue.AIORTC_VERSION, (
        "re-check every seam in rtc/aiortc_glue.py"
    )


def test_every_private_seam_exists_with_the_expected_signature():
    assert glue.check_seams() == []


async def test_hooks_replace_the_receive_path_and_silence_sender_reports():
    pc = RTCPeerConnection()
    try:
        receiver_side = pc.addTransceiver("video", direction="recvonly")
        sender_side = pc.addTransceiver(glue.SilentTrack("video"), direction="sendonly")
        got: list[object] = []

        async def on_rtp(packet, arrival_time_ms):
            got.append(packet)

        async def on_rtcp(packet):
            got.append(("rtcp", packet))

        glue.hook_receiver(receiver_side.receiver, on_rtp, on_rtcp)
        glue.hook_sender(sender_side.sender, on_rtcp)
        await receiver_side.receiver._handle_rtp_packet(RtpPacket(payload_type=97), arrival_time_ms=0)
        await sender_side.sender._handle_rtcp_packet("nack")
        assert len(got) == 2 and got[1] == ("rtcp", "nack")
        assert await sender_side.sender._send_rtcp([]) is None  # silenced: no report with zero counters
        ssrc, rtx = glue.sender_ssrcs(sender_side.sender)
        assert isinstance(ssrc, int) and isinstance(rtx, int) and ssrc != rtx
        await pc.setLocalDescription(await pc.createOffer())
        codecs, extensions = glue.negotiated(sender_side)
        primary, rtx_pt = glue.primary_and_rtx(codecs)
        assert primary is not None and rtx_pt is not None
        assert {e.uri for e in extensions} >= {"urn:ietf:params:rtp-hdrext:sdes:mid"}
        transport = sender_side.sender.transport
        assert callable(getattr(transport, "_send_rtp", None))
        glue.route_ssrc(receiver_side.receiver, 4242)
        assert receiver_side.receiver.transport._rtp_router.ssrc_table[4242] is receiver_side.receiver
    finally:
        await pc.close()


def test_header_extension_parsing_gives_audio_level_as_a_pair():
    """The forwarder reads `extensions.audio_level` as (voice activity, level in -dBov)."""
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters

    ext_map = HeaderExtensionsMap()
    ext_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(id=2, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            ]
        )
    )
    packet = RtpPacket(payload_type=111, sequence_number=1, timestamp=2, ssrc=3, payload=b"x")
    packet.extensions.mid = "0"
    packet.extensions.audio_level = (True, 30)
    parsed = RtpPacket.parse(packet.serialize(ext_map), ext_map)
    assert parsed.extensions.audio_level == (True, 30)
    assert parsed.extensions.mid == "0"
    assert RTCRtpSender.getCapabilities("video") is not None


def test_the_fast_send_path_still_matches_aioice_and_aiortc():
    """fast_rtp_sender copies what these do; if their bodies change, re-check it."""
    import inspect

    from aioice.ice import CandidatePair, Connection, StunProtocol
    from aiortc import RTCDtlsTransport

    assert "self.transport.sendto(data, addr)" in inspect.getsource(StunProtocol.send_data)
    send = inspect.getsource(Connection.send) + inspect.getsource(Connection.sendto)
    assert "self._nominated.get(component)" in send
    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in send
    assert "data = self._tx_srtp.protect(data)" in inspect.getsource(RTCDtlsTransport._send_rtp)
    assert isinstance(inspect.getattr_static(CandidatePair, "remote_addr"), property)
    assert "self._nominated: dict[int, CandidatePair] = {}" in inspect.getsource(Connection.__init__)


async def test_fast_send_declines_what_it_cannot_shortcut():
    class NotConnected:
        state = "connecting"

    class Odd:
        state = "connected"

    assert glue.fast_rtp_sender(NotConnected()) is None
    assert glue.fast_rtp_sender(Odd()) is None
