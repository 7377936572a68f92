"""A real Telework Hub server in a subprocess (`python -m app serve`), for the browser and API-fuzz tiers.

Always SQLite in its own temporary directory with memory stores, even when DATABASE_URL / REDIS_URL point
the rest of the suite at PostgreSQL / Redis: these tiers must never touch the shared test database.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Variables of the developer's or CI's environment that must not leak into the throwaway server.
_DROP = (
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "BASE_URL",
    "VAR_DIR",
    "APP_ENV",
    "HOST",
    "PORT",
    "SEED_DEMO",
    "MIGRATE_ON_START",
    "DEFAULT_LOCALE",
    "OIDC_ISSUER",
    "SMTP_HOST",
)


@dataclass(frozen=True)
class LiveServer:
    url: str
    var_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None  # for tests that kill a worker

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health/ready", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def live_server(
    var_dir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    timeout: float = 60.0,
    name: str = "server",
    loopback_ice: bool = False,
) -> Iterator[LiveServer]:
    """Start the server with the demo organisation seeded, wait for /health/ready, stop it afterwards.

    ``name`` names its log (several servers may share one ``var_dir``); ``loopback_ice`` makes its media
    offer 127.0.0.1 only (the RTC tests' loopback rule, see ``serve_loopback``).
    """
    var_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.update(
        APP_ENV="dev",
        VAR_DIR=str(var_dir),
        DATABASE_URL=f"sqlite+aiosqlite:///{var_dir}/e2e.db",
        HOST="127.0.0.1",
        PORT=str(port),
        SEED_DEMO="1",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_KIB="8192",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    log = var_dir / f"{name}.log"
    command = ["-m", "tests.live_server", "serve-loopback"] if loopback_ice else ["-m", "app", "serve"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        server = LiveServer(url=f"http://127.0.0.1:{port}", var_dir=var_dir, log=log, process=proc)
        try:
            deadline = time.monotonic() + timeout
            while not _ready(server.url):
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not ready after {timeout:.0f}s:\n{server.log_tail()}")
                time.sleep(0.1)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def serve_loopback() -> None:
    """`python -m app serve` whose ICE offers 127.0.0.1 only (as tests/rtc/conftest.py does in-process)."""
    import aioice.ice

    from app.__main__ import main

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    main(["serve"])


if __name__ == "__main__" and sys.argv[1:] == ["serve-loopback"]:
    serve_loopback()
