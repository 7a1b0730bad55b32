"""The study's modulation group: three tasks whose only label is a rate (4-38 Hz).

* ``study_am_rate``: amplitude modulation of real sustained notes (FluidR3, split by program)
  and of noise bands (each band a group of its own);
* ``study_vibrato_rate``: vibrato of the same real notes and of harmonic complex tones;
* ``study_roll_rate``: rolls of real drum hits (split by kit, the drums task's groups) and
  repeated strokes of real plucked and struck notes (split by program).

Depth, phase, carrier (program, pitch, band, partials) and, for rolls, timing and loudness
jitter are random; each carrier appears under several rates, so no carrier identifies a class.
Peak normalisation (the corpus writer's) removes level. Clips are 1 s; none goes to the
pre-training pool (they are held-out downstream tasks, and the pool stays the one the earlier
study results were measured on). Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from aape_plugin.corpora.modulation import (
    MODULATION_RATES,
    amplitude_modulate,
    harmonic_tone,
    noise_band,
    roll,
    vibrato,
)
from aape_plugin.corpora.render import SAMPLE_RATE, peak_normalise

MODULATION_TASKS = {
    "study_am_rate": "amplitude-modulation rate of real notes and noise bands (7 rates, 4-38 Hz)",
    "study_vibrato_rate": "vibrato rate of real notes and harmonic tones (7 rates, 4-38 Hz)",
    "study_roll_rate": "stroke rate of rolls of real drum hits and plucked or struck notes (7 rates, 4-38 Hz)",
}

CLIP_SECONDS = 1.0
NOTE_CARRIER_PITCHES = (38, 45, 52, 59, 66, 73, 80)
"""Notes per program kept as carriers (one every 7 semitones over MIDI 38-80)."""
RATES_PER_NOTE = 2
"""Each note carries this many different rates (two clips), so a carrier is not a class."""
SYNTHETIC_GROUPS = 60
"""Noise bands (AM) and harmonic tones (vibrato): groups of their own, each under every rate."""
STROKES_PER_KIT = 10
ROLL_FAMILIES = ("keyboard", "mallet", "guitar", "bass")
"""Programs whose notes decay like strokes (pianos, mallets, plucked strings and basses):
repeated notes."""
SYNTHETIC_PEAK = 0.5
"""Synthetic carriers are scaled to this peak (the corpus writer drops clips that reach full scale)."""

# The synthetic carriers' parameter ranges (both ends included), named so that the fresh test
# split (:mod:`aape_plugin.corpora.modulation_fresh`) can be shown to draw from disjoint ones.
NOISE_LOW_HZ = (100.0, 4000.0)
"""Noise bands: lower edge, log-uniform."""
NOISE_WIDTH_RATIO = (1.5, 4.0)
"""Noise bands: upper / lower edge, log-uniform (the upper edge is capped at 7.8 kHz, which
never takes the ratio below 1.95: the lower edge is at most 4 kHz)."""
NOISE_HIGH_CAP_HZ = 7800.0
TONE_F0_HZ = (100.0, 800.0)
"""Harmonic tones: fundamental, log-uniform."""
TONE_PARTIALS = (5, 30)
"""Harmonic tones: number of partials, uniform integers."""
TONE_TILT_DB = (3.0, 12.0)
"""Harmonic tones: spectral tilt in dB per octave, uniform."""
AM_DEPTH = (0.5, 1.0)
VIBRATO_CENTS = (30.0, 100.0)
AM_SEGMENT_START = 0.25
"""A note's AM carrier: the second from 0.25 s (past the attack)."""
VIBRATO_SEGMENT = (0.15, 0.35)
"""A note's vibrato carrier: from 0.15 s to 0.35 s past a clip's length (the warp's margins),
centre-cropped to the clip after the warp."""
HIT_STROKE_SECONDS = 0.4
NOTE_STROKE_SECONDS = 0.6


@dataclass(frozen=True)
class ModulationClip:
    name: str
    wave: np.ndarray
    task: str
    label: str
    group: str
    source: str
    package: str
    carrier: str = ""
    """The carrier the clip was made from (a note, a hit, a synthetic carrier), where the builder records it."""


def rate_label(rate: float) -> str:
    return f"{rate:g}hz"


def _rates(rng: np.random.Generator, count: int) -> list[float]:
    """``count`` distinct rates, drawn without replacement."""
    return [MODULATION_RATES[i] for i in rng.choice(len(MODULATION_RATES), size=count, replace=False)]


def am_segment(note: np.ndarray) -> np.ndarray:
    """The second of a rendered note that carries its amplitude modulation."""
    start = int(AM_SEGMENT_START * SAMPLE_RATE)
    return note[start : start + int(CLIP_SECONDS * SAMPLE_RATE)]


def vibrato_segment(note: np.ndarray) -> np.ndarray:
    """The part of a rendered note that carries its vibrato (a clip plus the warp's margins)."""
    return note[int(VIBRATO_SEGMENT[0] * SAMPLE_RATE) : int(VIBRATO_SEGMENT[1] * SAMPLE_RATE) + int(CLIP_SECONDS * SAMPLE_RATE)]


