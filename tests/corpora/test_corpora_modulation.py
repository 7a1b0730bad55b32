"""The modulation tasks' sounds carry the rate they are labelled with, and nothing else does:
the rate is read back from each signal by a textbook method (envelope spectrum, instantaneous
frequency, onset count) and the carriers alone show no modulation."""

import numpy as np
import pytest
from scipy.signal import hilbert

from aape_plugin.corpora.modulation import (
    MODULATION_RATES, amplitude_modulate, harmonic_tone, noise_band, roll, vibrato,
)
from aape_plugin.corpora.render import SAMPLE_RATE


def envelope_rate(wave: np.ndarray, lo: float = 2.0, hi: float = 60.0) -> float:
    """The strongest frequency of the amplitude envelope between ``lo`` and ``hi`` Hz."""
    envelope = np.abs(hilbert(wave))
    envelope = envelope - envelope.mean()
    n = 8 * len(envelope)
    spectrum = np.abs(np.fft.rfft(envelope * np.hanning(len(envelope)), n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    band = (freqs >= lo) & (freqs <= hi)
    return float(freqs[band][np.argmax(spectrum[band])])


def test_the_rates_are_log_spaced_over_the_alias_prone_band() -> None:
    rates = np.array(MODULATION_RATES)
    assert rates[0] > 3.125 and rates[-1] < 50.0
    ratios = rates[1:] / rates[:-1]
    assert np.all(ratios > 1.35) and np.all(ratios < 1.55)


@pytest.mark.parametrize("rate", MODULATION_RATES)
def test_amplitude_modulation_puts_the_rate_and_the_depth_in_the_envelope(rate: float) -> None:
    rng = np.random.default_rng(0)
    carrier = noise_band(rng, 2.0, low_hz=1000, high_hz=3000)
    wave = amplitude_modulate(carrier, rate, depth=0.8, phase=1.0)
    assert envelope_rate(wave) == pytest.approx(rate, abs=0.4)
    # On a steady tone the envelope swings between (1-d)/(1+d) and 1 exactly.
    tone = np.sin(2 * np.pi * 1000 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    env = np.abs(hilbert(amplitude_modulate(tone, rate, depth=0.6, phase=0.0)))[800:-800]
    assert env.max() == pytest.approx(1.0, abs=0.02) and env.min() == pytest.approx(0.4 / 1.6, abs=0.02)


@pytest.mark.parametrize("rate", (4.0, 13.0, 38.0))
def test_vibrato_swings_every_partial_by_the_same_cents_at_the_rate(rate: float) -> None:
    t = np.arange(int(1.2 * SAMPLE_RATE)) / SAMPLE_RATE
    for carrier_hz in (220.0, 1760.0):
        wave = vibrato(np.sin(2 * np.pi * carrier_hz * t), rate, depth_cents=60.0, phase=0.3)
        phase = np.unwrap(np.angle(hilbert(wave)))
        inst = np.diff(phase) * SAMPLE_RATE / (2 * np.pi)
        inst = inst[400:-400]
        cents = 1200 * np.log2(inst / carrier_hz)
        # The swing's amplitude at the rate (a least-squares sinusoid over whole periods).
        periods = int(len(cents) * rate / SAMPLE_RATE)
        tt = np.arange(int(periods * SAMPLE_RATE / rate)) / SAMPLE_RATE
        swing = 2 * abs(np.mean(cents[: len(tt)] * np.exp(-2j * np.pi * rate * tt)))
        assert swing == pytest.approx(60.0, rel=0.05), carrier_hz
        spectrum = np.abs(np.fft.rfft((inst - inst.mean()) * np.hanning(len(inst)), 8 * len(inst)))
        freqs = np.fft.rfftfreq(8 * len(inst), 1 / SAMPLE_RATE)
        band = (freqs > 1) & (freqs < 60)
        assert freqs[band][np.argmax(spectrum[band])] == pytest.approx(rate, abs=0.5)
        # The envelope of a vibrato on a steady sine stays flat: the rate is in frequency only.
        env = np.abs(hilbert(wave))[400:-400]
        assert env.std() / env.mean() < 0.02


@pytest.mark.parametrize("rate", MODULATION_RATES)
def test_a_roll_strikes_at_the_rate(rate: float) -> None:
    rng = np.random.default_rng(1)
    stroke = np.exp(-np.arange(4000) / 300.0) * rng.standard_normal(4000)
    wave = roll(stroke, rate, 2.0, rng, jitter=0.05)
    assert len(wave) == 2 * SAMPLE_RATE
    assert envelope_rate(wave, hi=45.0) == pytest.approx(rate, rel=0.06)


def test_carriers_hold_their_band_and_their_partials() -> None:
    rng = np.random.default_rng(2)
    noise = noise_band(rng, 1.0, low_hz=500, high_hz=2000)
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / SAMPLE_RATE)
    assert spectrum[(freqs < 500) | (freqs > 2000)].sum() < 1e-6 * spectrum.sum()
    tone = harmonic_tone(rng, 1.0, f0=200.0, num_partials=10, tilt_db=6.0)
    spectrum = np.abs(np.fft.rfft(tone))
    peaks = freqs[np.argsort(spectrum)[-10:]]
    assert sorted(np.round(peaks).astype(int).tolist()) == list(range(200, 2001, 200))
    with pytest.raises(ValueError, match="depth"):
        amplitude_modulate(noise, 4.0, depth=1.5, phase=0.0)


def test_the_tasks_balance_their_rates_and_no_carrier_names_a_class() -> None:
    from collections import Counter, defaultdict

    from aape_plugin.corpora.modulation_tasks import SYNTHETIC_GROUPS, am_clips, rate_label, roll_clips, vibrato_clips

    rng = np.random.default_rng(3)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    notes = {f"gm{p:03d}": [(pitch, np.sin(2 * np.pi * 110 * 2 ** ((pitch - 45) / 12) * t) * np.exp(-t))
                            for pitch in (45, 52, 59)] for p in (0, 9, 40)}
    hits = {"kitA": [(f"hit{i}", rng.standard_normal(SAMPLE_RATE) * np.exp(-np.arange(SAMPLE_RATE) / 800), "pkg") for i in range(8)]}
    family = {"gm000": "keyboard", "gm009": "mallet", "gm040": "string"}.get
    made = {"am": am_clips(notes, 0), "vibrato": vibrato_clips(notes, 0), "roll": roll_clips(hits, notes, family, 0)}
    for kind, clips in made.items():
        assert all(len(c.wave) == SAMPLE_RATE for c in clips), kind
        assert {c.label for c in clips} == {rate_label(r) for r in MODULATION_RATES}, kind
        per_group: dict[str, Counter[str]] = defaultdict(Counter)
        for c in clips:
            per_group[c.group][c.label] += 1
        # Every carrier group appears under at least two rates: a group (hence a split) never is a class.
        assert all(len(labels) >= 2 for labels in per_group.values()), kind
        assert len({c.name for c in clips}) == len(clips), kind
    am = made["am"]
    assert sum(c.group.startswith("noise") for c in am) == SYNTHETIC_GROUPS * len(MODULATION_RATES)
    # The label is the rate the signal carries (read back from a noise-band clip's envelope).
    for c in [c for c in am if c.group == "noise00"]:
        assert envelope_rate(c.wave) == pytest.approx(float(c.label.removesuffix("hz")), abs=0.6)
    assert {c.group for c in made["roll"]} == {"kitA", "gm000", "gm009"}  # the string program holds no strokes
    # Deterministic for a seed, different for another.
    again = am_clips(notes, 0)
    assert all(np.array_equal(a.wave, b.wave) and a.label == b.label for a, b in zip(am, again))
    assert any(a.label != b.label for a, b in zip(am, am_clips(notes, 1)))
