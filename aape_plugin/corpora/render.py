"""Rendering real audio from Debian packages into clips: shared by the demo and study builders.

Notes of sampled instruments come from a SoundFont through ``fluidsynth`` (one hand-written MIDI
file per program), speech from ``espeak-ng``; every clip is written as 16 kHz mono FLAC.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import soundfile

SAMPLE_RATE = 16_000
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")

DRUM_CLASSES: dict[str, tuple[str, ...]] = {
    "kick": ("kick", "bass drum", "bassdrum", "bd"),
    "snare": ("snare", "rim"),
    "hihat": ("hat", "hh"),
    "tom": ("tom",),
    "cymbal": ("crash", "ride", "cymbal", "splash", "china"),
    "clap": ("clap",),
}
"""Drum type -> words that name it in a kit's instrument names (first match wins)."""


# ----------------------------------------------------------------------------- audio helpers


def write_flac(path: Path, wave: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), wave.astype(np.float32), SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def fit_to_clip(wave: np.ndarray, *, centre: bool, seconds: float = 1.0) -> np.ndarray:
    """Crops or zero-pads to exactly ``seconds`` (centred, or from the start)."""
    n = int(SAMPLE_RATE * seconds)
    if len(wave) >= n:
        start = (len(wave) - n) // 2 if centre else 0
        return wave[start : start + n]
    pad = n - len(wave)
    left = pad // 2 if centre else 0
    return np.pad(wave, (left, pad - left))


def peak_normalise(wave: np.ndarray, peak: float = 0.7) -> np.ndarray:
    top = float(np.abs(wave).max())
    return wave * (peak / top) if top > 0 else wave


def rms_db(wave: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(wave.astype(np.float64) ** 2)) + 1e-12))


def estimate_f0(wave: np.ndarray, lo: float = 40.0, hi: float = 1200.0) -> float:
    """Fundamental by the normalised difference function (YIN's first steps) on the steady part."""
    x = wave[int(0.1 * SAMPLE_RATE) : int(0.6 * SAMPLE_RATE)].astype(np.float64)
    x = x - x.mean()
    max_lag = int(SAMPLE_RATE / lo)
    min_lag = int(SAMPLE_RATE / hi)
    n = len(x) - max_lag
    d = np.array([np.sum((x[:n] - x[lag : lag + n]) ** 2) for lag in range(max_lag + 1)])
    cmnd = d[1:] * np.arange(1, max_lag + 1) / np.maximum(np.cumsum(d[1:]), 1e-12)
    lags = np.arange(1, max_lag + 1)
    valid = lags >= min_lag
    below = np.nonzero(valid & (cmnd < 0.15))[0]
    idx = below[0] if len(below) else int(np.argmin(np.where(valid, cmnd, np.inf)))
    while idx + 1 < len(cmnd) and cmnd[idx + 1] < cmnd[idx]:
        idx += 1
    return SAMPLE_RATE / float(lags[idx])


def midi_hz(pitch: int) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


def trim_silence(wave: np.ndarray, threshold_db: float = -40.0) -> np.ndarray:
    """Cuts leading and trailing 10 ms frames quieter than the loudest frame + ``threshold_db``."""
    frame = 160
    energy = np.array([rms_db(wave[i : i + frame]) for i in range(0, max(len(wave) - frame, 1), frame)])
    loud = np.nonzero(energy > energy.max() + threshold_db)[0]
    if len(loud) == 0:
        return wave
    return wave[loud[0] * frame : (loud[-1] + 1) * frame]


def drum_class(name: str) -> str | None:
    """The drum type a kit instrument's name says, or None (cowbell, shaker, ...)."""
    lowered = name.lower()
    for label, keys in DRUM_CLASSES.items():
        if any(k in lowered for k in keys):
            return label
    return None


# ----------------------------------------------------------------------------- MIDI notes


