"""The HEAR API: exact, regular timestamps every 40 ms by default (computed, not interpolated),
float32 outputs, checked input (shapes, channels, stated rates), short sounds, and sounds
independent of their batch."""

import time

import pytest
import torch

from aape_plugin import hear
from aape_plugin.data.audio import load_waveform
from tests.data.conftest import DEMO


@pytest.fixture(scope="module")
def model() -> hear.HearModel:
    return hear.load_model("aape_tiny_demo", device="cpu")


@pytest.fixture(scope="module")
def native() -> hear.HearModel:
    return hear.load_model("aape_tiny_demo", device="cpu", timestamp_hop_ms=160.0)


def real_audio(seconds: float, n: int = 2) -> torch.Tensor:
    wave = torch.cat([load_waveform(p) for p in sorted((DEMO / "keywords").glob("*.flac"))[:40]])
    length = int(16_000 * seconds)
    return torch.stack([wave[i * 4000 : i * 4000 + length] for i in range(n)])


@pytest.mark.parametrize("seconds,steps", [(0.1, 3), (1.0, 25), (2.0, 50), (5.0, 125)])
def test_timestamps_are_exact_and_regular(model: hear.HearModel, seconds: float, steps: int) -> None:
    audio = real_audio(seconds)
    scene = hear.get_scene_embeddings(audio, model)
    frames, stamps = hear.get_timestamp_embeddings(audio, model)
    assert model.timestamp_hop_ms == 40.0 and model.sample_rate == 16_000
    assert scene.shape == (2, model.scene_embedding_size) and scene.dtype == torch.float32
    assert frames.shape == (2, steps, model.timestamp_embedding_size) and frames.dtype == torch.float32
    assert stamps.dtype == torch.float32 and torch.isfinite(frames).all()
    # Embedding m covers the 16 frames centred on 5 + 40 m ms; every one lies inside the clip.
    expected = 5.0 + 40.0 * torch.arange(steps, dtype=torch.float32)
    assert torch.equal(stamps, expected.expand(2, -1))
    assert stamps.max() <= 1000 * seconds < stamps.max() + 40


def test_the_finer_hop_is_computed_and_contains_the_native_one(model: hear.HearModel, native: hear.HearModel) -> None:
    audio = real_audio(2.0)
    fine, fine_stamps = hear.get_timestamp_embeddings(audio, model)
    coarse, coarse_stamps = hear.get_timestamp_embeddings(audio, native)
    assert torch.equal(coarse_stamps[0], 5.0 + 160.0 * torch.arange(13, dtype=torch.float32))
    # Every fourth 40 ms embedding is the native one at the same time ...
    torch.testing.assert_close(fine[:, ::4], coarse, atol=1e-5, rtol=1e-5)
    assert torch.equal(fine_stamps[:, ::4], coarse_stamps)
    # ... and the ones between are encoded, not interpolated: far from the neighbours' mean.
    between = fine[:, 2:-4:4]
    mean_of_neighbours = (fine[:, 0:-6:4] + fine[:, 4:-2:4]) / 2
    assert ((between - mean_of_neighbours).norm(dim=-1) > 0.1 * between.norm(dim=-1)).float().mean() > 0.9


def test_hops_that_do_not_divide_the_patch_are_refused() -> None:
    with pytest.raises(ValueError, match=r"`timestamp_hop_ms` must divide the 160 ms patch .* one of 10, 20, 40, 80, 160, but is 50"):
        hear.load_model("aape_tiny_demo", device="cpu", timestamp_hop_ms=50.0)


