"""What the Status page shows about the box: uptime, CPU load, SoC temperature, version."""

from __future__ import annotations

import os
import time
from importlib import metadata
from pathlib import Path
from typing import Any

THERMAL = Path("/sys/class/thermal")


def version() -> str:
    try:
        return metadata.version("hookflash")
    except metadata.PackageNotFoundError:
        return "unknown"


def temperature_c(root: Path = THERMAL) -> float | None:
    """The first thermal zone's temperature (the SoC on a Pi), or None where there is none."""
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            return int((zone / "temp").read_text().strip()) / 1000.0  # millidegrees Celsius
        except (OSError, ValueError):
            continue
    return None


def system_uptime(path: Path = Path("/proc/uptime")) -> float | None:
    """Seconds since the machine booted (Linux), or None."""
    try:
        return float(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def system_info(started: float) -> dict[str, Any]:
    """`uptime_s` counts since the gateway (re)started, `system_uptime_s` since the machine booted."""
    load = os.getloadavg()
    return {"version": version(), "uptime_s": round(time.time() - started, 1),
            "system_uptime_s": system_uptime(),
            "load": [round(x, 2) for x in load], "cpus": os.cpu_count() or 1,
            "temperature_c": temperature_c()}
