"""The `hookflash` command line.

`hookflash run --config FILE` runs the gateway until SIGINT/SIGTERM (`--console`: drive the
simulator's phones from stdin, see firmware/console.py).
`hookflash config check FILE` validates a config file and lists every problem in it.
`hookflash dsp ...` runs the signal blocks on WAV files, so a user (or a script) can check a
recording of a line: which digits were pressed, what caller ID was sent, what a country's tone
sounds like. Errors are one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dsp.wav import RATE, WavError, read_wav, write_wav

if TYPE_CHECKING:
    from firmware.config import Config


class UsageError(Exception):
    """A bad argument or input file; printed as one line, exit code 2."""


def _dtmf_decode(args: argparse.Namespace) -> int:
    from dsp.dtmf import detect_dtmf

    for digit, start, end in detect_dtmf(read_wav(args.file), sample_rate=RATE):
        print(f"{digit} {start:.3f} {end:.3f}")
    return 0


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _callerid_decode(args: argparse.Namespace) -> int:
    from dsp.callerid import decode_callerid, decode_dtmf_callerid

    audio = read_wav(args.file)
    result = decode_callerid(audio, sample_rate=RATE) or decode_dtmf_callerid(audio, sample_rate=RATE)
    if result is None:
        print(f"hookflash: {args.file}: no caller ID found", file=sys.stderr)
        return 1
    fields = {k: _jsonable(v) for k, v in dataclasses.asdict(result).items()}
    fields["valid"] = result.valid
    print(json.dumps(fields, indent=2))
    return 0


def _tone(args: argparse.Namespace) -> int:
    from dsp.tones import generate_tone

    country, sep, name = args.spec.partition(":")
    if not sep or not country or not name:
        raise UsageError(f"tone must be COUNTRY:TONE, e.g. US:dial (got {args.spec!r})")
    if not 0 < args.seconds <= 3600:
        raise UsageError("--seconds must be between 0 and 3600")
    try:
        samples = generate_tone(country, name, args.seconds, sample_rate=RATE)
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc).strip("'\"")) from exc
    try:
        write_wav(args.output, samples)
    except OSError as exc:
        raise UsageError(f"{args.output}: {exc.strerror or exc}") from exc
    return 0


def _load_config(path: Path) -> Config | None:
    """The configuration in `path`, or None after printing one line per problem (all of them)."""
    from firmware.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for error in exc.errors:
            print(f"{path}: {error}", file=sys.stderr)
        return None


def _config_check(args: argparse.Namespace) -> int:
    cfg = _load_config(args.file)
    if cfg is None:
        return 2
    print(f"{args.file}: OK ({len(cfg.ports)} ports, backend {cfg.hardware.backend}, "
          f"registrar {cfg.sip.registrar or 'none'})")
    return 0


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    cfg = _load_config(args.config)
    if cfg is None:
        return 2
    logging.basicConfig(level=cfg.system.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = args.console if args.console is not None else (
        cfg.hardware.backend == "sim" and sys.stdin.isatty())
    if console and cfg.hardware.backend != "sim":
        raise UsageError("--console drives simulated phones: it needs hardware.backend = \"sim\"")
    from firmware.app import serve

    def ready(gateway: object) -> None:
        web = f"; web page at {cfg.web.url}" if cfg.web.enabled else ""
        print(f"hookflash: ready ({cfg.hardware.backend} backend, {len(cfg.ports)} ports, "
              f"{'intercom only' if cfg.intercom_only else 'registrar ' + cfg.sip.registrar}){web}; "
              "Ctrl-C stops", flush=True)

    from hal.board import HardwareError

    try:
        asyncio.run(serve(cfg, config_path=args.config, ready=ready, console=console))
    except (HardwareError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookflash", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("run", help="run the gateway until SIGINT/SIGTERM")
    p.add_argument("--config", type=Path, required=True, help="the TOML config file")
    p.add_argument("--console", action=argparse.BooleanOptionalAction, default=None,
                   help="drive the simulator's phones from stdin (default: on for sim on a terminal)")
    p.set_defaults(func=_run)
    config = commands.add_parser("config", help="configuration file tools").add_subparsers(
        dest="tool", required=True)
    p = config.add_parser("check", help="validate a config file, listing every error")
    p.add_argument("file", type=Path)
    p.set_defaults(func=_config_check)
    dsp = commands.add_parser("dsp", help="signal tools on WAV files").add_subparsers(
        dest="tool", required=True)
    p = dsp.add_parser("dtmf-decode", help="print 'digit start_s end_s' for each key press")
    p.add_argument("file", type=Path)
    p.set_defaults(func=_dtmf_decode)
    p = dsp.add_parser("callerid-decode", help="print the caller-ID fields as JSON")
    p.add_argument("file", type=Path)
    p.set_defaults(func=_callerid_decode)
    p = dsp.add_parser("tone", help="write a country's call-progress tone to a WAV file")
    p.add_argument("spec", metavar="COUNTRY:TONE", help="e.g. US:dial, UK:busy, DE:ringback")
    p.add_argument("--seconds", type=float, default=5.0, help="length (default 5)")
    p.add_argument("-o", "--output", type=Path, required=True, help="WAV file to write")
    p.set_defaults(func=_tone)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (WavError, UsageError) as exc:
        print(f"hookflash: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
