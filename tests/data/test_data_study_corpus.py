"""The study corpus' pure parts: group splits, grouping rules, the pool rule, the ``@study`` root
and its cards. CI never builds the corpus (it needs apt and twenty minutes); a tiny corpus made
of demo clips stands in for it where a card must open."""

import csv
import shutil
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from aape_plugin.data.demo import resolve_root
from aape_plugin.data.errors import AudioDataError
from aape_plugin.data.hub import get_audio_manifest_hub
from aape_plugin.corpora.make_study_corpus import (
    FLITE_VOICES,
    SOX_VARIANTS,
    TASKS,
    chunks,
    keyword_voices,
)
from aape_plugin.corpora.render import SAMPLE_RATE, read_sf2_samples
from aape_plugin.data.study_corpus import study_dir
from aape_plugin.corpora.study_splits import (
    GM_FAMILIES,
    gm_family,
    kit_group,
    object_word,
    pool_allows,
    split_groups,
    voice_group,
    word_groups,
)
from tests.data.conftest import DEMO
from tests.recipes.helpers import one_line_error, run_cli

NSYNTH_FAMILIES = {"bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal"}


def note_groups() -> dict[str, Counter[str]]:
    """The note tasks' real group structure: every labelled GM program with 49 notes."""
    return {f"gm{p:03d}": Counter({family: 49}) for p, family in GM_FAMILIES.items()}


def test_gm_programs_map_onto_the_eleven_nsynth_families() -> None:
    assert set(GM_FAMILIES.values()) == NSYNTH_FAMILIES
    assert gm_family(0) == "keyboard" and gm_family(73) == "flute" and gm_family(52) == "vocal"
    assert gm_family(88) is None and gm_family(47) is None  # a pad and timpani: pool only
    assert min(Counter(GM_FAMILIES.values()).values()) >= 3  # every family can reach all three splits


def test_group_split_is_disjoint_covers_every_family_and_is_deterministic() -> None:
    groups = note_groups()
    split = split_groups(groups, test=0.2, valid=0.15, seed=1, min_test=300)
    assert set(split) == set(groups) and set(split.values()) == {"train", "valid", "test"}
    for name in ("train", "valid", "test"):
        assert {f for g, c in groups.items() if split[g] == name for f in c} == NSYNTH_FAMILIES, name
    test_clips = sum(sum(c.values()) for g, c in groups.items() if split[g] == "test")
    assert test_clips >= 300 and 5 * test_clips >= 49 * len(groups)
    assert split == split_groups(groups, test=0.2, valid=0.15, seed=1, min_test=300)
    assert split != split_groups(groups, test=0.2, valid=0.15, seed=2, min_test=300)


def test_group_split_keeps_a_training_group_for_every_label() -> None:
    # 'rare' has two groups: test cannot take one without starving valid or train.
    groups = {"a": Counter(x=10), "b": Counter(x=10), "c": Counter(x=10), "d": Counter(x=10), "r1": Counter(rare=5), "r2": Counter(rare=5)}
    split = split_groups(groups, test=0.5, valid=0.2, seed=0)
    assert "test" not in {split["r1"], split["r2"]}
    assert "train" in {split["r1"], split["r2"]} and "train" in {split[g] for g in "abcd"}


