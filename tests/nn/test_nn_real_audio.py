"""The stem on real audio (demo clips): finite outputs, estimates in band, and a high-pass that
removes slow level changes (a piano's decay) while keeping fast ones (speech)."""

from pathlib import Path

import torch

from aape_plugin.data.audio import load_waveform
from aape_plugin.data.features import LogMel
from aape_plugin.nn.highpass import ZeroPhaseHighPass
from aape_plugin.nn.patch_embed import AaPEPatchEmbed

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo"
CLIPS = ["notes/gm000_p060.flac", "notes/gm040_p060.flac", "keywords/en-us_m1_stop.flac", "drums/BJA_Pacific_Snare.flac"]


def logmel(name: str) -> torch.Tensor:
    return (LogMel()(load_waveform(DEMO / name)) + 7.08) / 6.83  # the demo pool's statistics


def test_stem_on_real_clips() -> None:
    torch.manual_seed(0)
    stem = AaPEPatchEmbed(embed_dim=64)
    x = torch.stack([logmel(n)[:, :96] for n in CLIPS]).unsqueeze(1)
    out = stem(x)
    assert torch.isfinite(out.tokens).all()
    assert (out.frequency >= torch.pi / 16).all() and (out.frequency <= torch.pi).all() and (out.decay > 0).all()
    # Different clips give different estimates (the Lambda Encoder reads its input).
    assert (out.frequency[0] - out.frequency[2]).abs().max() > 1e-4


def test_highpass_keeps_fast_modulation_and_removes_slow_change() -> None:
    hp = ZeroPhaseHighPass(torch.pi / 16, 129)

    def fast_share(name: str) -> float:
        x = logmel(name)[:, 10:90]  # inside the clip, away from its edges
        return float(hp(x).square().mean() / x.var(dim=1).mean())

    piano, speech = fast_share(CLIPS[0]), fast_share(CLIPS[2])
    assert piano < 0.15 < speech, (piano, speech)
