"""The modulation group's fresh test split draws from nothing the old splits used (packages,
SoundFont programs, kits, synthetic ranges, seed), keeps the tasks' definition (the rates are
read back by the textbook methods of ``test_corpora_modulation``), balances its rates exactly,
never lets a carrier name a class, and is read by the study's own cards with another root."""

import csv
import hashlib
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import hilbert

from aape_plugin.corpora import modulation_fresh as fresh
from aape_plugin.corpora import modulation_tasks as old
from aape_plugin.corpora.make_fresh_modulation_test import (
    drop_copies, fresh_dir, link_study, without_dropped_carriers, writable, write_fresh_lists,
)
from aape_plugin.corpora.make_study_corpus import DATA_PACKAGES, TOOL_LICENCES
from aape_plugin.corpora.modulation import MODULATION_RATES
from aape_plugin.corpora.render import SAMPLE_RATE, SOUNDFONT, read_sf2_samples
from aape_plugin.corpora.study_splits import KIT_GROUPS
from aape_plugin.data.study_corpus import study_dir
from tests.corpora.test_corpora_modulation import envelope_rate
from tests.data.conftest import DEMO

RATE_LABELS = {old.rate_label(r) for r in MODULATION_RATES}


def disjoint(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[1] < b[0] or b[1] < a[0]


def rate_of(label: str) -> float:
    return float(label.removesuffix("hz"))


@pytest.fixture(scope="module")
def inputs() -> tuple[dict, dict, object]:
    """Small stand-ins for the rendered carriers: decaying tones as notes of four programs, noise
    bursts as the hits of two kits (real rendering needs fluidsynth and the packages)."""
    rng = np.random.default_rng(5)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    notes = {f"timgm6mb_gm{p:03d}": [(pitch, 0.3 * np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * t) * np.exp(-t))
                                     for pitch in fresh.FRESH_NOTE_PITCHES] for p in (0, 9, 25, 40)}
    decay = np.exp(-np.arange(SAMPLE_RATE) / 600)
    hits = {kit: [(f"hit{i}", 0.3 * rng.standard_normal(SAMPLE_RATE) * decay, "pkg") for i in range(5)] for kit in ("timgm6mb_kit000_Standard", "lmms_drums")}
    family = {"timgm6mb_gm000": "keyboard", "timgm6mb_gm009": "mallet", "timgm6mb_gm025": "guitar", "timgm6mb_gm040": "string"}.get
    return notes, hits, family


@pytest.fixture(scope="module")
def made(inputs: tuple[dict, dict, object]) -> dict[str, list[old.ModulationClip]]:
    notes, hits, family = inputs
    with pytest.MonkeyPatch.context() as mp:  # fewer synthetic groups: the same code, quicker
        mp.setattr(fresh, "FRESH_NOISE_GROUPS", 4)
        mp.setattr(fresh, "FRESH_TONE_GROUPS", 4)
        return {"am": fresh.fresh_am_clips(notes), "vibrato": fresh.fresh_vibrato_clips(notes), "roll": fresh.fresh_roll_clips(hits, notes, family)}


def test_the_synthetic_ranges_lie_outside_the_old_ones() -> None:
    assert disjoint(fresh.FRESH_NOISE_WIDTH_RATIO, old.NOISE_WIDTH_RATIO)
    # The 7.8 kHz cap never narrows a fresh band into the old ratios.
    assert fresh.FRESH_NOISE_LOW_HZ[1] * fresh.FRESH_NOISE_WIDTH_RATIO[1] < old.NOISE_HIGH_CAP_HZ
    for family, ranges in fresh.FRESH_TONE_FAMILIES.items():
        assert disjoint(ranges["f0_hz"], old.TONE_F0_HZ), family
        assert disjoint(ranges["partials"], old.TONE_PARTIALS), family
        assert disjoint(ranges["tilt_db"], old.TONE_TILT_DB), family
    # Drawn, as the builders draw them.
    rng = np.random.default_rng(0)
    ratios = [high / low for low, high in (old.random_noise_band(rng, fresh.FRESH_NOISE_LOW_HZ, fresh.FRESH_NOISE_WIDTH_RATIO) for _ in range(500))]
    assert min(ratios) > old.NOISE_WIDTH_RATIO[1]
    for k in range(200):
        family, f0, partials, tilt = fresh.fresh_tone(k, rng)
        assert not old.TONE_F0_HZ[0] <= f0 <= old.TONE_F0_HZ[1]
        assert not old.TONE_PARTIALS[0] <= partials <= old.TONE_PARTIALS[1] and not old.TONE_TILT_DB[0] <= tilt <= old.TONE_TILT_DB[1]
    assert set(fresh.FRESH_NOTE_PITCHES).isdisjoint(old.NOTE_CARRIER_PITCHES)
    assert fresh.FRESH_SEED != 0  # the study corpus' seed