def am_wave(carrier: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """The carrier amplitude-modulated at ``rate`` with a random depth and phase."""
    return amplitude_modulate(carrier, rate, rng.uniform(*AM_DEPTH), rng.uniform(0, 2 * np.pi))


def vibrato_wave(carrier: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """The carrier under a vibrato at ``rate`` with a random depth and phase, centre-cropped to a clip."""
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    wave = vibrato(carrier, rate, rng.uniform(*VIBRATO_CENTS), rng.uniform(0, 2 * np.pi))
    start = (len(wave) - n) // 2
    return wave[start : start + n]


def random_noise_band(rng: np.random.Generator, low_hz: tuple[float, float], width_ratio: tuple[float, float]) -> tuple[float, float]:
    """A band's edges: the lower one log-uniform in ``low_hz``, the ratio log-uniform in ``width_ratio``."""
    low = float(np.exp(rng.uniform(np.log(low_hz[0]), np.log(low_hz[1]))))
    high = min(low * float(np.exp(rng.uniform(np.log(width_ratio[0]), np.log(width_ratio[1])))), NOISE_HIGH_CAP_HZ)
    return low, high


def am_clips(notes: Mapping[str, Sequence[tuple[int, np.ndarray]]], seed: int) -> list[ModulationClip]:
    """``notes``: group (``gmNNN``) -> (pitch, 2 s note) carriers."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for group, carriers in sorted(notes.items()):
        for pitch, note in carriers:
            segment = am_segment(note)
            for rate in _rates(rng, RATES_PER_NOTE):
                wave = am_wave(segment, rate, rng)
                out.append(ModulationClip(f"modulation/am/{group}_p{pitch:03d}_{rate_label(rate)}.flac", wave, "study_am_rate",
                                          rate_label(rate), group, f"FluidR3_GM {group} note {pitch}", "fluid-soundfont-gm"))
    for k in range(SYNTHETIC_GROUPS):
        low, high = random_noise_band(rng, NOISE_LOW_HZ, NOISE_WIDTH_RATIO)
        for rate in MODULATION_RATES:
            carrier = peak_normalise(noise_band(rng, CLIP_SECONDS, low_hz=low, high_hz=high), SYNTHETIC_PEAK)
            wave = am_wave(carrier, rate, rng)
            out.append(ModulationClip(f"modulation/am/noise{k:02d}_{rate_label(rate)}.flac", wave, "study_am_rate",
                                      rate_label(rate), f"noise{k:02d}", f"noise band {low:.0f}-{high:.0f} Hz", "synthetic"))
    return out


def vibrato_clips(notes: Mapping[str, Sequence[tuple[int, np.ndarray]]], seed: int) -> list[ModulationClip]:
    rng = np.random.default_rng([seed, 2])
    out = []
    for group, carriers in sorted(notes.items()):
        for pitch, note in carriers:
            segment = vibrato_segment(note)
            for rate in _rates(rng, RATES_PER_NOTE):
                wave = vibrato_wave(segment, rate, rng)
                out.append(ModulationClip(f"modulation/vibrato/{group}_p{pitch:03d}_{rate_label(rate)}.flac", wave,
                                          "study_vibrato_rate", rate_label(rate), group, f"FluidR3_GM {group} note {pitch}",
                                          "fluid-soundfont-gm"))
    for k in range(SYNTHETIC_GROUPS):
        f0 = float(np.exp(rng.uniform(np.log(TONE_F0_HZ[0]), np.log(TONE_F0_HZ[1]))))
        partials, tilt = int(rng.integers(TONE_PARTIALS[0], TONE_PARTIALS[1] + 1)), float(rng.uniform(*TONE_TILT_DB))
        for rate in MODULATION_RATES:
            carrier = peak_normalise(harmonic_tone(rng, CLIP_SECONDS + 0.3, f0=f0, num_partials=partials, tilt_db=tilt), SYNTHETIC_PEAK)
            wave = vibrato_wave(carrier, rate, rng)
            out.append(ModulationClip(f"modulation/vibrato/tone{k:02d}_{rate_label(rate)}.flac", wave,
                                      "study_vibrato_rate", rate_label(rate), f"tone{k:02d}",
                                      f"harmonic tone {f0:.0f} Hz, {partials} partials, {tilt:.1f} dB/octave", "synthetic"))
    return out


def roll_clips(strokes: Mapping[str, Sequence[tuple[str, np.ndarray, str]]], notes: Mapping[str, Sequence[tuple[int, np.ndarray]]],
               family_of: Callable[[str], str | None], seed: int) -> list[ModulationClip]:
    """``strokes``: kit group -> (name, hit, package); ``notes`` and ``family_of`` as for the
    notes (only programs of :data:`ROLL_FAMILIES` are used)."""
    rng = np.random.default_rng([seed, 3])
    out = []
    for group, hits in sorted(strokes.items()):
        chosen = sorted(rng.choice(len(hits), size=min(STROKES_PER_KIT, len(hits)), replace=False))
        for name, hit, package in (hits[i] for i in chosen):
            stroke = hit[: int(HIT_STROKE_SECONDS * SAMPLE_RATE)]
            for rate in _rates(rng, RATES_PER_NOTE + 1):
                wave = roll(stroke, rate, CLIP_SECONDS, rng)
                out.append(ModulationClip(f"modulation/roll/{group}/{name}_{rate_label(rate)}.flac", wave, "study_roll_rate",
                                          rate_label(rate), group, f"{package} {group}: {name}", package))
    for group, carriers in sorted(notes.items()):
        if family_of(group) not in ROLL_FAMILIES:
            continue
        for pitch, note in carriers:
            for rate in _rates(rng, RATES_PER_NOTE):
                wave = roll(note[: int(NOTE_STROKE_SECONDS * SAMPLE_RATE)], rate, CLIP_SECONDS, rng)
                out.append(ModulationClip(f"modulation/roll/{group}_p{pitch:03d}_{rate_label(rate)}.flac", wave, "study_roll_rate",
                                          rate_label(rate), group, f"FluidR3_GM {group} note {pitch}", "fluid-soundfont-gm"))
    return out
