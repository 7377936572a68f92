"""Meeting media: our pass-through SFU against aiortc's stock MediaRelay, measured in the same run.

    .venv/bin/python -m bench.rtc     # defaults: 100 SFU viewers, 8 MediaRelay viewers, a meeting of 8
    .venv/bin/python -m bench.rtc --viewers 150 --relay-viewers 10 --seconds 15

One publisher sends pre-encoded VP8 (640x360, 30 fps, ~600 kbps; encoded once up front with PyAV, then only
packetized), N light viewers count packets instead of decoding (aiortc's full receive path would saturate the
load generator first). The server runs in its own process, so its CPU time is what we divide:
- µs of server CPU per forwarded packet,
- viewers per core: viewers at full frame rate (≥ 90 % of what the publisher sent), ≤ 0.5 % loss, divided by
  the share of one core the server used,
and the same for a stock server where MediaRelay hands decoded frames to every viewer and each viewer's sender
encodes again. Then a meeting of 8 where everyone publishes and sees the other 7, on the SFU.
Everything runs on loopback (ICE host candidates are pinned to 127.0.0.1). aiortc is used here as the tool
under test and as the load generator; the app itself imports it only in `rtc/`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FPS = 30
WIDTH, HEIGHT = 640, 360
BITRATE = 600_000


def loopback_only() -> None:
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- pre-encoded VP8 ---------------------------------------------------------------------------------------
def encode_clip(frames: int = 300) -> list[tuple[bytes, bool]]:
    """A 10 s clip: a moving gradient with a noisy block, VP8 at ~600 kbps, a key frame every second."""
    import av

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.bit_rate = BITRATE
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.time_base = fractions.Fraction(1, FPS)
    codec.gop_size = FPS
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    out: list[tuple[bytes, bool]] = []
    for i in range(frames):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        row = bytes((x + 4 * i) & 0xFF for x in range(WIDTH))
        rows = []
        top = (i * 3) % (HEIGHT - 64)
        left = (i * 5) % (WIDTH - 64)
        for y in range(HEIGHT):
            if top <= y < top + 64:
                rows.append(row[:left] + os.urandom(64) + row[left + 64 :])
            else:
                rows.append(row)
        frame.planes[0].update(b"".join(rows))
        frame.planes[1].update(bytes([128]) * frame.planes[1].buffer_size)
        frame.planes[2].update(bytes([(i * 2) & 0xFF]) * frame.planes[2].buffer_size)
        frame.pts = i
        for packet in codec.encode(frame):
            out.append((bytes(packet), bool(packet.is_keyframe)))
    for packet in codec.encode(None):
        out.append((bytes(packet), bool(packet.is_keyframe)))
    return out


def clip_path() -> Path:
    path = Path(tempfile.gettempdir()) / f"telework-bench-vp8-{WIDTH}x{HEIGHT}-{BITRATE}.json"
    if not path.exists():
        clip = encode_clip()
        path.write_text(json.dumps([[data.hex(), key] for data, key in clip]))
    return path


def load_clip(path: str) -> list[tuple[bytes, bool]]:
    return [(bytes.fromhex(h), k) for h, k in json.loads(Path(path).read_text())]


def make_publisher_track(clip: list[tuple[bytes, bool]]) -> Any:
    import av
    from aiortc.mediastreams import MediaStreamTrack

    class PreEncoded(MediaStreamTrack):
        """Hands aiortc encoded VP8 packets at 30 fps; its sender only packetizes them (no encoder)."""

        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.index = 0
            self.start: float | None = None

        async def recv(self) -> Any:
            if self.start is None:
                self.start = time.monotonic()
            due = self.start + self.index / FPS
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            data, _ = clip[self.index % len(clip)]
            packet = av.Packet(data)
            packet.pts = self.index * 3000
            packet.time_base = fractions.Fraction(1, 90000)
            self.index += 1
            return packet

    return PreEncoded()


# ---- signalling between bench processes: JSON lines on a Unix socket ------------------------------------
async def write(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()


async def serve(mode: str, path: str) -> None:
    """The server under test: our SFU, or aiortc's MediaRelay with one encode per viewer."""
    loopback_only()
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    from rtc.sfu import Sfu, _prefer

    sfu = Sfu(max_streams=10**6, max_participants=10**4, video_cap_bps=2_000_000)
    room = sfu.room("bench")
    relay = MediaRelay()
    published: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    relay_pcs: list[Any] = []
    count = 0

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        pid = f"p{count}"

        async def send(message: dict[str, Any]) -> None:
            await write(writer, message)

        participant = None
        pc = None
        async for line in reader:
            message = json.loads(line)
            kind = message["type"]
            if kind == "join" and mode == "sfu":
                participant = await room.join(pid, send)
                sfu.spawn(participant.negotiate)
            elif kind == "join":
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                relay_pcs.append(pc)
                if message.get("publish"):
                    transceiver = pc.addTransceiver("video", direction="recvonly")

                    @pc.on("track")
                    def on_track(track: Any) -> None:
                        if not published.done():
                            published.set_result(track)

                else:
                    transceiver = pc.addTransceiver(relay.subscribe(await published), direction="sendonly")
                _prefer(transceiver, "video")
                await pc.setLocalDescription(await pc.createOffer())
                await send({"type": "offer", "sdp": pc.localDescription.sdp, "tracks": {}})
            elif kind == "answer" and participant is not None:
                participant.answer(message["sdp"])
            elif kind == "answer" and pc is not None:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="answer"))

    async def sent_packets() -> int:
        if mode == "sfu":
            return sfu.forwarded_packets
        total = 0
        for pc in relay_pcs:
            for sender in pc.getSenders():
                if sender.track is not None:
                    for stat in (await sender.getStats()).values():
                        if stat.type == "outbound-rtp":
                            total += stat.packetsSent
        return total

    server = await asyncio.start_unix_server(client, path=path, limit=1 << 22)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    async for _ in stdin:
        print(
            json.dumps({"cpu": cpu_seconds(), "wall": time.monotonic(), "packets": await sent_packets()}),
            flush=True,
        )
    server.close()
    await sfu.close()
    for pc in relay_pcs:
        await pc.close()