def test_the_sources_are_none_of_the_old_ones(made: dict[str, list[old.ModulationClip]]) -> None:
    old_packages = {*DATA_PACKAGES, *TOOL_LICENCES}
    assert old_packages.isdisjoint(fresh.FRESH_PACKAGES)
    assert "fluid-soundfont-gm" in old_packages | set(fresh.NOT_FRESH_SOUNDFONT_PACKAGES)
    assert set(fresh.FRESH_PACKAGES).isdisjoint(fresh.NOT_FRESH_SOUNDFONT_PACKAGES)
    assert Path(fresh.SOUNDFONT_FILE).name != SOUNDFONT.name
    # (SoundFont, program) pairs: every old note carrier is a FluidR3 program, every fresh one a TimGM6mb program.
    fresh_clips = [c for clips in made.values() for c in clips]
    assert {c.package for c in fresh_clips} <= {*fresh.FRESH_PACKAGES, "synthetic", "pkg"}
    assert all("FluidR3" not in c.source for c in fresh_clips)
    # Kits: the fresh kit groups are named after their package, which no old kit is.
    kit_groups = {c.group for c in made["roll"] if "kit" in c.group or c.group.startswith("lmms")}
    old_kits = {*KIT_GROUPS, *KIT_GROUPS.values(), "FluidR3 GM percussion", "Sonic Pi"}
    assert kit_groups and all(g.startswith(("timgm6mb_", "lmms_")) for g in kit_groups)
    assert not any(g.startswith(("timgm6mb_", "lmms_")) for g in old_kits)
    # Clip names live under fresh/, never under the old modulation/ folder.
    assert all(c.name.startswith("fresh/") for c in fresh_clips)


def test_the_old_corpus_groups_do_not_meet_the_fresh_ones() -> None:
    """On the built corpora: no carrier group of the fresh split is a group of any old task."""
    study_groups, fresh_groups = study_dir() / "groups.csv", fresh_dir() / "groups.csv"
    if not (study_groups.is_file() and fresh_groups.is_file()):
        pytest.skip(f"needs the built study corpus and fresh split ({study_groups}, {fresh_groups})")
    with open(study_groups) as f:
        old_groups = {row["group"] for row in csv.DictReader(f)}
    with open(fresh_groups) as f:
        rows = list(csv.DictReader(f))
    assert rows and old_groups.isdisjoint(row["group"] for row in rows)
    assert all(row["split"] == "test" and int(row["rates"]) >= 2 for row in rows)


def test_timgm6mb_shares_no_sample_with_fluidr3() -> None:
    """On the real SoundFonts (fetched by the build): no TimGM6mb sample is a FluidR3 sample."""
    tim = fresh_dir().with_name(fresh_dir().name + "-sources") / fresh.SOUNDFONT_PACKAGE / fresh.SOUNDFONT_FILE
    if not (tim.is_file() and SOUNDFONT.is_file()):
        pytest.skip(f"needs {tim} (python -m aape_plugin.corpora.make_fresh_modulation_test) and {SOUNDFONT}")

    def fingerprints(path: Path) -> set[str]:
        return {hashlib.md5(np.round(pcm[:2000] * 32768).astype(np.int16).tobytes()).hexdigest()
                for _, _, pcm in read_sf2_samples(path) if len(pcm) > 1000}

    ours = fingerprints(tim)
    assert len(ours) > 300 and ours.isdisjoint(fingerprints(SOUNDFONT))


def test_balanced_rates_use_every_rate_equally_and_never_twice_for_a_carrier() -> None:
    rng = np.random.default_rng(1)
    for per_carrier in (1, 2, 3, 7):
        rates = fresh.balanced_rates(28, per_carrier, rng)
        assert len(rates) == 28 and all(len(set(r)) == per_carrier for r in rates)
        assert set(Counter(x for r in rates for x in r).values()) == {4 * per_carrier}
    with pytest.raises(ValueError, match="multiple of 7.*20"):
        fresh.balanced_rates(20, 2, rng)
    with pytest.raises(ValueError, match="per_carrier.*8"):
        fresh.balanced_rates(7, 8, rng)
    assert len(fresh.whole_blocks(list(range(23)), rng)) == 21


