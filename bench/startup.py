"""Start-up time to /health/ready and idle memory of the server, against a bare Litestar app.

The baseline is a one-route Litestar app under the same uvicorn, started the same way in the same run,
so the ratio says what Telework Hub adds (migrations, seeding, templates, stores) on this machine today.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE_APP = """
from litestar import Litestar, get

@get("/health/ready")
async def ready() -> dict:
    return {"status": "ok"}

app = Litestar([ready])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _run(cmd: list[str], env: dict[str, str], port: int) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = start + 180
        while time.perf_counter() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        else:
            raise RuntimeError(f"{cmd} never became ready")
        ready = time.perf_counter() - start
        time.sleep(2.0)  # idle
        return ready, _rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def main(rounds: int = 3) -> None:
    hub, base, hub_rss, base_rss, fresh = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "baseline_app.py").write_text(BASELINE_APP)
        for i in range(rounds):
            port = _free_port()
            env = {**os.environ, "PYTHONPATH": tmp, "PORT": str(port), "HOST": "127.0.0.1"}
            t, rss = _run(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "baseline_app:app",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                env,
                port,
            )
            base.append(t)
            base_rss.append(rss)
            var = Path(tmp) / f"var{i}"
            port = _free_port()
            env = {
                **os.environ,
                "VAR_DIR": str(var),
                "PORT": str(port),
                "HOST": "127.0.0.1",
                "APP_ENV": "dev",
            }
            env.pop("DATABASE_URL", None)
            env.pop("REDIS_URL", None)
            t, rss = _run([sys.executable, "-m", "app", "serve"], env, port)
            fresh.append(t)  # empty var/: migrate + seed
            port = _free_port()
            env["PORT"] = str(port)
            t, rss = _run([sys.executable, "-m", "app", "serve"], env, port)
            hub.append(t)  # existing database: no seeding
            hub_rss.append(rss)
    med = statistics.median
    print(f"startup to /health/ready (median of {rounds})")
    print(f"  baseline bare Litestar        {med(base):6.2f} s   idle RSS {med(base_rss) / 1024:6.1f} MiB")
    print(f"  telework hub, fresh database  {med(fresh):6.2f} s   ratio {med(fresh) / med(base):5.2f}x")
    print(
        f"  telework hub, existing db     {med(hub):6.2f} s   ratio {med(hub) / med(base):5.2f}x"
        f"   idle RSS {med(hub_rss) / 1024:6.1f} MiB  ratio {med(hub_rss) / med(base_rss):5.2f}x"
    )


if __name__ == "__main__":
    main()
