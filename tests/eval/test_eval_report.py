"""The comparison report on real probe runs: its table, and the paired differences it computes
from the per-clip predictions each run stores."""

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aape_plugin.eval import report as report_module
from aape_plugin.eval.report import main
from tests.recipes.helpers import REPO

SOURCES = {"demo": {"checkpoint": "aape_tiny_demo"}, "random0": {"arch": "aape_tiny", "init_seed": 0},
           "random1": {"arch": "aape_tiny", "init_seed": 1}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, fairseq2_initialised: None) -> dict[str, Path]:
    """Three real probe runs on the demo drums (24 test clips), written as ``aape_linear_probe``
    writes them (the recipe's own functions, in this process to save the start-up of three):
    the shipped encoder and two random initialisations of its architecture (two seeds of one model)."""
    from fairseq2.device import CPU
    from fairseq2.gang import create_fake_gangs

    from aape_plugin.data.hub import get_audio_manifest_hub
    from aape_plugin.data.stats import FeatureStats
    from aape_plugin.eval.embedding_cache import EmbeddingCache
    from aape_plugin.eval.linear_eval import linear_evaluation, write_results
    from aape_plugin.eval.probe import ProbeSettings
    from aape_plugin.eval.protocol import plan_rounds
    from aape_plugin.recipes.linear_probe import EncoderSourceSection, build_embedder

    root = tmp_path_factory.mktemp("report")
    dataset = get_audio_manifest_hub().open_dataset("demo_drums")
    assert dataset.stats_file is not None
    labels_of = {s: [e.labels[0] for e in dataset.entries(s)] for s in dataset.splits}
    rounds = plan_rounds(dataset.splits, labels_of, folds=None, valid_fraction=0.1, seed=2)
    for name, source in SOURCES.items():
        embedder, key = build_embedder(EncoderSourceSection(**source), lambda: FeatureStats.load(dataset.stats_file), CPU)
        with torch.inference_mode(False), torch.enable_grad():
            payload = linear_evaluation(dataset, embedder, key, rounds, create_fake_gangs(CPU), clip_seconds=1.0,
                                        settings=ProbeSettings(penalties=[1.0]), cache=EmbeddingCache(root / "cache"),
                                        num_parallel_calls=1)
        assert payload is not None
        write_results(root / name, payload)
    return {name: root / name for name in SOURCES}


def report_of(*args: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def accuracy(run: Path) -> float:
    return json.loads((run / "results.json").read_text())["summary"]["mean"]


def interval(line: str) -> tuple[float, float, float]:
    found = re.search(r"([+-]\d+\.\d) \[([+-]\d+\.\d), ([+-]\d+\.\d)\] points", line)
    assert found, line
    return float(found[1]), float(found[2]), float(found[3])


def test_report_pairs_two_runs_on_the_same_clips(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = report_of(runs["demo"], runs["random0"], "--out", tmp_path / "report.md", capsys=capsys)
    assert code == 0
    (line,) = [x for x in out.splitlines() if x.startswith("- demo_drums:")]
    assert line.startswith("- demo_drums: asset aape_tiny_demo minus random aape_tiny (seed 0):")
    estimate, low, high = interval(line)
    # The difference of the two runs' accuracies, with a bootstrap interval over the 24 clips around it.
    assert estimate == pytest.approx(100 * (accuracy(runs["demo"]) - accuracy(runs["random0"])), abs=0.051)
    assert low < estimate < high and high - low > 5.0
    assert "24 test clips, paired bootstrap over clips" in line and "pre-training seed" in line
    assert (tmp_path / "report.md").read_text() == out


def test_runs_under_one_label_are_seeds_of_one_model(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = report_of(runs["demo"], runs["random0"], runs["random1"], "--label", f"{runs['random0']}=random",
                             "--label", f"{runs['random1']}=random", capsys=capsys)
    assert code == 0
    mean_random = (accuracy(runs["random0"]) + accuracy(runs["random1"])) / 2
    assert f"| random | {100 * mean_random:.1f} +- " in out and "(2 runs) |" in out
    (line,) = [x for x in out.splitlines() if x.startswith("- demo_drums:")]
    estimate, low, high = interval(line)
    assert estimate == pytest.approx(100 * (accuracy(runs["demo"]) - mean_random), abs=0.051)
    assert "1 and 2 runs (seeds); seeds and clips, Student's t" in line and low < estimate < high


def test_report_refuses_to_pair_runs_scored_on_different_clips(runs: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    payload = json.loads((runs["demo"] / "results.json").read_text())
    test = payload["predictions"]["test"]["test"]
    # The same run as if one test clip had been skipped as unreadable (23 clips, not 24), and as if
    # measured on another copy of the data (24 clips under other paths: only the names differ).
    skipped = {key: test[key][:3] + test[key][4:] for key in ("clips", "labels")} | {"predicted": [r[:3] + r[4:] for r in test["predicted"]]}
    elsewhere = test | {"clips": [f"/elsewhere/{Path(c).name}" for c in test["clips"]]}
    for name, changed, where in (("elsewhere", elsewhere, "first at row 0 of 24 and 24"), ("skipped", skipped, "first at row 3 of 23 and 24")):
        payload["predictions"]["test"]["test"] = changed
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(payload))
        code, out, _ = report_of(tmp_path / name, runs["random0"], capsys=capsys)
        assert code == 0  # the table still stands
        (line,) = [x for x in out.splitlines() if x.startswith("- demo_drums:")]
        assert "not paired: Cannot pair" in line and f"their clips differ ({where})" in line, line
        assert "points" not in line


def test_the_same_model_twice_is_one_line(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report_of(runs["demo"], runs["demo"] / "results.json", capsys=capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "evaluate the same model (asset aape_tiny_demo) on demo_drums" in err
    code, _, err = report_of(runs["demo"].parent / "nothing", capsys=capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nothing does not exist" in err


def test_the_commands_the_report_advertises_exist() -> None:
    doc = report_module.__doc__ or ""
    modules = re.findall(r"python -m ([\w.]+)", doc)
    assert modules == ["aape_plugin.eval.report"]
    for module in modules:
        importlib.import_module(module)
    assert "fairseq2 recipe run" not in doc  # the report is no recipe
    proc = subprocess.run([sys.executable, "-m", "aape_plugin.eval.report", "--help"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and "--label RUN_DIR=NAME" in proc.stdout


def test_clip_scores_average_probe_seeds_and_join_folds() -> None:
    result = {"predictions": {
        "fold1": {"test": {"clips": ["a", "b"], "labels": [0, 1], "predicted": [[0, 1], [1, 1]]}},
        "fold2": {"test": {"clips": ["c"], "labels": [2], "predicted": [[2], [2]]}},
    }}
    scores = report_module.clip_scores(result)
    assert scores is not None and scores.clips == ["a", "b", "c"]
    np.testing.assert_allclose(scores.correct, [0.5, 1.0, 1.0])
    finetuned = report_module.clip_scores({"predictions": {"test": {"clips": ["a", "b"], "labels": [0, 1], "predicted": [0, 0]}}})
    assert finetuned is not None and finetuned.correct.tolist() == [1.0, 0.0]
    assert report_module.clip_scores({"metric": "mAP"}) is None
