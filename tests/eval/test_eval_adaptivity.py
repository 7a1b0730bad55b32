"""The adaptivity measurement (Figure 4, measured): its statistics on estimates with a known
answer, on real audio through real encoders, the inputs it refuses, and the command with its
page rebuilt from the stored JSON."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aape_plugin.data.audio import load_waveform
from aape_plugin.data.features import LogMel, LogMelConfig
from aape_plugin.eval.adaptivity import (
    AdaptivityError,
    Poles,
    bootstrap_draws,
    estimate_poles,
    following,
    lambda_encoder_trained,
    lambda_stem,
    measure,
)
from aape_plugin.models.archs import ARCHS
from aape_plugin.models.factory import create_encoder
from tests.data.conftest import DEMO
from tests.recipes.helpers import REPO, cpu_env

CLIPS = sorted((DEMO / "notes").glob("*.flac"))[::25] + sorted((DEMO / "keywords").glob("*.flac"))[::10]


def fresh(seed: int = 1, **stem: object) -> torch.nn.Module:
    config = ARCHS["aape_tiny"]().encoder
    for key, value in stem.items():
        setattr(config.stem, key, value)
    torch.manual_seed(seed)
    return create_encoder(config, drop_path=0.0).eval()


@pytest.fixture(scope="module")
def logmels() -> list[torch.Tensor]:
    mel = LogMel(LogMelConfig())
    return [(mel(load_waveform(p, duration=1.0)) + 7.0) / 6.8 for p in CLIPS]


def test_following_finds_the_kernel_that_tracks_the_reference_and_only_it() -> None:
    rng = np.random.default_rng(0)
    clips, s, p, n = 60, 5, 4, 8
    frequency = 10 + rng.normal(0, 0.1, size=(clips, s, p, n))
    reference = rng.uniform(4, 38, size=clips)
    frequency[:, 2, :, 5] = 5 + 0.5 * reference[:, None]  # one (subband, kernel) follows the rate
    poles = Poles(frequency_hz=frequency, decay=np.full_like(frequency, 0.25))
    result = following(poles, reference, "true rate", bootstrap_draws(clips))
    rho = np.array(result.rho)
    assert rho[2, 5] == pytest.approx(1.0) and result.max_abs == pytest.approx(1.0)
    others = np.delete(rho.flatten(), 2 * n + 5)
    assert np.abs(others).max() < 0.5 and np.abs(others).max() < result.max_abs_null < 0.6
    lo, hi = result.mean_rho_interval
    assert lo <= result.mean_rho <= hi and result.mean_rho == pytest.approx(rho.mean(), abs=1e-3)
    # Estimates that fall as the reference rises give a negative mean.
    falling = Poles(frequency_hz=10 - 0.1 * reference[:, None, None, None] + 0 * frequency, decay=poles.decay)
    assert following(falling, reference, "true rate", bootstrap_draws(clips)).mean_rho == pytest.approx(-1.0)


def test_a_random_lambda_encoder_jitters_a_little_and_a_sharper_one_more(logmels: list[torch.Tensor]) -> None:
    encoder = fresh()
    assert not lambda_encoder_trained(lambda_stem(encoder, "fresh"))
    base = measure("random", False, estimate_poles(encoder, logmels, 96), {}, bootstrap_draws(len(logmels)))
    assert 0.001 < base.across_clips < 0.1 and 0.001 < base.within_clip < 0.1
    # Heads ten times stronger make the estimates vary ten times as much with the input.
    with torch.no_grad():
        encoder.stem.lambda_encoder.frequency_head.weight.mul_(10)
    sharp = measure("sharp", False, estimate_poles(encoder, logmels, 96), {}, bootstrap_draws(len(logmels)))
    assert sharp.across_clips > 4 * base.across_clips and sharp.within_clip > 4 * base.within_clip


def test_the_shipped_demo_encoders_lambda_encoder_was_trained() -> None:
    from aape_plugin.inference.loading import load_encoder

    stem = lambda_stem(load_encoder("aape_tiny_demo").encoder, "aape_tiny_demo")
    assert lambda_encoder_trained(stem)


def test_stems_without_an_adaptive_lambda_encoder_and_clips_shorter_than_a_patch_are_refused(logmels: list[torch.Tensor]) -> None:
    plain = ARCHS["vit_tiny"]().encoder
    with pytest.raises(AdaptivityError, match="plain stem"):
        lambda_stem(create_encoder(plain, drop_path=0.0), "vit_tiny")
    with pytest.raises(AdaptivityError, match="fixed poles"):
        lambda_stem(fresh(adaptive=False), "fixed")
    with pytest.raises(AdaptivityError, match="shorter than one patch"):
        estimate_poles(fresh(), [logmels[0][:, :10]], 96)


def run_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aape_plugin.eval.adaptivity", *args], capture_output=True, text=True,
                          cwd=REPO, env=cpu_env(), timeout=600)


@pytest.mark.slow  # three runs of the command
def test_the_command_measures_a_checkpoint_and_rebuilds_its_page_from_the_json(tmp_path: Path) -> None:
    audio = [str(p) for p in CLIPS[:6]]
    proc = run_command("--checkpoint", "aape_tiny_demo", "--audio", *audio, "--reference-seeds", "1", "--seconds", "1",
                       "--out", str(tmp_path / "a.json"), "--page", str(tmp_path / "a.md"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads((tmp_path / "a.json").read_text())
    (demo, init) = document["measurements"]
    assert demo["lambda_trained"] and not init["lambda_trained"] and demo["clips"] == 6
    assert [f["reference"] for f in demo["following"]] == ["envelope centroid"]  # no rate labels here
    again = run_command("--from-json", str(tmp_path / "a.json"), "--page", str(tmp_path / "b.md"))
    assert again.returncode == 0 and (tmp_path / "b.md").read_text() == (tmp_path / "a.md").read_text()
    missing = run_command("--checkpoint", "aape_tiny_demo", "--audio", str(tmp_path / "nothing.flac"))
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0 and "nothing.flac is not a file" in missing.stderr


def test_the_published_page_is_rendered_from_its_stored_measurements() -> None:
    from aape_plugin.eval.adaptivity import render

    docs = REPO / "docs"
    documents = [json.loads(p.read_text()) for p in sorted((docs / "adaptivity").glob("*.json"))]
    assert documents and (docs / "adaptivity.md").read_text() == render(documents)