def test_each_sound_is_embedded_as_if_it_were_alone(model: hear.HearModel) -> None:
    # 1.03 s: the last window is padded to a whole patch; the batch holds other sounds.
    batch = real_audio(1.03, n=5)
    scene = hear.get_scene_embeddings(batch, model)
    frames, _ = hear.get_timestamp_embeddings(batch, model)
    for i in (0, 3):
        alone = batch[i : i + 1]
        torch.testing.assert_close(hear.get_scene_embeddings(alone, model)[0], scene[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(hear.get_timestamp_embeddings(alone, model)[0][0], frames[i], atol=1e-5, rtol=1e-5)
    assert (scene[0] - scene[1]).abs().max() > 1e-3  # different sounds, different embeddings


def test_the_embedder_ignores_the_padding_of_longer_neighbours(model: hear.HearModel) -> None:
    # Extraction batches whole clips of different lengths, padded to the longest one.
    embedder = model.embedder
    mel = embedder.normalised_logmel(real_audio(2.5, n=3)).unsqueeze(1)
    lengths = torch.tensor([251, 40, 101])
    clip, frames, valid = embedder.embed_logmel(mel, lengths)
    assert valid.tolist() == [16, 3, 7]
    for i, n in enumerate(lengths.tolist()):
        alone_clip, alone_frames, _ = embedder.embed_logmel(mel[i : i + 1, ..., :n], torch.tensor([n]))
        torch.testing.assert_close(alone_clip[0], clip[i])
        torch.testing.assert_close(alone_frames[0], frames[i, : valid[i]])


@pytest.mark.parametrize("samples", [400, 800])
def test_sounds_of_one_window_or_more_are_embedded(model: hear.HearModel, samples: int) -> None:
    audio = real_audio(0.1)[:, :samples]
    scene = hear.get_scene_embeddings(audio, model)
    frames, stamps = hear.get_timestamp_embeddings(audio, model)
    assert torch.isfinite(scene).all() and torch.isfinite(frames).all()
    assert stamps.tolist() == [[5.0], [5.0]] if samples < 800 else stamps.tolist() == [[5.0, 45.0], [5.0, 45.0]]


SHAPE = r"`audio` must be \(n_sounds, n_samples\), mono at 16 kHz"


@pytest.mark.parametrize(
    "audio,error,message",
    [
        (torch.zeros(16000), ValueError, SHAPE + r", but has shape \(16000,\); for one sound, pass audio.unsqueeze\(0\)\.$"),
        (torch.zeros(1, 2, 16000), ValueError, SHAPE + r", but has shape \(1, 2, 16000\); down-mix multichannel sounds first, e.g\. audio.mean\(dim=1\)"),
        (torch.zeros(2, 0), ValueError, SHAPE + r", but has shape \(2, 0\): sounds of 0 sample\(s\), shorter than one 25 ms analysis window"),
        (torch.zeros(0, 800), ValueError, SHAPE + r", with at least one sound, but has shape \(0, 800\)"),
        (torch.zeros(2, 399), ValueError, SHAPE + r", but has shape \(2, 399\): sounds of 399 sample\(s\), shorter than one 25 ms analysis window \(400 samples\)"),
        (torch.zeros(2, 16000, dtype=torch.int16), TypeError, r"floating-point samples in \[-1, 1\], but is torch.int16"),
        (torch.zeros(2, 16000, dtype=torch.int32), TypeError, r"convert integer PCM first"),
        (torch.tensor([[0.0] * 800, [0.0] * 799 + [float("nan")]]), ValueError, r"NaN or infinite samples \(sound\(s\) \[1\]\)"),
        (torch.tensor([[float("inf")] * 800]), ValueError, r"NaN or infinite samples \(sound\(s\) \[0\]\)"),
        ([[0.0] * 800], TypeError, r"must be a torch.Tensor"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(model: hear.HearModel, audio: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as refused:
        hear.get_scene_embeddings(audio, model)  # type: ignore[arg-type]
    assert "\n" not in str(refused.value)
    with pytest.raises(error, match=message):
        hear.get_timestamp_embeddings(audio, model)  # type: ignore[arg-type]


def test_a_stereo_array_is_refused_at_once_with_how_to_down_mix(model: hear.HearModel) -> None:
    # (n_samples, 2), as soundfile.read returns a stereo file: not 16000 sounds of 2 samples.
    left, right = real_audio(1.0)
    stereo = torch.stack([left, right], dim=1)
    for embed in (hear.get_scene_embeddings, hear.get_timestamp_embeddings):
        started = time.perf_counter()
        with pytest.raises(ValueError, match=SHAPE + r", but has shape \(16000, 2\): sounds of 2 sample\(s\).* audio.mean\(dim=1\).unsqueeze\(0\)") as refused:
            embed(stereo, model)  # type: ignore[operator]
        assert time.perf_counter() - started < 0.5 and "\n" not in str(refused.value)
    # What the message says to do works: one sound, the mean of the channels.
    torch.testing.assert_close(hear.get_scene_embeddings(stereo.mean(dim=1).unsqueeze(0), model),
                               hear.get_scene_embeddings(((left + right) / 2)[None], model))


def test_audio_of_a_stated_other_rate_is_refused(model: hear.HearModel) -> None:
    audio = real_audio(0.5)
    with pytest.raises(ValueError, match=r"`audio` is at 8000 Hz, but the model takes 16000 Hz; resample it first "
                                         r"\(torchaudio.functional.resample\(audio, 8000, 16000\)\), or embed the file with hear.embed_file\.$"):
        hear.get_scene_embeddings(audio, model, sample_rate=8000)
    with pytest.raises(ValueError, match=r"`audio` is at 44100 Hz"):
        hear.get_timestamp_embeddings(audio, model, sample_rate=44100)
    # The model's own rate is the contract: stating it changes nothing.
    assert torch.equal(hear.get_scene_embeddings(audio, model, sample_rate=16_000), hear.get_scene_embeddings(audio, model))
    assert model.sample_rate == 16_000


def test_float64_and_half_input_give_float32_output(model: hear.HearModel) -> None:
    audio = real_audio(0.5)
    reference = hear.get_scene_embeddings(audio, model)
    for dtype in (torch.float64, torch.bfloat16):
        scene = hear.get_scene_embeddings(audio.to(dtype), model)
        frames, stamps = hear.get_timestamp_embeddings(audio.to(dtype), model)
        assert scene.dtype == frames.dtype == stamps.dtype == torch.float32
        assert torch.allclose(scene, reference, atol=0.05 if dtype == torch.bfloat16 else 1e-5)
