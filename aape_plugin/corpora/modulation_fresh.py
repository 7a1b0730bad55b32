"""A fresh test split of the modulation group, from sources no earlier reading touched.

The train, valid and test splits of ``study_am_rate``, ``study_vibrato_rate`` and
``study_roll_rate`` (:mod:`aape_plugin.corpora.modulation_tasks`) were all read while the study
was designed, so their test splits can no longer answer a claim. This split keeps what defines
the tasks (the 7 rates, 1 s clips, the same modulation functions, depths and segments, peak
normalisation) and changes every carrier:

* real notes of another SoundFont, TimGM6mb (``timgm6mb-soundfont``; no sample in common with
  FluidR3 GM), at pitches none of the old carriers had;
* real drum hits of kits no task used: TimGM6mb's percussion kits and LMMS's drum one-shots
  (``lmms-common``);
* synthetic carriers from parameter ranges disjoint from the old ones: noise bands wider than
  any old band, harmonic tones with a fundamental, a partial count and a tilt outside the old
  ranges;
* a seed no earlier build used.

Rates are assigned in blocks of seven carriers so that every rate has exactly as many clips,
and each carrier is heard under two or more rates (no carrier identifies a class). Pure
functions; :mod:`aape_plugin.corpora.make_fresh_modulation_test` renders the carriers and
writes the clips.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from aape_plugin.corpora.modulation import MODULATION_RATES, harmonic_tone, noise_band, roll
from aape_plugin.corpora.modulation_tasks import (
    CLIP_SECONDS,
    HIT_STROKE_SECONDS,
    NOTE_STROKE_SECONDS,
    ROLL_FAMILIES,
    SYNTHETIC_PEAK,
    ModulationClip,
    am_segment,
    am_wave,
    random_noise_band,
    rate_label,
    vibrato_segment,
    vibrato_wave,
)
from aape_plugin.corpora.render import SAMPLE_RATE, peak_normalise

FRESH_SEED = 20261207
"""The fresh split's seed (the study corpus was built with seed 0; streams ``[seed, 11..13]``
here, ``[seed, 1..3]`` there)."""

FRESH_SPLIT = "test"
"""The fresh clips' split in the fresh corpus' task lists: a probe reads them as its test split."""

SOUNDFONT_PACKAGE = "timgm6mb-soundfont"
SOUNDFONT_FILE = "usr/share/sounds/sf2/TimGM6mb.sf2"
"""In the unpacked package. TimGM6mb (Tim Brechbill, GPL-2): 6 MB, its own samples."""
SOUNDFONT_NAME = "TimGM6mb"
DRUMS_PACKAGE = "lmms-common"
DRUMS_FOLDER = "usr/share/lmms/samples/drums"
"""LMMS's 72 drum one-shots (GPL-2+)."""
FRESH_PACKAGES = (SOUNDFONT_PACKAGE, DRUMS_PACKAGE)

NOT_FRESH_SOUNDFONT_PACKAGES = {
    "fluid-soundfont-gm": "FluidR3 GM itself",
    "fluid-soundfont-gs": "FluidR3's samples (GS layout)",
    "fluidr3mono-gm-soundfont": "FluidR3, mono",
    "musescore-general-soundfont": "MuseScore General, built from FluidR3Mono",
    "musescore-general-soundfont-small": "MuseScore General, built from FluidR3Mono",
    "musescore-general-soundfont-lossless": "MuseScore General, built from FluidR3Mono",
    "csound-soundfont": "sf_GMbank shares 240 of its 373 samples with TimGM6mb: not a second source",
}
"""SoundFonts Debian offers that were not taken, and why (``opl3-soundfont``, 100 MB of FM
imitations, and ``freepats``, GUS patches fluidsynth cannot read, were left for size and format)."""

FRESH_NOTE_PITCHES = (41, 55, 69)
"""Notes per program kept as carriers: none of the old carrier pitches (38, 45, ..., 80)."""
TIM_KITS = {0: "Standard", 8: "Room", 16: "Power", 24: "Electronic", 25: "TR 808", 32: "Jazz", 40: "Brush", 48: "Orchestra"}
"""TimGM6mb's percussion presets (bank 128)."""

