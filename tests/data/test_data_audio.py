"""Decoding in the file's own integer type, then converting in another stage, gives exactly what
libsndfile's own float32 decoding gives, for every format the odd corpus holds."""

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from aape_plugin.data.audio import decode_span, decode_waveform, to_mono_float
from tests.data.conftest import REAL_CLIP

SPAN = (0.137, 0.5)  # seconds: a crop that starts off a frame boundary


def libsndfile_float(path: Path, offset: float, duration: float) -> np.ndarray:
    rate = soundfile.info(str(path)).samplerate
    start = int(round(offset * rate))
    data, _ = soundfile.read(str(path), start=start, stop=start + int(np.ceil(duration * rate)), dtype="float32", always_2d=True)
    return data


@pytest.mark.parametrize(
    "name, dtype",
    [("pcm_u8.wav", torch.int16), ("pcm_24.wav", torch.int32), ("float64.wav", torch.float32), ("rate_96000.wav", torch.int16),
     ("ogg_vorbis.ogg", torch.float32), ("eight_channels.flac", torch.int16)],
)
def test_native_samples_convert_to_libsndfiles_own_floats(odd_corpus: dict, name: str, dtype: torch.dtype) -> None:
    path = odd_corpus[name][0]
    samples, rate = decode_span(path, lambda info: SPAN)
    assert samples.dtype == dtype
    assert rate == soundfile.info(str(path)).samplerate
    expected = libsndfile_float(path, *SPAN)
    assert samples.shape == expected.shape
    wave = to_mono_float(samples)
    assert wave.dtype == torch.float32 and wave.is_contiguous()
    if expected.shape[1] == 1:
        assert torch.equal(wave, torch.from_numpy(expected[:, 0]))  # bit for bit
    else:
        torch.testing.assert_close(wave, torch.from_numpy(expected.mean(axis=1)), rtol=0, atol=1e-7)


def test_a_flac_crop_is_decoded_as_int16_and_matches_the_whole_decoded_file() -> None:
    samples, rate = decode_span(REAL_CLIP, lambda info: (info.duration / 4, info.duration / 2))
    assert samples.dtype == torch.int16 and rate == 16_000
    whole = torch.from_numpy(soundfile.read(str(REAL_CLIP), dtype="float32")[0])
    start = int(round(whole.numel() / 4))
    crop = to_mono_float(samples)
    assert torch.equal(crop, whole[start : start + crop.numel()])
    assert torch.equal(decode_waveform(REAL_CLIP), whole)


def test_the_span_sees_the_header_it_was_opened_with() -> None:
    seen = []
    decode_span(REAL_CLIP, lambda info: seen.append(info) or (0.0, None))
    info = soundfile.info(str(REAL_CLIP))
    assert [(i.sample_rate, i.num_frames, i.channels) for i in seen] == [(info.samplerate, info.frames, info.channels)]
