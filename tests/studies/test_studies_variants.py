"""The pre-training variants: one run per option beside the plain stem, each the study's
pre-training with exactly its own overrides, which the recipe accepts."""

from pathlib import Path

import yaml

from studies.variants import REFERENCE, VARIANTS, runs_of
from tests.recipes.helpers import run_cli


def test_every_variant_is_the_study_preset_with_its_own_overrides(tmp_path: Path) -> None:
    runs = runs_of(3000, [1, 2])
    assert len(runs) == 2 * (len(VARIANTS) + 1) and {r.variant for r in runs} == {*VARIANTS, REFERENCE}
    for run in runs:
        command = run.job(tmp_path).command
        assert command[command.index("--preset") + 1] == "study" and command[command.index("--model-arch") + 1] == run.arch
        assert f"common.seed={run.seed}" in command and "regime.num_steps=3000" in command
        extra = [a for a in command if a.startswith(("optimizer.config.lambda", "model.config_overrides", "criterion."))]
        assert extra == list(VARIANTS.get(run.variant, ())), run.variant
    assert len({r.folder(tmp_path) for r in runs}) == len(runs)


def test_the_recipe_accepts_every_override() -> None:
    # One configuration with every option set: the recipe parses and validates it.
    proc = run_cli("recipe", "run", "aape_pretrain", "--preset", "study", "--dump-config", "--config",
                   "optimizer.config.lambda_lr_scale=0.1",
                   "model.config_overrides={encoder: {stem: {pole_mode: offsets, fusion_balance: true, decay_range: 3.0}}, "
                   "targets: {alias_features: true}}", "criterion.config.alias_weight=0.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = yaml.safe_load(proc.stdout)
    assert config["optimizer"]["config"]["lambda_lr_scale"] == 0.1
    assert config["model"]["config_overrides"]["encoder"]["stem"] == {"pole_mode": "offsets", "fusion_balance": True, "decay_range": 3.0}
    assert config["model"]["config_overrides"]["targets"] == {"alias_features": True}
    assert config["criterion"]["config"]["alias_weight"] == 0.5


def test_outcomes_pack_one_bit_per_clip_and_come_back_unchanged() -> None:
    from dataclasses import dataclass

    from studies.outcomes import load, pack_bits, store, unpack_bits

    bits = [1, 0, 1, 1, 0, 0, 0, 1, 1]
    assert unpack_bits(pack_bits(bits), len(bits)) == bits and len(pack_bits([1] * 400)) <= 68

    @dataclass
    class Score:
        valid: float
        test: float
        clips: list[str]
        correct: list[int]

    scores = {"a": {"t": Score(0.5, 0.25, ["/c/x.flac", "/c/y.flac"], [1, 0])},
              "b": {"t": Score(0.7, 0.5, ["/c/x.flac", "/c/y.flac"], [0, 1])}}
    from pathlib import Path

    stored = store(scores, corpus=Path("/c"))
    assert stored["clips"] == {"t": ["x.flac", "y.flac"]}
    back = load(stored)
    assert back["b"]["t"].correct == [0, 1] and back["a"]["t"].test == 0.25 and back["a"]["t"].clips == ["x.flac", "y.flac"]
    scores["b"]["t"].clips = ["/c/y.flac", "/c/x.flac"]
    import pytest

    with pytest.raises(ValueError, match="cannot be paired"):
        store(scores, corpus=Path("/c"))


def test_a_reading_reuses_only_the_stored_models_it_lacks_and_the_published_ones_cover_the_visible_target() -> None:
    import json

    from studies.experiments import RANDOM_AAPE, VISIBLE_ALIAS_TARGET
    from studies.outcomes import Outcome, load, with_reused

    new = Outcome(0.9, 0.8, ["x.flac"], [1])
    old = Outcome(0.1, 0.2, ["x.flac"], [0])
    merged = with_reused({"a": {"t": new}}, {"a": {"t": old}, "b": {"t": old}, "c": {"t": old}}, wanted={"a", "b"})
    assert merged == {"a": {"t": new}, "b": {"t": old}}
    # The visible alias target measures alias_visible only: everything else it compares is in the reused reading.
    docs = Path(__file__).resolve().parents[2] / "docs"
    stored = {k: v for name in VISIBLE_ALIAS_TARGET.reuses for k, v in load(json.loads((docs / f"{name}.json").read_text())).items()}
    for a, b in VISIBLE_ALIAS_TARGET.comparisons:
        assert a == "alias_visible"
        names = [f"{b}, seed {s}" if b == RANDOM_AAPE else f"{b}, 3000 steps, seed {s}" for s in (1, 2, 3)]
        assert all(n in stored for n in names), names
