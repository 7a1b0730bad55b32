"""Figure 4 on clips of any length, its errors, where it writes, what it says about the Lambda
Encoder, and the frequency unit Figures 2 and 4 share."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from aape_plugin.figures import lambda_estimates as figure4
from aape_plugin.figures import window_gradients as figure2
from tests.data.conftest import DEMO
from tests.recipes.helpers import REPO

NOTE = DEMO / "notes" / "gm040_p060.flac"


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = figure4.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def cut(source: Path, seconds: float, out: Path) -> Path:
    """``seconds`` of a real demo clip: its start, or the clip played again and again."""
    samples, rate = sf.read(source)
    n = int(seconds * rate)
    sf.write(out, np.resize(samples, n), rate)
    return out


def test_a_clip_shorter_than_a_patch_or_a_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = cut(NOTE, 0.1, tmp_path / "short.flac")
    for args, expected in (
        (["--audio", short], f"error: {short} is 0.10 s long, shorter than one time patch (16 frames, 0.16 s): give a longer clip"),
        (["--audio", NOTE, "--seconds", "0.1"], f"error: {NOTE} (its first 0.1 s) is 0.10 s long, shorter than one time patch"),
        (["--audio", tmp_path / "missing.flac"], f"error: --audio {tmp_path / 'missing.flac'} does not exist."),
        (["--audio", tmp_path], f"error: --audio {tmp_path} is a folder, not an audio file."),
        (["--audio", NOTE, "--checkpoint", str(tmp_path)], f"error: {tmp_path} is not a pre-training run"),
    ):
        code, out, err = run(capsys, *args, "--out", tmp_path / "f.png")
        # (fairseq2's progress display of a model load may leave an empty line before it)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.strip().startswith(expected), err
    assert not list(tmp_path.glob("f.*"))  # nothing written
    with pytest.raises(SystemExit) as refused:  # argparse's one line, exit code 2
        figure4.main(["--audio", str(NOTE), "--seconds", "0"])
    assert refused.value.code == 2 and "--seconds must be positive, got 0" in capsys.readouterr().err


def test_a_30_second_clip_is_drawn_with_pooled_patches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long = cut(NOTE, 30.0, tmp_path / "long.flac")
    est = figure4.estimate("aape_tiny_demo", [long])
    fig, pooled = figure4.figure(est, "long.flac")
    assert est["decay"].size(1) == 187 and pooled == 5  # 187 patches of 0.16 s in at most 40 boxes
    boxes = [line for line in fig.axes[1].lines if line.get_linestyle() == "-" and len(line.get_xdata()) == 5]  # box outlines
    assert len(boxes) == 38 <= figure4.MAX_BOXES
    assert "187 time patches, 5 pooled per box (0.80 s)" in fig.axes[0].get_title()
    code, out, _ = run(capsys, "--audio", long, "--out", tmp_path / "long.png")
    summary = json.loads((tmp_path / "long.json").read_text())
    assert code == 0 and summary["num_patches"] == 187 and summary["patches_per_box"] == 5
    # A clip of a few patches keeps one box per patch.
    assert figure4.patches_per_box(6) == 1 and figure4.patches_per_box(40) == 1 and figure4.patches_per_box(41) == 2


def test_the_figure_labels_its_colours_band_and_units(capsys: pytest.CaptureFixture[str]) -> None:
    est = figure4.estimate("aape_tiny_demo", [NOTE])
    fig, _ = figure4.figure(est, "note")
    mel, decay, freq, colour_bar = fig.axes
    assert colour_bar.get_ylabel() == "log-mel (normalised)"
    legend = [t.get_text() for t in freq.get_legend().get_texts()]
    assert legend == ["band's lower edge 3.12 Hz (patch-rate Nyquist)", "band's upper edge 50 Hz (frame-rate Nyquist)"]
    assert freq.get_ylabel() == "frequency beta (Hz at 100 frames/s)"
    # The shipped card carries no run configuration; its weights say the Lambda Encoder was trained.
    assert "Lambda Encoder: trained (its weights moved from their initialisation)" in mel.get_title()
    # Figure 2 works in the kernel's rad/frame and shows the same Hz at the same frame rate.
    fig2 = figure2.figure(figure2.compute_curves(num_taps=65, num_points=201), 1.2)
    labels = [a.get_xlabel() for ax in fig2.axes for a in (ax, *ax.child_axes)]  # (the Hz axes are the top ones)
    assert "omega (Hz at 100 log-mel frames/s)" in labels and "input frequency omega (rad/frame)" in labels
    assert figure2.to_hz(est["band_hz"][0] * 2 * np.pi / 100) == pytest.approx(est["band_hz"][0])
    assert "(19.1 Hz)" in fig2.axes[0].get_title()


def test_the_title_says_whether_the_lambda_encoder_was_trained(quick_run: Path, tmp_path: Path) -> None:
    assert figure4.lambda_training("aape_tiny_demo") == "unknown (an asset card or file carries no run configuration)"
    # The quick preset keeps the pre-training default, the paper's: the Lambda Encoder trained.
    trained = "trained (lambda_lr_scale 1)"
    for source in (quick_run, quick_run / "checkpoints", quick_run / "checkpoints" / "step_10", quick_run / "checkpoints" / "step_10" / "model"):
        assert figure4.lambda_training(str(source)) == trained
    est = figure4.estimate(str(quick_run), [NOTE])
    fig, _ = figure4.figure(est, "note")
    assert f"Lambda Encoder: {trained}" in fig.axes[0].get_title()
    # The same run as if the Lambda Encoder had been kept frozen, and at a tenth of the learning rate.
    config = (quick_run / "config.yaml").read_text()
    assert "lambda_lr_scale: 1.0" in config
    for scale, expected in (("0.0", "frozen at initialisation (lambda_lr_scale 0)"), ("0.1", "trained (lambda_lr_scale 0.1)")):
        run = tmp_path / scale
        (run / "checkpoints").mkdir(parents=True)
        (run / "config.yaml").write_text(config.replace("lambda_lr_scale: 1.0", f"lambda_lr_scale: {scale}"))
        assert figure4.lambda_training(str(run)) == expected
    # Without a run configuration the weights say it: a fresh encoder's never moved.
    from aape_plugin.models.archs import ARCHS
    from aape_plugin.models.factory import create_encoder

    fresh = create_encoder(ARCHS["aape_tiny"]().encoder, drop_path=0.0).stem
    assert figure4.lambda_training(str(tmp_path / "weights.safetensors"), fresh).startswith("at initialisation")


def test_the_default_output_is_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    shipped = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (REPO / "docs" / "figures").glob("figure[24]_*")}
    (tmp_path / "docs" / "figures").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "--audio", NOTE)[0] == 0
    assert figure2.main(["--num-taps", "65"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "figure2_window_gradients.json", "figure2_window_gradients.png", "figure4_lambda_estimates.json", "figure4_lambda_estimates.png"]
    assert not any((tmp_path / "docs" / "figures").iterdir())
    assert shipped == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in shipped}


def test_the_makefile_still_writes_the_shipped_figures() -> None:
    target = (REPO / "Makefile").read_text().split("\nfigures:")[1].split("\n\n")[0]
    assert "window_gradients --out docs/figures/figure2_window_gradients.png" in target
    assert "lambda_estimates --checkpoint aape_tiny_demo --out docs/figures/figure4_lambda_estimates.png" in target