def test_the_fresh_tasks_balance_their_rates_and_no_carrier_names_a_class(made: dict[str, list[old.ModulationClip]]) -> None:
    tasks = {"am": "study_am_rate", "vibrato": "study_vibrato_rate", "roll": "study_roll_rate"}
    for kind, clips in made.items():
        assert all(len(c.wave) == SAMPLE_RATE and c.task == tasks[kind] for c in clips), kind
        counts = Counter(c.label for c in clips)
        assert set(counts) == RATE_LABELS and len(set(counts.values())) == 1, (kind, counts)
        per_carrier: dict[str, set[str]] = defaultdict(set)
        per_group: dict[str, set[str]] = defaultdict(set)
        for c in clips:
            per_carrier[c.carrier].add(c.label)
            per_group[c.group].add(c.label)
        assert all(len(v) >= 2 for v in per_carrier.values()) and all(len(v) >= 2 for v in per_group.values()), kind
        assert len({c.name for c in clips}) == len(clips), kind
    assert {c.group for c in made["roll"] if "_gm" in c.group} == {"timgm6mb_gm000", "timgm6mb_gm009", "timgm6mb_gm025"}  # no string program


def test_the_fresh_split_is_deterministic_and_another_seed_differs(inputs: tuple[dict, dict, object]) -> None:
    notes = {g: v for g, v in list(inputs[0].items())[:3]}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fresh, "FRESH_NOISE_GROUPS", 1)
        a, b, other = fresh.fresh_am_clips(notes), fresh.fresh_am_clips(notes), fresh.fresh_am_clips(notes, seed=1)
    assert all(x.name == y.name and np.array_equal(x.wave, y.wave) for x, y in zip(a, b))
    assert [x.name for x in a] != [x.name for x in other]


def test_the_labels_are_the_rates_the_signals_carry(made: dict[str, list[old.ModulationClip]]) -> None:
    # AM of a wide noise band: the envelope's strongest frequency.
    for c in (c for c in made["am"] if c.group.startswith("widenoise")):
        assert envelope_rate(c.wave) == pytest.approx(rate_of(c.label), abs=0.6), c.name
    # Vibrato of a synthetic tone: the instantaneous frequency of one partial swings at the rate.
    # The partial is cut out with its sidebands (at +-rate), which needs f0 > 2 rate: all the
    # bright tones, the buzzes at the lower rates.
    read = 0
    for c in (c for c in made["vibrato"] if c.package == "synthetic"):
        f0 = float(c.source.split()[2])
        if f0 < 2.2 * rate_of(c.label):
            continue
        read += 1
        k = max(1, round(600 / f0))
        spectrum = np.fft.rfft(c.wave)
        freqs = np.fft.rfftfreq(len(c.wave), 1 / SAMPLE_RATE)
        spectrum[np.abs(freqs - k * f0) > 0.5 * f0] = 0
        partial = np.fft.irfft(spectrum, len(c.wave))
        inst = (np.diff(np.unwrap(np.angle(hilbert(partial)))) * SAMPLE_RATE / (2 * np.pi))[800:-800]
        n = 8 * len(inst)
        swing = np.abs(np.fft.rfft((inst - inst.mean()) * np.hanning(len(inst)), n))
        band = (np.fft.rfftfreq(n, 1 / SAMPLE_RATE) > 2) & (np.fft.rfftfreq(n, 1 / SAMPLE_RATE) < 60)
        assert np.fft.rfftfreq(n, 1 / SAMPLE_RATE)[band][np.argmax(swing[band])] == pytest.approx(rate_of(c.label), abs=1.0), c.name
    assert read >= 2 * len(MODULATION_RATES)
    # Rolls of hits: the strokes' envelope repeats at the rate (the stand-in notes here are
    # sustained tones, whose repetition has no onsets to read).
    for c in (c for c in made["roll"] if "/" in c.carrier):
        assert envelope_rate(c.wave, hi=45.0) == pytest.approx(rate_of(c.label), rel=0.15, abs=1.0), c.name


