"""Run the benchmarks: `make bench` or `python -m bench` runs them all; `python -m bench telework` one.

Arguments after a benchmark's name go to it, e.g. `python -m bench telework --rounds 100`.
"""

import sys
from collections.abc import Callable, Sequence

from bench import devices, indicator, meeting_usage, rtc, startup, telework

BENCHMARKS: dict[str, Callable[[Sequence[str]], object]] = {
    "startup": lambda _args: startup.main(),
    "telework": telework.main,
    "indicator": indicator.main,
    "devices": lambda args: devices.main(list(args)),
    "rtc": lambda args: rtc.main(list(args)),
    "meeting_usage": lambda args: meeting_usage.main(list(args)),
}

if __name__ == "__main__":
    name, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if name and name not in BENCHMARKS:
        sys.exit(f"unknown benchmark {name!r}: choose from {', '.join(BENCHMARKS)}, or none for all")
    for key, run in BENCHMARKS.items():
        if name in ("", key):
            run(rest)