FRESH_NOISE_LOW_HZ = (40.0, 480.0)
FRESH_NOISE_WIDTH_RATIO = (5.0, 16.0)
"""Upper / lower edge: every fresh band spans more than 2.3 octaves, every old band at most 2
(:data:`~aape_plugin.corpora.modulation_tasks.NOISE_WIDTH_RATIO` is 1.5-4); the upper edge
stays below 7.7 kHz, so the cap never cuts a ratio."""
FRESH_TONE_FAMILIES: dict[str, dict[str, tuple[float, float]]] = {
    "buzz": {"f0_hz": (50.0, 95.0), "partials": (31, 60), "tilt_db": (0.0, 2.5)},
    "bright": {"f0_hz": (850.0, 1600.0), "partials": (2, 4), "tilt_db": (0.0, 2.5)},
}
"""Harmonic tones, alternating: low buzzes with many flat partials, and high tones with a few.
Each range lies outside the old one (f0 100-800 Hz, 5-30 partials, 3-12 dB/octave)."""
FRESH_NOISE_GROUPS = 35
FRESH_TONE_GROUPS = 36
NOTE_RATES = 2
HIT_RATES = 3


def note_carrier(group: str, pitch: int) -> str:
    """A note carrier's name (a clip's ``carrier``)."""
    return f"{group}_p{pitch:03d}"


def hit_carrier(group: str, name: str) -> str:
    """A drum hit carrier's name (a clip's ``carrier``)."""
    return f"{group}/{name}"