async def clients(mode: str, path: str, viewers: int, publish: bool, clip_file: str | None) -> None:
    """Light participants: publish pre-encoded VP8 (optional) and count what arrives, without decoding."""
    # Our SFU offers its three publishing m-lines first (audio, video, screen); the stock server one m-line.
    publish_mids = {"0", "1", "2"} if mode == "sfu" else ({"0"} if publish else set())
    video_mid = "1" if mode == "sfu" else "0"
    loopback_only()
    from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from rtc import aiortc_glue as glue

    clip = load_clip(clip_file) if clip_file else []
    counters: list[dict[str, Any]] = []
    peers: list[Any] = []
    tracks: list[Any] = []

    def counting(counter: dict[str, Any]) -> Any:
        async def on_rtp(packet: Any, arrival_time_ms: int) -> None:
            if packet.payload_type >= 96 and packet.payload and len(packet.payload) > 0:
                ssrc = packet.ssrc
                stream = counter["streams"].setdefault(
                    ssrc, {"packets": 0, "frames": 0, "first": None, "last": 0}
                )
                seq = packet.sequence_number
                if stream["first"] is None:
                    stream["first"] = stream["last"] = seq
                elif ((seq - stream["last"]) & 0xFFFF) < 0x8000:
                    stream["last"] = seq
                stream["packets"] += 1
                stream["frames"] += packet.marker

        return on_rtp

    async def nothing(packet: Any) -> None:
        return None

    async def participant(index: int) -> None:
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 22)
        counter: dict[str, Any] = {"streams": {}}
        counters.append(counter)
        config = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        pc = RTCPeerConnection(config)
        peers.append(pc)
        await write(writer, {"type": "join", "publish": publish})
        published = False
        async for line in reader:
            message = json.loads(line)
            if message["type"] != "offer":
                continue
            await pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="offer"))
            for transceiver in pc.getTransceivers():
                if transceiver.mid in publish_mids:
                    if publish and transceiver.mid == video_mid:
                        transceiver.direction = "sendonly"
                        if not published:
                            tracks.append(make_publisher_track(clip))
                            transceiver.sender.replaceTrack(tracks[-1])
                            published = True
                    else:
                        transceiver.direction = "inactive"
                else:
                    transceiver.direction = "recvonly"
                    glue.hook_receiver(transceiver.receiver, counting(counter), nothing)
            await pc.setLocalDescription(await pc.createAnswer())
            await write(writer, {"type": "answer", "sdp": pc.localDescription.sdp})

    tasks = [asyncio.create_task(participant(i)) for i in range(viewers)]
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    async for _ in stdin:
        snapshot = [
            {
                str(ssrc): [s["packets"], s["frames"], s["first"], s["last"]]
                for ssrc, s in c["streams"].items()
            }
            for c in counters
        ]
        sent = sum(track.index for track in tracks)
        report = {"wall": time.monotonic(), "cpu": cpu_seconds(), "viewers": snapshot, "sent": sent}
        print(json.dumps(report), flush=True)
    for task in tasks:
        task.cancel()
    for pc in peers:
        await pc.close()


