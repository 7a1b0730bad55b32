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


@dataclass(frozen=True)
class ModulationClip:
    name: str
    wave: np.ndarray
    task: str
    label: str
    group: str
    source: str
    package: str


def rate_label(rate: float) -> str:
    return f"{rate:g}hz"


def _rates(rng: np.random.Generator, count: int) -> list[float]:
    """``count`` distinct rates, drawn without replacement."""
    return [MODULATION_RATES[i] for i in rng.choice(len(MODULATION_RATES), size=count, replace=False)]


def am_clips(notes: Mapping[str, Sequence[tuple[int, np.ndarray]]], seed: int) -> list[ModulationClip]:
    """``notes``: group (``gmNNN``) -> (pitch, 2 s note) carriers."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for group, carriers in sorted(notes.items()):
        for pitch, note in carriers:
            segment = note[int(0.25 * SAMPLE_RATE) : int(0.25 * SAMPLE_RATE) + int(CLIP_SECONDS * SAMPLE_RATE)]
            for rate in _rates(rng, RATES_PER_NOTE):
                wave = amplitude_modulate(segment, rate, rng.uniform(0.5, 1.0), rng.uniform(0, 2 * np.pi))
                out.append(ModulationClip(f"modulation/am/{group}_p{pitch:03d}_{rate_label(rate)}.flac", wave, "study_am_rate",
                                          rate_label(rate), group, f"FluidR3_GM {group} note {pitch}", "fluid-soundfont-gm"))
    for k in range(SYNTHETIC_GROUPS):
        low = float(np.exp(rng.uniform(np.log(100), np.log(4000))))
        high = min(low * float(np.exp(rng.uniform(np.log(1.5), np.log(4.0)))), 7800.0)
        for rate in MODULATION_RATES:
            carrier = peak_normalise(noise_band(rng, CLIP_SECONDS, low_hz=low, high_hz=high), SYNTHETIC_PEAK)
            wave = amplitude_modulate(carrier, rate, rng.uniform(0.5, 1.0), rng.uniform(0, 2 * np.pi))
            out.append(ModulationClip(f"modulation/am/noise{k:02d}_{rate_label(rate)}.flac", wave, "study_am_rate",
                                      rate_label(rate), f"noise{k:02d}", f"noise band {low:.0f}-{high:.0f} Hz", "synthetic"))
    return out


def vibrato_clips(notes: Mapping[str, Sequence[tuple[int, np.ndarray]]], seed: int) -> list[ModulationClip]:
    rng = np.random.default_rng([seed, 2])
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    out = []
    for group, carriers in sorted(notes.items()):
        for pitch, note in carriers:
            segment = note[int(0.15 * SAMPLE_RATE) : int(0.35 * SAMPLE_RATE) + n]
            for rate in _rates(rng, RATES_PER_NOTE):
                wave = vibrato(segment, rate, rng.uniform(30.0, 100.0), rng.uniform(0, 2 * np.pi))
                start = (len(wave) - n) // 2
                out.append(ModulationClip(f"modulation/vibrato/{group}_p{pitch:03d}_{rate_label(rate)}.flac", wave[start : start + n],
                                          "study_vibrato_rate", rate_label(rate), group, f"FluidR3_GM {group} note {pitch}",
                                          "fluid-soundfont-gm"))
    for k in range(SYNTHETIC_GROUPS):
        f0 = float(np.exp(rng.uniform(np.log(100), np.log(800))))
        partials, tilt = int(rng.integers(5, 31)), float(rng.uniform(3.0, 12.0))
        for rate in MODULATION_RATES:
            carrier = peak_normalise(harmonic_tone(rng, CLIP_SECONDS + 0.3, f0=f0, num_partials=partials, tilt_db=tilt), SYNTHETIC_PEAK)
            wave = vibrato(carrier, rate, rng.uniform(30.0, 100.0), rng.uniform(0, 2 * np.pi))
            start = (len(wave) - n) // 2
            out.append(ModulationClip(f"modulation/vibrato/tone{k:02d}_{rate_label(rate)}.flac", wave[start : start + n],
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
            stroke = hit[: int(0.4 * SAMPLE_RATE)]
            for rate in _rates(rng, RATES_PER_NOTE + 1):
                wave = roll(stroke, rate, CLIP_SECONDS, rng)
                out.append(ModulationClip(f"modulation/roll/{group}/{name}_{rate_label(rate)}.flac", wave, "study_roll_rate",
                                          rate_label(rate), group, f"{package} {group}: {name}", package))
    for group, carriers in sorted(notes.items()):
        if family_of(group) not in ROLL_FAMILIES:
            continue
        for pitch, note in carriers:
            for rate in _rates(rng, RATES_PER_NOTE):
                wave = roll(note[: int(0.6 * SAMPLE_RATE)], rate, CLIP_SECONDS, rng)
                out.append(ModulationClip(f"modulation/roll/{group}_p{pitch:03d}_{rate_label(rate)}.flac", wave, "study_roll_rate",
                                          rate_label(rate), group, f"FluidR3_GM {group} note {pitch}", "fluid-soundfont-gm"))
    return out
