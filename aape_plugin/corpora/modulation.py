"""Sounds whose only label is a modulation rate: the study's modulation tasks.

At 100 frames/s and 16-frame patches a patch stem samples each mel band 6.25 times a second, so
any modulation faster than 3.125 Hz aliases; AaPE's band-pass branch exists to see those. The
tasks built from these functions keep everything but the rate random (carrier, level, depth,
phase), so that only the rate identifies the class:

* :func:`amplitude_modulate`: tremolo / amplitude modulation of any carrier;
* :func:`vibrato`: frequency modulation (a periodic time warp) of any carrier: each partial's
  frequency swings by the same number of cents at the modulation rate;
* :func:`roll`: a stroke (a drum hit, a plucked or struck note) repeated at the rate, with the
  timing and loudness jitter of a played roll or tremolo.

Carriers are real recordings (notes and drum hits rendered from Debian packages) or the
synthetic ones here (:func:`noise_band`, :func:`harmonic_tone`). Plain NumPy, 16 kHz.
"""

from __future__ import annotations

import numpy as np

from aape_plugin.corpora.render import SAMPLE_RATE

MODULATION_RATES = (4.0, 6.0, 9.0, 13.0, 19.0, 27.0, 38.0)
"""The classes (Hz): log-spaced (about x1.45) over the alias-prone band between the patch-rate
Nyquist (3.125 Hz) and the frame rate's (50 Hz), each at least one step from the others."""


def amplitude_modulate(carrier: np.ndarray, rate: float, depth: float, phase: float) -> np.ndarray:
    """``carrier * (1 + depth * sin(2 pi rate t + phase)) / (1 + depth)``: the envelope swings
    between ``(1 - depth)/(1 + depth)`` and 1 of the carrier's, ``rate`` times a second."""
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"`depth` must be in [0, 1], but is {depth}.")
    t = np.arange(len(carrier)) / SAMPLE_RATE
    return carrier * (1.0 + depth * np.sin(2 * np.pi * rate * t + phase)) / (1.0 + depth)


def vibrato(carrier: np.ndarray, rate: float, depth_cents: float, phase: float) -> np.ndarray:
    """The carrier read at a periodically warped time: ``y(t) = x(t + d(t))`` with
    ``d(t) = A sin(2 pi rate t + phase)`` and ``A = (2**(depth_cents/1200) - 1) / (2 pi rate)``,
    so that every partial's instantaneous frequency is multiplied by ``1 + d'(t)``, which swings
    within ``2**(+-depth_cents/1200)`` (to first order) ``rate`` times a second. Linear
    interpolation; the carrier must be longer than the output by ``A`` seconds on both sides
    (the output is trimmed to ``len(carrier) - 2 * margin`` samples, ``margin = ceil(A fs) + 1``)."""
    swing = 2.0 ** (depth_cents / 1200.0) - 1.0
    amplitude = swing / (2 * np.pi * rate)  # seconds
    margin = int(np.ceil(amplitude * SAMPLE_RATE)) + 1
    n = len(carrier) - 2 * margin
    if n <= 0:
        raise ValueError(f"The carrier ({len(carrier)} samples) is too short for a {depth_cents}-cent vibrato at {rate} Hz.")
    t = np.arange(n) / SAMPLE_RATE
    warped = (margin + (t + amplitude * np.sin(2 * np.pi * rate * t + phase)) * SAMPLE_RATE)
    return np.interp(warped, np.arange(len(carrier)), carrier)


def roll(stroke: np.ndarray, rate: float, seconds: float, rng: np.random.Generator, *, jitter: float = 0.08,
         loudness_db: float = 3.0) -> np.ndarray:
    """``stroke`` repeated ``rate`` times a second for ``seconds``: onsets ``k / rate`` (from a
    random offset within the first period) moved by up to ``jitter`` of a period, loudness
    varying by up to ``loudness_db``, each stroke cut (10 ms fade) when the next begins, as a
    player's next stroke damps the last."""
    n = int(seconds * SAMPLE_RATE)
    period = SAMPLE_RATE / rate
    out = np.zeros(n + len(stroke), dtype=np.float64)
    onsets = []
    k, start = 0, rng.uniform(0, period)
    while True:
        onset = start + k * period + rng.uniform(-jitter, jitter) * period
        if onset >= n:
            break
        onsets.append(max(int(round(onset)), 0))
        k += 1
    fade = int(0.01 * SAMPLE_RATE)
    for i, onset in enumerate(onsets):
        gain = 10 ** (rng.uniform(-loudness_db, 0.0) / 20)
        length = len(stroke) if i + 1 == len(onsets) else min(len(stroke), onsets[i + 1] - onset + fade)
        piece = stroke[:length] * gain
        if length < len(stroke):
            ramp = min(fade, length)
            piece[-ramp:] *= np.linspace(1.0, 0.0, ramp)
        out[onset : onset + length] += piece
    return out[:n]


def noise_band(rng: np.random.Generator, seconds: float, *, low_hz: float, high_hz: float) -> np.ndarray:
    """White noise kept between ``low_hz`` and ``high_hz`` (an FFT brick wall): a carrier with no
    pitch and a flat envelope, whose only modulation is the one applied to it."""
    n = int(seconds * SAMPLE_RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    return np.fft.irfft(spectrum, n)


def harmonic_tone(rng: np.random.Generator, seconds: float, *, f0: float, num_partials: int, tilt_db: float) -> np.ndarray:
    """A steady harmonic complex: partials ``k f0`` (below 7.5 kHz) at ``-tilt_db`` per octave,
    random phases."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    out = np.zeros_like(t)
    for k in range(1, num_partials + 1):
        if k * f0 > 7500:
            break
        out += 10 ** (-tilt_db * np.log2(k) / 20) * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    return out
