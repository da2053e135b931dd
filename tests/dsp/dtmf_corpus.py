"""Talk-off corpus: real speech and music from Debian packages, as 8 kHz int16.

Speech: codec2-examples (recorded human speech, 8 kHz raw, several speakers, clean and HF-radio),
alsa-utils (recorded speech, /usr/share/sounds/alsa) and espeak-ng (synthesised speech in several
voices and languages). Music: warzone2100-music (recorded soundtrack albums, Opus) decoded by
opus-tools' opusdec. A missing package raises CorpusError naming it: CI installs them, so a talk-off
test must fail, never skip. Decoded audio is cached under /tmp only.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.io import wavfile
from scipy.signal import resample_poly

RATE = 8000
CACHE = Path("/tmp/hookflash-dtmf-corpus")
SPEECH_PACKAGES = ("codec2-examples", "alsa-utils", "espeak-ng")
MUSIC_PACKAGES = ("warzone2100-music", "opus-tools")
CODEC2_RAW = Path("/usr/share/codec2/raw")
CODEC2_SPEECH = ("hts.raw", "hts1.raw", "hts2.raw", "mmt1.raw", "morig.raw", "forig.raw", "big_dog.raw",
                 "kristoff.raw", "cq_ref.raw", "g3plx.raw", "vk5qi.raw", "ve9qrp.raw", "cross.raw")
"""Human speech only (the directory also holds sine sweeps and modem test frames)."""
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
MUSIC_DIR = Path("/usr/share/games/warzone2100/music")
ESPEAK_VOICES = ("en+m3", "en-us+f2", "en+f4", "de+m1", "fr+f3", "es+m2", "it+f1", "nl+m4", "ru+m5")
ESPEAK_TEXT = {
    "en": "The quick brown fox jumps over the lazy dog. Please call me back at home this evening, "
          "my number has not changed. Seven, eight, nine, zero, hash and star are on the keypad.",
    "de": "Guten Morgen, hier spricht der automatische Anrufbeantworter. Bitte hinterlassen Sie "
          "eine Nachricht nach dem Signalton, wir rufen so bald wie moeglich zurueck.",
    "fr": "Bonjour, vous etes bien sur la messagerie vocale. Laissez un message apres le bip sonore, "
          "nous vous rappellerons des que possible. Merci et bonne journee.",
    "es": "Hola, gracias por llamar. En este momento no podemos atenderle, por favor deje su mensaje "
          "despues de la senal y le devolveremos la llamada.",
    "it": "Buongiorno, risponde la segreteria telefonica. Lasciate un messaggio dopo il segnale "
          "acustico, sarete richiamati al piu presto. Grazie e arrivederci.",
    "nl": "Goedemiddag, u spreekt met het antwoordapparaat. Spreek na de toon een bericht in en wij "
          "bellen u zo snel mogelijk terug.",
    "ru": "Здравствуйте, вы позвонили в службу поддержки. Пожалуйста, оставьте сообщение после "
          "звукового сигнала, и мы обязательно вам перезвоним.",
}

Audio = npt.NDArray[np.int16]


class CorpusError(RuntimeError):
    """A Debian package the talk-off corpus comes from is not installed."""


def _require(ok: bool, package: str, what: str) -> None:
    if not ok:
        raise CorpusError(f"talk-off corpus: {what} missing; apt-get install -y --no-install-recommends "
                          f"{package}")


def _to_8k(x: npt.NDArray[np.float64], rate: int) -> Audio:
    if x.ndim == 2:
        x = x.mean(axis=1)
    if rate != RATE:
        g = int(np.gcd(rate, RATE))
        x = resample_poly(x, RATE // g, rate // g)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def _read_wav(path: Path) -> Audio:
    rate, data = wavfile.read(path)
    x = np.asarray(data, dtype=np.float64)
    if data.dtype == np.uint8:
        x = (x - 128.0) * 256.0
    elif data.dtype == np.int32:
        x = x / 65536.0
    return _to_8k(x, int(rate))


def _cached(key: str, make: Path) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}-{make.name}"


def speech() -> list[tuple[str, Audio]]:
    """Recorded and synthesised speech clips, named by source."""
    clips: list[tuple[str, Audio]] = []
    for name in CODEC2_SPEECH:
        path = CODEC2_RAW / name
        _require(path.is_file(), "codec2-examples", str(path))
        clips.append((f"codec2/{name}", np.fromfile(path, dtype="<i2").astype(np.int16)))
    alsa = sorted(p for p in ALSA_SOUNDS.glob("*.wav") if p.name != "Noise.wav")
    _require(bool(alsa), "alsa-utils", f"{ALSA_SOUNDS}/*.wav")
    clips += [(f"alsa/{p.name}", _read_wav(p)) for p in alsa]
    espeak = shutil.which("espeak-ng")
    _require(espeak is not None, "espeak-ng", "espeak-ng")
    for voice in ESPEAK_VOICES:
        out = _cached(voice, Path(f"espeak-{voice}.wav"))
        if not out.is_file():
            text = ESPEAK_TEXT[voice.split("+")[0].split("-")[0]]
            subprocess.run([str(espeak), "-v", voice, "-w", str(out), text], check=True, capture_output=True)
        clips.append((f"espeak-ng/{voice}", _read_wav(out)))
    return clips


def music(tracks: int) -> list[tuple[str, Audio]]:
    """The first `tracks` soundtrack pieces (sorted by path), mono 8 kHz."""
    files = sorted(MUSIC_DIR.rglob("*.opus")) if MUSIC_DIR.is_dir() else []
    _require(len(files) >= tracks, "warzone2100-music", f"{tracks} Opus tracks under {MUSIC_DIR}")
    opusdec = shutil.which("opusdec")
    _require(opusdec is not None, "opus-tools", "opusdec")
    clips = []
    for path in files[:tracks]:
        out = _cached(str(path), path.with_suffix(".npy"))
        if not out.is_file():
            wav = out.with_suffix(".wav")
            subprocess.run([str(opusdec), "--quiet", "--rate", str(RATE), "--force-wav", str(path), str(wav)],
                           check=True, capture_output=True)
            np.save(out, _read_wav(wav))
            wav.unlink()
        clips.append((f"warzone2100-music/{path.name}", np.load(out)))
    return clips


def hours(clips: list[tuple[str, Audio]]) -> float:
    """Total duration of `clips` in hours."""
    return sum(c.size for _, c in clips) / RATE / 3600.0


NOISE_DIGITS = 160
NOISE_LEVEL_DBM0 = -10.0
"""Per-tone level of the noise trial; SNR is the two tones' power over the white noise's (0-4 kHz)."""


def noise_trial(snr_db: float, seed: int = 1) -> tuple[str, Audio]:
    """NOISE_DIGITS random digits (50 ms tone, 50 ms pause) in white Gaussian noise at `snr_db`.

    Seeded, so every run and every detector sees the same audio.
    """
    from dsp.dtmf import DIGITS, generate_dtmf
    from dsp.level import dbm0_to_rms

    rng = np.random.default_rng(seed)
    digits = "".join(rng.choice(list(DIGITS), NOISE_DIGITS))
    clean = generate_dtmf(digits, on_ms=50, off_ms=50, level_dbm0=NOISE_LEVEL_DBM0).astype(np.float64)
    signal_dbm0 = NOISE_LEVEL_DBM0 + 10.0 * np.log10(2.0)
    noise = np.random.default_rng([seed, int(snr_db * 10)]).standard_normal(clean.size)
    noisy = clean + noise * dbm0_to_rms(signal_dbm0 - snr_db)
    return digits, np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)


def digit_errors(sent: str, got: str) -> int:
    """Missed + extra + wrong digits: the edit (Levenshtein) distance between the two strings."""
    row = list(range(len(got) + 1))
    for i, a in enumerate(sent, 1):
        prev, row[0] = row[:], i
        for j, b in enumerate(got, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a != b))
    return row[-1]