def _vlq(value: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, program: int, pitches: list[int], slot: float, hold: float, *, channel: int = 0, velocity: int = 100) -> None:
    """A format-0 MIDI file: one note per ``slot`` seconds, held ``hold`` seconds.

    Hand-written (thirty lines) to avoid a MIDI library for one file layout. Channel 9 is the
    General MIDI percussion channel, where ``program`` chooses the drum kit.
    """
    ticks_per_second = 960  # division 480 at the 120 bpm default tempo
    events = bytearray()
    events += _vlq(0) + bytes([0xFF, 0x51, 0x03]) + (500_000).to_bytes(3, "big")
    events += _vlq(0) + bytes([0xC0 | channel, program])
    now = 0
    for i, pitch in enumerate(pitches):
        on = int(round(i * slot * ticks_per_second))
        off = int(round((i * slot + hold) * ticks_per_second))
        events += _vlq(on - now) + bytes([0x90 | channel, pitch, velocity])
        events += _vlq(off - on) + bytes([0x80 | channel, pitch, 0])
        now = off
    events += _vlq(int(slot * ticks_per_second)) + bytes([0xFF, 0x2F, 0x00])
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    path.write_bytes(header + b"MTrk" + struct.pack(">I", len(events)) + bytes(events))


def render_notes(
    program: int,
    pitches: list[int],
    work: Path,
    *,
    slot: float = 1.2,
    hold: float = 0.8,
    seconds: float = 1.0,
    channel: int = 0,
    soundfont: Path = SOUNDFONT,
) -> list[np.ndarray]:
    """Renders one note per pitch (reverb and chorus off) and cuts each from its onset slot."""
    midi = work / f"program{program}_ch{channel}.mid"
    wav = work / f"program{program}_ch{channel}.wav"
    write_midi(midi, program, pitches, slot, hold, channel=channel)
    subprocess.run(
        ["fluidsynth", "-ni", "-R", "0", "-C", "0", "-g", "0.8", "-r", str(SAMPLE_RATE), "-F", str(wav), str(soundfont), str(midi)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    data, rate = soundfile.read(str(wav), dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE
    mono = data.mean(axis=1)
    step = int(slot * SAMPLE_RATE)
    n = int(SAMPLE_RATE * seconds)
    return [fit_to_clip(mono[i * step : i * step + n], centre=False, seconds=seconds) for i in range(len(pitches))]


# ----------------------------------------------------------------------------- SoundFont samples


def _riff_chunks(data: bytes, start: int, end: int):
    while start + 8 <= end:
        cid, size = data[start : start + 4], struct.unpack("<I", data[start + 4 : start + 8])[0]
        yield cid, start + 8, size
        start += 8 + size + (size & 1)


def read_sf2_samples(path: Path) -> list[tuple[str, int, np.ndarray]]:
    """Every sample of a SoundFont 2 file as ``(name, sample rate, float32 mono)``, read from its
    ``shdr`` headers and 16-bit ``smpl`` data (no synthesis: the recorded sample itself)."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise ValueError(f"{path} is not a SoundFont 2 file.")
    pcm = None
    headers: list[tuple[str, int, int, int, int]] = []
    for cid, off, size in _riff_chunks(data, 12, len(data)):
        if cid != b"LIST":
            continue
        for sub, off2, size2 in _riff_chunks(data, off + 4, off + size):
            if sub == b"smpl":
                pcm = np.frombuffer(data, dtype="<i2", count=size2 // 2, offset=off2)
            elif sub == b"shdr":
                for i in range(0, size2 - 46, 46):  # the last record is the terminal "EOS"
                    name, start, end, _, _, rate, _, _, _, kind = struct.unpack("<20sIIIIIBbHH", data[off2 + i : off2 + i + 46])
                    headers.append((name.split(b"\0")[0].decode("latin-1"), start, end, rate, kind))
    if pcm is None:
        raise ValueError(f"{path} holds no 16-bit sample data.")
    return [(name, rate, pcm[start:end].astype(np.float32) / 32768.0) for name, start, end, rate, kind in headers if kind < 0x8000]