# ---- orchestration -------------------------------------------------------------------------------------
def server_priority() -> None:
    """Other tenants of a shared machine must not starve the server under test (root only; both servers)."""
    with contextlib.suppress(OSError):
        os.nice(-10)


def client_priority() -> None:
    with contextlib.suppress(OSError):
        os.nice(-5)


class Child:
    def __init__(self, *args: str, server: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.rtc", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=server_priority if server else client_priority,
        )

    def ask(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def per_stream(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[int, int, int]]:
    """(packets, frames, expected packets) per received stream over the window."""
    out = []
    for b_viewer, a_viewer in zip(before["viewers"], after["viewers"], strict=False):
        for ssrc, (packets, frames, _, last) in a_viewer.items():
            b = b_viewer.get(ssrc)
            if b is None:
                out.append((0, 0, max(1, packets)))
                continue
            expected = (last - b[3]) & 0xFFFF
            out.append((packets - b[0], frames - b[1], expected))
    return out


def measure(
    mode: str, viewers: int, seconds: float, *, all_publish: bool = False, groups: int | None = None
) -> dict[str, Any]:
    """One server, a publisher and `viewers` viewers (or `viewers` people who all publish); a timed window."""
    # One load-generator process per 25 light clients: with more per event loop the clients, not the server,
    # fall behind (seen as loss and low frame rates while the server idles).
    groups = groups or max(2, -(-viewers // 25))
    path = tempfile.mktemp(prefix="th-rtc-", suffix=".sock")
    clip = str(clip_path())
    server = Child("serve", mode, path, server=True)
    children: list[Child] = []
    try:
        for _ in range(100):
            if os.path.exists(path):
                break
            time.sleep(0.1)
        if all_publish:
            split = [viewers // groups + (1 if i < viewers % groups else 0) for i in range(groups)]
            children = [Child("clients", mode, path, str(n), "publish", clip) for n in split if n]
        else:
            children.append(Child("clients", mode, path, "1", "publish", clip))
            time.sleep(2)
            split = [viewers // groups + (1 if i < viewers % groups else 0) for i in range(groups)]
            children += [Child("clients", mode, path, str(n), "view", "") for n in split if n]
        expected_streams = viewers * (viewers - 1) if all_publish else viewers
        deadline = time.monotonic() + 60 + viewers * 0.5
        while time.monotonic() < deadline:
            time.sleep(1)
            views = [v for c in children[(0 if all_publish else 1) :] for v in c.ask()["viewers"]]
            receiving = sum(1 for v in views for s in v.values() if s[0] > 0)
            if receiving >= expected_streams:
                break
        time.sleep(3)  # warm-up: key frames requested, rates settled
        watchers = children if all_publish else children[1:]
        s0, v0, p0 = server.ask(), [c.ask() for c in watchers], [c.ask() for c in children]
        time.sleep(seconds)
        s1, v1, p1 = server.ask(), [c.ask() for c in watchers], [c.ask() for c in children]
        publishers = viewers if all_publish else 1
        sent_fps = (
            sum(a["sent"] - b["sent"] for b, a in zip(p0, p1, strict=True))
            / publishers
            / (p1[0]["wall"] - p0[0]["wall"])
        )
        wall = s1["wall"] - s0["wall"]
        cpu = s1["cpu"] - s0["cpu"]
        packets = s1["packets"] - s0["packets"]
        streams = [s for b, a in zip(v0, v1, strict=True) for s in per_stream(b, a)]
        window = sum(a["wall"] - b["wall"] for b, a in zip(v0, v1, strict=True)) / len(v1)
        good = sum(
            1
            for packets_got, frames, expected in streams
            if frames / window >= 0.9 * sent_fps and expected and (expected - packets_got) / expected <= 0.005
        )
        lost = sum(max(0, e - p) for p, _, e in streams)
        expected_total = sum(e for _, _, e in streams) or 1
        return {
            "mode": mode,
            "viewers": viewers,
            "streams": len(streams),
            "expected_streams": expected_streams,
            "good_streams": good,
            "core_share": cpu / wall,
            "us_per_packet": cpu / packets * 1e6 if packets else float("nan"),
            "packets_per_second": packets / wall,
            "fps_median": sorted(f / window for _, f, _ in streams)[len(streams) // 2] if streams else 0.0,
            "loss": lost / expected_total,
            "client_core_share": sum(a["cpu"] - b["cpu"] for b, a in zip(p0, p1, strict=True)) / wall,
            "publisher_fps": sent_fps,
        }
    finally:
        for child in children:
            child.stop()
        server.stop()
        with contextlib.suppress(OSError):
            os.unlink(path)


def report(result: dict[str, Any]) -> str:
    per_core = result["good_streams"] / result["core_share"] if result["core_share"] > 0 else float("nan")
    warning = ""
    if result["publisher_fps"] < 0.9 * FPS:
        warning = (
            f"\n      (load generator busy: the publisher itself sent {result['publisher_fps']:.1f} fps; "
            f"test clients used {result['client_core_share']:.0%} of a core; 'full rate' = the publisher's)"
        )
    result["streams_per_core"] = per_core
    return (
        f"{result['mode']:>5} {result['viewers']:>4} viewers: "
        f"{result['good_streams']}/{result['expected_streams']} streams at full rate with ≤0.5 % loss "
        f"(median {result['fps_median']:.1f} fps of the publisher's {result['publisher_fps']:.1f}, "
        f"loss {result['loss']:.3%}); "
        f"server {result['core_share']:.1%} of a core, {result['us_per_packet']:.1f} µs/packet "
        f"({result['packets_per_second']:.0f} packets/s) → {per_core:.0f} full-rate streams per core; "
        f"test clients {result['client_core_share']:.0%} of a core"
        f"{warning}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rtc", description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--relay-viewers", type=int, default=8)
    parser.add_argument("--meeting", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    print(
        f"# rtc: one publisher, VP8 {WIDTH}x{HEIGHT} {FPS} fps ~{BITRATE // 1000} kbps, pre-encoded; "
        f"{os.cpu_count()} cores; server nice -10, clients -5 when allowed (load average now "
        f"{os.getloadavg()[0]:.1f})"
    )
    clip_path()
    sfu = measure("sfu", args.viewers, args.seconds)
    print(report(sfu), flush=True)
    relay = measure("relay", args.relay_viewers, args.seconds, groups=1)
    print(report(relay), flush=True)
    meeting = measure("sfu", args.meeting, args.seconds, all_publish=True)
    print(report(meeting).replace("viewers", "people, all publishing,"), flush=True)
    ratio = sfu["streams_per_core"] / relay["streams_per_core"] if relay["streams_per_core"] else float("nan")
    # On a shared machine the strict count suffers when other work starves the test clients; the CPU view
    # (viewers kept fed per core of server time) is what the server itself costs.
    cpu_ratio = (sfu["viewers"] / sfu["core_share"]) / (relay["viewers"] / relay["core_share"])
    print(
        f"By server CPU alone: SFU {sfu['viewers'] / sfu['core_share']:.0f} viewers per core, "
        f"MediaRelay {relay['viewers'] / relay['core_share']:.0f} per core: {cpu_ratio:.1f}×"
    )
    print(
        f"SFU vs MediaRelay: {ratio:.1f}× more full-rate viewers per core "
        f"({sfu['streams_per_core']:.0f} vs {relay['streams_per_core']:.0f}); "
        f"{sfu['us_per_packet']:.1f} µs of server CPU per forwarded packet (target ≤ 40); "
        f"{sfu['good_streams']} of {args.viewers} viewers of one publisher at full rate "
        f"using {sfu['core_share']:.0%} of one core (target ≥ 100 on one core)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "clients":
        asyncio.run(
            clients(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "publish", sys.argv[6] or None)
        )
    else:
        main(sys.argv[1:])
