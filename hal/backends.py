"""Building the configured board: one entry point, so the gateway names a backend and gets a Board.

Every backend fails with a `HardwareError` that says what is missing (module, device, chip) rather
than a traceback; `sim` needs nothing and is the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dsp.tones import country as country_info
from hal.board import Board
from hal.hook import HookTiming

BACKENDS = ("sim", "ag1171", "ks0835f", "serial", "proslic")


@dataclass(frozen=True)
class BoardConfig:
    """What the config file says about the hardware (fields a backend does not use are ignored)."""

    backend: str = "sim"
    ports: int = 2
    country: str = "US"
    """Sets the ring frequency (20 Hz US, 25 Hz most of Europe...)."""
    timing: HookTiming = field(default_factory=HookTiming)
    alsa_capture: str = "default"
    alsa_playback: str = "default"
    gpio_pins: tuple[tuple[int, int, int], ...] = ((17, 27, 22), (23, 24, 25))
    """(RM, F/R, SHK) BCM pins per port for ag1171/ks0835f (docs/hardware.md)."""
    serial_device: str = "/dev/ttyACM0"
    serial_baudrate: int = 115200
    spi_bus: int = 0
    spi_chip_selects: tuple[int, ...] = (0, 1)
    proslic_reset_pin: int | None = None
    sim_realtime: bool = True
    """Pace the simulator by the wall clock (False only in tests, which run in virtual time)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown hardware backend {self.backend!r}; "
                             f"choose one of {', '.join(BACKENDS)}")
        if not 1 <= self.ports <= 64:
            raise ValueError(f"ports must be 1..64, not {self.ports}")
        if self.backend in ("ag1171", "ks0835f") and len(self.gpio_pins) < self.ports:
            raise ValueError(f"{self.ports} ports need {self.ports} gpio_pins entries, "
                             f"got {len(self.gpio_pins)}")
        country_info(self.country)  # KeyError listing the known countries


def open_board(cfg: BoardConfig) -> Board:
    """The Board for `cfg`, its hardware initialised; raises HardwareError with what is missing."""
    ring_hz = country_info(cfg.country).ring_frequency_hz
    if cfg.backend == "sim":
        from hal.sim import SimBoard

        return SimBoard(cfg.ports, realtime=cfg.sim_realtime, timing=cfg.timing)
    if cfg.backend == "proslic":
        from hal.proslic import ProslicBoard

        return ProslicBoard(cfg.spi_bus, cfg.spi_chip_selects[:cfg.ports], cfg.proslic_reset_pin,
                            country=cfg.country, alsa_device=cfg.alsa_capture)
    from hal.alsa import AlsaAudio

    audio = AlsaAudio(cfg.alsa_capture, cfg.alsa_playback, channels=cfg.ports)
    try:
        if cfg.backend == "serial":
            from hal.serial_mcu import SerialMcuBoard

            return SerialMcuBoard(cfg.serial_device, cfg.ports, audio, baudrate=cfg.serial_baudrate,
                                  ring_hz=ring_hz, timing=cfg.timing)
        from hal.ag1171 import PROFILES, Ag1171Board, PortPins

        pins = [PortPins(rm, fr, shk) for rm, fr, shk in cfg.gpio_pins[:cfg.ports]]
        return Ag1171Board(audio, pins, PROFILES[cfg.backend], ring_hz=ring_hz, timing=cfg.timing)
    except BaseException:
        audio.close()
        raise