def test_a_carrier_the_writer_would_drop_is_left_out_and_the_rates_stay_balanced(inputs: tuple[dict, dict, object]) -> None:
    notes, hits, family = inputs
    clipped = np.clip(4.0 * hits["lmms_drums"][0][1], -1, 1)  # a clipped recording
    strokes = {"lmms_drums": [("clipped", clipped, "pkg"), *hits["lmms_drums"]], "timgm6mb_kit000_Standard": hits["timgm6mb_kit000_Standard"]}
    assert not writable(clipped) and writable(hits["lmms_drums"][1][1])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fresh, "FRESH_NOISE_GROUPS", 1)
        clips, left_out = without_dropped_carriers(lambda n, s: fresh.fresh_roll_clips(s, n, family), notes, strokes)
    assert left_out == ["lmms_drums/clipped"] and all(writable(c.wave) for c in clips)
    assert len(set(Counter(c.label for c in clips).values())) == 1


def test_the_study_cards_read_the_fresh_split_as_their_test_split(fairseq2_initialised: None, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from fairseq2.runtime.dependency import get_dependency_resolver

    from aape_plugin.recipes.dataset_opener import open_dataset_section
    from aape_plugin.recipes.sections import AudioDatasetSection

    study, out = tmp_path / "study-corpus", tmp_path / "study-corpus-fresh"
    study.mkdir()
    shutil.copyfile(DEMO / "stats.json", study / "stats.json")
    (study / "build_report.json").write_text(json.dumps({"build_version": 3, "seed": 0, "built": "then"}))
    (study / "pretrain.tsv").write_text("path\tnum_samples\n")
    for task in old.MODULATION_TASKS:
        with open(study / f"{task}.csv", "w", newline="") as f:
            csv.writer(f).writerows([["file_name", "label", "split"], ["modulation/a_4hz.flac", "4hz", "train"],
                                     ["modulation/b_6hz.flac", "6hz", "valid"], ["modulation/c_9hz.flac", "9hz", "test"]])
    out.mkdir()
    clips = [old.ModulationClip(f"fresh/{task}/x_{old.rate_label(r)}.flac", np.empty(0), task, old.rate_label(r), "g", "s", "p")
             for task in old.MODULATION_TASKS for r in MODULATION_RATES]
    counts = write_fresh_lists(out, clips)
    assert counts["study_am_rate"]["class_counts"] == {label: 1 for label in counts["study_am_rate"]["class_counts"]}

    link = link_study(out, study)
    assert link["linked"] and link["splits"]["study_roll_rate"] == {"train": 1, "valid": 1, "test (fresh)": 7}
    for task in old.MODULATION_TASKS:
        ds = open_dataset_section(get_dependency_resolver(), AudioDatasetSection(name=task, root=out))
        assert ds.splits == ["train", "valid", "test"], task
        assert [e.path.resolve() for e in ds.entries("train")] == [(study / "modulation/a_4hz.flac").resolve()]
        assert all(e.path.relative_to(out).parts[0] == "fresh" for e in ds.entries("test")) and len(ds.entries("test")) == 7
        assert ds.stats_file is not None and ds.stats_file.resolve() == (study / "stats.json").resolve()
    # The study's scripts read it through AAPE_STUDY_DIR: the folder passes the study corpus' check.
    from aape_plugin.data.study_corpus import STUDY_DIR_ENV, study_root

    monkeypatch.setenv(STUDY_DIR_ENV, str(out))
    assert study_root() == out

    # Without a built study corpus the link (and any earlier one) goes.
    assert not link_study(out, tmp_path / "nowhere")["linked"]
    assert not (out / "study_am_rate.csv").exists() and not (out / "study").exists() and not (out / "pretrain.tsv").is_symlink() and (out / "fresh_test" / "study_am_rate.csv").is_file()


def test_a_hit_copied_from_an_old_kit_is_not_fresh(inputs: tuple[dict, dict, object]) -> None:
    _, hits, _ = inputs
    old_hit = hits["lmms_drums"][0][1]
    shifted = 0.5 * np.concatenate([np.zeros(37), old_hit])[:SAMPLE_RATE]  # the same recording, later and quieter
    dropped: Counter[str] = Counter()
    kept, highest = drop_copies({"kit": [("copy", shifted, "pkg"), ("other", hits["lmms_drums"][1][1], "pkg")]}, [old_hit], dropped)
    assert [name for name, _, _ in kept["kit"]] == ["other"] and dropped == Counter({"copy of a study drum hit (pkg)": 1})
    assert highest < 0.5  # two independent noise bursts