def balanced_rates(num_carriers: int, per_carrier: int, rng: np.random.Generator) -> list[tuple[float, ...]]:
    """``per_carrier`` distinct rates for each carrier, every rate used equally often: carriers
    go in blocks of seven, and carrier ``i`` of a block takes rates ``p[i] + s`` (mod 7) for a
    random permutation ``p`` and ``per_carrier`` distinct random shifts ``s`` of the block."""
    k = len(MODULATION_RATES)
    if num_carriers % k:
        raise ValueError(f"`num_carriers` must be a multiple of {k} for balanced rates, but is {num_carriers}.")
    if not 1 <= per_carrier <= k:
        raise ValueError(f"`per_carrier` must be in [1, {k}], but is {per_carrier}.")
    out = []
    for _ in range(num_carriers // k):
        order, shifts = rng.permutation(k), rng.choice(k, size=per_carrier, replace=False)
        out += [tuple(MODULATION_RATES[(int(p) + int(s)) % k] for s in shifts) for p in order]
    return out


def whole_blocks(items: list, rng: np.random.Generator) -> list:
    """``items`` less a random few, so that a whole number of blocks of seven remains (in order)."""
    drop = set(rng.choice(len(items), size=len(items) % len(MODULATION_RATES), replace=False).tolist())
    return [item for i, item in enumerate(items) if i not in drop]


def _note_carriers(notes: Mapping[str, Sequence[tuple[int, np.ndarray]]], rng: np.random.Generator) -> list[tuple[str, int, np.ndarray]]:
    return whole_blocks([(group, pitch, note) for group, carriers in sorted(notes.items()) for pitch, note in carriers], rng)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _note_clips(notes: Mapping[str, Sequence[tuple[int, np.ndarray]]], rng: np.random.Generator, kind: str, task: str,
                prepare: Callable[[np.ndarray], np.ndarray], modulate: Callable[[np.ndarray, float], np.ndarray]) -> list[ModulationClip]:
    """Every kept note under its dealt rates: ``modulate(prepare(note), rate)``, named
    ``fresh/<kind>/<group>_pNNN_<rate>.flac``."""
    carriers = _note_carriers(notes, rng)
    out = []
    for (group, pitch, note), rates in zip(carriers, balanced_rates(len(carriers), NOTE_RATES, rng)):
        carrier = prepare(note)
        for rate in rates:
            out.append(ModulationClip(f"fresh/{kind}/{group}_p{pitch:03d}_{rate_label(rate)}.flac", modulate(carrier, rate), task,
                                      rate_label(rate), group, f"{SOUNDFONT_NAME} {group} note {pitch}", SOUNDFONT_PACKAGE,
                                      note_carrier(group, pitch)))
    return out


def fresh_tone(k: int, rng: np.random.Generator) -> tuple[str, float, int, float]:
    """The ``k``-th synthetic tone's family, f0, partial count and tilt."""
    family = sorted(FRESH_TONE_FAMILIES)[k % len(FRESH_TONE_FAMILIES)]
    ranges = FRESH_TONE_FAMILIES[family]
    f0 = _log_uniform(rng, ranges["f0_hz"])
    partials = int(rng.integers(int(ranges["partials"][0]), int(ranges["partials"][1]) + 1))
    return family, f0, partials, float(rng.uniform(*ranges["tilt_db"]))


def fresh_am_clips(notes: Mapping[str, Sequence[tuple[int, np.ndarray]]], seed: int = FRESH_SEED) -> list[ModulationClip]:
    """``notes``: group (``timgm6mb_gmNNN``) -> (pitch, 2 s note); plus wide noise bands."""
    rng = np.random.default_rng([seed, 11])
    out = _note_clips(notes, rng, "am", "study_am_rate", am_segment, lambda segment, rate: am_wave(segment, rate, rng))
    for k in range(FRESH_NOISE_GROUPS):
        low, high = random_noise_band(rng, FRESH_NOISE_LOW_HZ, FRESH_NOISE_WIDTH_RATIO)
        for rate in MODULATION_RATES:
            carrier = peak_normalise(noise_band(rng, CLIP_SECONDS, low_hz=low, high_hz=high), SYNTHETIC_PEAK)
            out.append(ModulationClip(f"fresh/am/widenoise{k:02d}_{rate_label(rate)}.flac", am_wave(carrier, rate, rng), "study_am_rate",
                                      rate_label(rate), f"widenoise{k:02d}", f"noise band {low:.0f}-{high:.0f} Hz", "synthetic", f"widenoise{k:02d}"))
    return out


def fresh_vibrato_clips(notes: Mapping[str, Sequence[tuple[int, np.ndarray]]], seed: int = FRESH_SEED) -> list[ModulationClip]:
    rng = np.random.default_rng([seed, 12])
    out = _note_clips(notes, rng, "vibrato", "study_vibrato_rate", vibrato_segment, lambda segment, rate: vibrato_wave(segment, rate, rng))
    for k in range(FRESH_TONE_GROUPS):
        family, f0, partials, tilt = fresh_tone(k, rng)
        for rate in MODULATION_RATES:
            carrier = peak_normalise(harmonic_tone(rng, CLIP_SECONDS + 0.3, f0=f0, num_partials=partials, tilt_db=tilt), SYNTHETIC_PEAK)
            out.append(ModulationClip(f"fresh/vibrato/{family}{k:02d}_{rate_label(rate)}.flac", vibrato_wave(carrier, rate, rng),
                                      "study_vibrato_rate", rate_label(rate), f"{family}{k:02d}",
                                      f"harmonic tone {f0:.0f} Hz, {partials} partials, {tilt:.1f} dB/octave", "synthetic", f"{family}{k:02d}"))
    return out


def fresh_roll_clips(strokes: Mapping[str, Sequence[tuple[str, np.ndarray, str]]], notes: Mapping[str, Sequence[tuple[int, np.ndarray]]],
                     family_of: Callable[[str], str | None], seed: int = FRESH_SEED) -> list[ModulationClip]:
    """``strokes``: kit group -> (name, 1 s hit, package), every hit used; ``notes`` as for AM,
    only programs of :data:`~aape_plugin.corpora.modulation_tasks.ROLL_FAMILIES`."""
    rng = np.random.default_rng([seed, 13])
    hits = whole_blocks([(group, name, hit, package) for group, kit in sorted(strokes.items()) for name, hit, package in kit], rng)
    out = []
    for (group, name, hit, package), rates in zip(hits, balanced_rates(len(hits), HIT_RATES, rng)):
        stroke = hit[: int(HIT_STROKE_SECONDS * SAMPLE_RATE)]
        for rate in rates:
            out.append(ModulationClip(f"fresh/roll/{group}/{name}_{rate_label(rate)}.flac", roll(stroke, rate, CLIP_SECONDS, rng),
                                      "study_roll_rate", rate_label(rate), group, f"{package} {group}: {name}", package, hit_carrier(group, name)))
    struck = {group: carriers for group, carriers in notes.items() if family_of(group) in ROLL_FAMILIES}
    out += _note_clips(struck, rng, "roll", "study_roll_rate", lambda note: note[: int(NOTE_STROKE_SECONDS * SAMPLE_RATE)],
                       lambda stroke, rate: roll(stroke, rate, CLIP_SECONDS, rng))
    return out