def test_group_split_lands_near_the_target_with_groups_of_very_different_sizes() -> None:
    # Drum-kit-like sizes: one group of 274 clips, many of 5-114.
    sizes = [274, 114, 100, 82, 68, 25, 24, 17, 13, 11, 11, 10, 5, 32]
    groups = {f"kit{i}": Counter({"kick": n // 2, "snare": n - n // 2}) for i, n in enumerate(sizes)}
    total = sum(sizes)
    for seed in range(10):
        split = split_groups(groups, test=0.3, valid=0.15, seed=seed, min_test=300, min_valid=100)
        count = Counter()
        for g, s in split.items():
            count[s] += sum(groups[g].values())
        assert 300 <= count["test"] <= 300 + 114 and 100 <= count["valid"] <= 100 + 114, (seed, count)
        assert count["train"] >= total - 300 - 100 - 2 * 114, (seed, count)


def test_group_split_honours_minimum_test_size() -> None:
    groups = {f"kit{i}": Counter(kick=10, snare=10, hihat=10) for i in range(20)}
    split = split_groups(groups, test=0.1, valid=0.1, seed=3, min_test=300)
    assert sum(30 for g in groups if split[g] == "test") >= 300


def test_pool_never_takes_a_held_out_group() -> None:
    held_out = {"study_drums": {"Millo"}, "study_keywords": {"espeak-ng:m3"}}
    assert not pool_allows([("study_drums", "Millo")], held_out)
    assert not pool_allows([("study_keywords", "espeak-ng:m3")], held_out)
    assert pool_allows([("study_drums", "GMRockKit"), ("study_language", "ball")], held_out)
    assert pool_allows([], held_out)


def test_voice_groups_put_accents_and_sox_variants_with_their_speaker() -> None:
    assert voice_group("espeak-ng:en-gb-x-rp+f4") == voice_group("espeak-ng:en-us+f4") == "espeak-ng:f4"
    assert voice_group("espeak-ng:en-us+m3") != voice_group("espeak-ng:en-us+m4")
    assert {voice_group(f"flite:slt@{v}" if v else "flite:slt") for v in SOX_VARIANTS} == {"flite:slt"}


def test_keyword_voices_are_deterministic_and_each_speaker_has_two_accents_or_five_sox_variants() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (the builder installs it)")
    voices = keyword_voices(0)
    assert voices == keyword_voices(0)
    per_group = Counter(voice_group(v) for v in voices)
    assert {per_group[f"flite:{name}"] for name in FLITE_VOICES} == {len(SOX_VARIANTS)}
    assert {n for g, n in per_group.items() if g.startswith("espeak-ng:")} == {2}


def test_kits_sharing_recordings_are_one_group() -> None:
    assert kit_group("The Black Pearl 1.0") == kit_group("AVL Red Zeppelin 4") == kit_group("AVL Black Pearl 4")
    assert kit_group("Millo_MultiLayered2") == kit_group("Millo-Drums_v.1")
    assert kit_group("GMRockKit") == "GMRockKit"


def test_word_groups_join_themes_numbering_plurals_and_shared_files() -> None:
    assert object_word("tv_ball") == object_word("xmas_ball") == object_word("robot_workshop_ball") == "ball"
    assert object_word("pizzeria_olive2") == "olive" and object_word("tux-arrows") == "arrows"
    groups = word_groups([
        ("ball", "fr/patate_ballon.wav"), ("tv_ball", "fr/tv_ballon.wav"), ("tux-arrow", "fr/arrow.wav"),
        ("tux-arrows", "fr/arrows.wav"), ("hat", "fr/chapeau.wav"), ("tux-bow", "fr/robin_arc.wav"),
        ("egypt_girl", "ca/noia.ogg"), ("egypt_woman", "ca/noia.ogg"),
    ])
    assert groups["ball"] == groups["tv_ball"] == "ball"
    assert groups["tux-arrow"] == groups["tux-arrows"] == "arrow"
    assert groups["egypt_girl"] == groups["egypt_woman"]  # one recording used for two objects
    assert len({groups["hat"], groups["ball"], groups["tux-bow"], groups["egypt_girl"]}) == 4


def test_pool_chunks_are_one_to_four_seconds() -> None:
    rng = np.random.default_rng(0)
    for seconds in (0.2, 1.0, 3.9, 9.5, 60.0):
        pieces = chunks(rng.standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32) * 0.1)
        assert pieces and all(SAMPLE_RATE <= len(p) <= 4 * SAMPLE_RATE for p in pieces), seconds
    assert len(chunks(np.ones(60 * SAMPLE_RATE, dtype=np.float32) * 0.1)) == 8  # capped per sound


def write_sf2(path: Path, samples: dict[str, np.ndarray], rate: int) -> None:
    """A minimal SoundFont 2 file: 16-bit sample data and the sample headers."""
    pcm, headers, start = b"", b"", 0
    for name, wave in samples.items():
        data = (wave * 32767).astype("<i2").tobytes() + b"\0" * 92  # 46 zero samples after each, as the format asks
        headers += struct.pack("<20sIIIIIBbHH", name.encode(), start, start + len(wave), start, start + len(wave), rate, 60, 0, 0, 1)
        start += len(data) // 2
        pcm += data
    headers += struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)

    def chunk(cid: bytes, body: bytes) -> bytes:
        return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")

    body = b"sfbk" + chunk(b"LIST", b"INFO" + chunk(b"ifil", struct.pack("<HH", 2, 1))) \
        + chunk(b"LIST", b"sdta" + chunk(b"smpl", pcm)) + chunk(b"LIST", b"pdta" + chunk(b"shdr", headers))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_soundfont_samples_are_read_back_exactly(tmp_path: Path) -> None:
    import soundfile

    kick, _ = soundfile.read(str(DEMO / "drums" / "Audiophob_Kick.flac"), dtype="float32")
    snare = kick[::-1].copy()
    write_sf2(tmp_path / "kit.sf2", {"36-Kick-1": kick, "38-Snare-1": snare}, 44_100)
    read = read_sf2_samples(tmp_path / "kit.sf2")
    assert [(n, r) for n, r, _ in read] == [("36-Kick-1", 44_100), ("38-Snare-1", 44_100)]
    assert np.abs(read[0][2] - kick).max() < 1e-4 and np.abs(read[1][2] - snare).max() < 1e-4
    (tmp_path / "not.sf2").write_bytes(b"RIFF\0\0\0\0WAVE")
    with pytest.raises(ValueError, match="not a SoundFont 2 file"):
        read_sf2_samples(tmp_path / "not.sf2")


# ----------------------------------------------------------------------------- @study root and cards


def test_study_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AAPE_STUDY_DIR", raising=False)
    assert study_dir() == Path.home() / ".cache" / "aape-fairseq2" / "study-corpus"
    monkeypatch.setenv("AAPE_STUDY_DIR", str(tmp_path / "corpus"))
    assert study_dir() == tmp_path / "corpus"


def test_missing_study_corpus_names_the_build_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AAPE_STUDY_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(AudioDataError, match=r"not built at .*nowhere.*python -m aape_plugin\.corpora\.make_study_corpus"):
        resolve_root("@study")
    assert resolve_root("@studyx") == Path("@studyx")  # only the alias itself, or alias/sub/folder


@pytest.fixture()
def tiny_study_corpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The study corpus' layout, filled with demo clips, as ``$AAPE_STUDY_DIR``."""
    root = tmp_path / "study"
    shutil.copytree(DEMO / "notes", root / "notes")
    shutil.copyfile(DEMO / "stats.json", root / "stats.json")
    with open(DEMO / "demo_pitch.csv") as f:
        rows = list(csv.DictReader(f))
    for task in TASKS:
        with open(root / f"{task}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file_name", "label", "split"])
            writer.writerows([r["file_name"], r["label"], r["split"]] for r in rows)
    (root / "pretrain.tsv").write_text("path\tnum_samples\n" + "".join(f"{r['file_name']}\t16000\n" for r in rows if r["split"] == "train"))
    monkeypatch.setenv("AAPE_STUDY_DIR", str(root))
    return root


def test_study_cards_open_through_the_hub(fairseq2_initialised: None, tiny_study_corpus: Path) -> None:
    hub = get_audio_manifest_hub()
    for task in TASKS:
        ds = hub.open_dataset(task)
        assert ds.splits == ["train", "valid", "test"] and ds.label_names, task
        assert all(e.path.is_relative_to(tiny_study_corpus) for e in ds.entries("test"))
    pool = hub.open_dataset("study_pool")
    assert pool.label_names is None and pool.stats_file == tiny_study_corpus / "stats.json"


def test_a_recipe_on_a_missing_study_corpus_says_how_to_build_it(tmp_path: Path) -> None:
    proc = run_cli("recipe", "run", "aape_linear_probe", str(tmp_path / "probe"), "--preset", "study_pitch", "--no-rich",
                   "--config", "model.kind=logmel", env={"AAPE_STUDY_DIR": str(tmp_path / "empty")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "The study corpus is not built at" in one_line_error(proc) and "make_study_corpus" in one_line_error(proc)
