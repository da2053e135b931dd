"""System facts for the Status page."""

from __future__ import annotations

from pathlib import Path

from web.sysinfo import system_info, system_uptime, temperature_c


def test_temperature_from_the_first_thermal_zone(tmp_path: Path) -> None:
    assert temperature_c(tmp_path) is None  # no /sys/class/thermal (a PC in a container)
    (tmp_path / "thermal_zone1").mkdir()
    (tmp_path / "thermal_zone1" / "temp").write_text("39000\n")
    (tmp_path / "thermal_zone0").mkdir()
    (tmp_path / "thermal_zone0" / "temp").write_text("48312\n")  # millidegrees, as on a Pi
    assert temperature_c(tmp_path) == 48.312


def test_system_uptime_from_proc(tmp_path: Path) -> None:
    (tmp_path / "uptime").write_text("12345.67 24000.00\n")
    assert system_uptime(tmp_path / "uptime") == 12345.67
    assert system_uptime(tmp_path / "missing") is None


def test_system_info_fields() -> None:
    info = system_info(started=0.0)
    assert info["uptime_s"] > 0 and len(info["load"]) == 3 and info["cpus"] >= 1 and info["version"]
