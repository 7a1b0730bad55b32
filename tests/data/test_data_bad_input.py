"""Bad input behaves as a user expects: odd formats work, unreadable clips are skipped,
counted and named, too many of them stop the run with a summary, malformed lists fail at
start with the line number."""

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from fairseq2.datasets import DatasetError
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs

from aape_plugin.data.audio import AudioReadError, load_waveform
from aape_plugin.data.audioset import read_class_labels, read_segments
from aape_plugin.data.clip_report import forget_named
from aape_plugin.data.clips import ClipEntry, ManifestError
from aape_plugin.data.features import LogMelConfig
from aape_plugin.data.manifest import read_evar_csv, read_tsv_manifest
from aape_plugin.data.reader import AudioReaderOptions, TooManyBadClipsError, create_audio_reader
from aape_plugin.data.stats import FeatureStats
from tests.data.conftest import SHORT_CLIPS

STATS = FeatureStats(mean=-7.0, std=6.8)


def test_each_file_of_the_corpus_is_decoded_or_refused_with_its_name(odd_corpus: dict) -> None:
    for name, (path, decodable) in odd_corpus.items():
        if decodable:
            wave = load_waveform(path)
            assert wave.dim() == 1 and torch.isfinite(wave).all(), name
            if name in SHORT_CLIPS:
                assert wave.numel() == SHORT_CLIPS[name], name
            else:
                assert 2_000 < wave.numel() <= 16_100, name
        else:
            with pytest.raises(AudioReadError) as info:
                load_waveform(path)
            assert str(path) in str(info.value), name


def test_odd_formats_give_the_same_features_as_the_original(odd_corpus: dict) -> None:
    from aape_plugin.data.features import LogMel
    from tests.data.conftest import REAL_CLIP

    logmel = LogMel()
    reference = logmel(load_waveform(REAL_CLIP))
    for name in ("pcm_24.wav", "float64.wav", "rate_96000.wav", "ogg_vorbis.ogg"):
        mel = logmel(load_waveform(odd_corpus[name][0]))
        loud = reference > reference.max() - 40
        assert (mel - reference)[loud].abs().median() < 0.2, name


def reader_over(paths: list[Path], **options: object):
    entries = [ClipEntry(p) for p in paths]
    opts = AudioReaderOptions(batch_size=4, num_frames=96, crop="centre", shuffle=False, num_parallel_calls=2, **options)
    return create_audio_reader(entries, create_fake_gangs(CPU), LogMelConfig(), STATS, opts, name="corpus")


def test_reader_skips_counts_and_names_unreadable_clips(odd_corpus: dict, caplog: pytest.LogCaptureFixture) -> None:
    forget_named()
    paths = [p for p, _ in odd_corpus.values()]
    bad = [str(p) for p, ok in odd_corpus.values() if not ok]
    reader = reader_over(paths, max_bad_fraction=1.0)
    with caplog.at_level(logging.WARNING, logger="aape_plugin.data"):
        batches = [b for group in reader for b in group]
        reader.reset()  # a second epoch meets the same clips: counted again, not named again
        batches += [b for group in reader for b in group]
    read = [p for b in batches for p in b.paths]
    assert sorted(read) == sorted(2 * [str(p) for p, ok in odd_corpus.values() if ok])
    assert sum(b.num_skipped for b in batches) == 2 * len(bad) == reader.num_skipped
    assert sorted(reader.skipped) == sorted(bad)
    for path in bad:
        assert caplog.text.count(f"Skipping unreadable clip {path}: ") == 1, path
    assert f"{odd_corpus['missing.wav'][0]}: no such file" in caplog.text
    assert "text.wav: not a readable audio file" in caplog.text
    for name, length in SHORT_CLIPS.items():
        if length < 201:
            assert caplog.text.count(f"{odd_corpus[name][0]} holds only {length} sample(s) at 16000 Hz") == 1, name
    for b in batches:
        assert b.features.shape[1:] == (1, 80, 96) and torch.isfinite(b.features).all()
    short = {str(odd_corpus[name][0]): length for name, length in SHORT_CLIPS.items()}
    for b in batches:
        for path, frames in zip(b.paths, b.num_frames.tolist()):
            if path in short:  # one frame per 10 ms hop, plus one: 1 for the shortest clips
                assert frames == short[path] // 160 + 1, path


def test_too_many_unreadable_clips_stop_the_run_with_a_summary(odd_corpus: dict) -> None:
    paths = [p for p, _ in odd_corpus.values()]
    bad = [str(p) for p, ok in odd_corpus.values() if not ok]
    reader = reader_over(paths, max_bad_fraction=0.1, min_clips_before_failing=5)
    with pytest.raises(TooManyBadClipsError) as info:
        for _ in reader:
            pass
    message = str(info.value)
    found = re.fullmatch(
        r"corpus: (\d+) of (\d+) clips read so far \(([\d.]+)%\) could not be decoded, more than `max_bad_fraction` = 0\.1\. "
        r"First ones: (.+)\. Fix or remove them from the manifest, or raise the limit \(e\.g\. --config dataset\.max_bad_fraction=0\.05\)\.",
        message,
    )
    assert found, message
    num_bad, seen = int(found.group(1)), int(found.group(2))
    assert seen >= 5 and num_bad / seen > 0.1 and found.group(3) == f"{100 * num_bad / seen:.1f}"
    # The first unreadable clips, in reading order (no shuffle), each with its reason.
    listed = found.group(4).split("; ")
    assert [item.split(" (", 1)[0] for item in listed] == bad[: min(num_bad, 5)]
    assert all(item.endswith(")") and " (" in item for item in listed)


def test_a_few_bad_clips_under_the_limit_do_not_stop_the_run(odd_corpus: dict) -> None:
    good = [p for p, ok in odd_corpus.values() if ok] * 6
    paths = good + [odd_corpus["text.wav"][0]]
    batches = [b for group in reader_over(paths, max_bad_fraction=0.05) for b in group]
    assert sum(b.batch_size for b in batches) == len(good)


def test_malformed_tsv_fails_at_start_with_the_line(tmp_path: Path) -> None:
    manifest = tmp_path / "train.tsv"
    manifest.write_text("path\tnum_samples\ta.wav\t100\nb.wav\t200\nc.wav\n")
    with pytest.raises(ManifestError, match="header"):
        read_tsv_manifest(manifest)
    manifest.write_text("path\tnum_samples\na.wav\t100\nb.wav\t200\nc.wav\n")
    with pytest.raises(ManifestError, match=r"train.tsv:4: expected 2 tab-separated fields"):
        read_tsv_manifest(manifest)
    manifest.write_text("path\tnum_samples\na.wav\tmany\n")
    with pytest.raises(ManifestError, match=r"train.tsv:2: .*must be a number"):
        read_tsv_manifest(manifest)


def test_fairseq_layout_manifest_is_read(tmp_path: Path) -> None:
    manifest = tmp_path / "train.tsv"
    manifest.write_text("/data/audio\nx/a.flac\t16000\ny/b.flac\t32000\n")
    entries = read_tsv_manifest(manifest)
    assert [str(e.path) for e in entries] == ["/data/audio/x/a.flac", "/data/audio/y/b.flac"]
    assert entries[1].num_samples == 32000


def test_evar_csv_row_with_a_missing_field_fails_with_the_line(tmp_path: Path) -> None:
    meta = tmp_path / "meta.csv"
    meta.write_text("file_name,label,split\na.wav,dog,train\nb.wav,cat\n")
    with pytest.raises(ManifestError, match=r"meta.csv:3: expected `file_name,label,split`"):
        read_evar_csv(meta, tmp_path)


def test_unknown_label_is_refused_with_the_row(tmp_path: Path) -> None:
    entries = [ClipEntry(tmp_path / "a.wav", ("dog",), None, "meta.csv:2"), ClipEntry(tmp_path / "b.wav", ("cat",), None, "meta.csv:3")]
    with pytest.raises(DatasetError, match=r"meta.csv:3: unknown label\(s\) \['cat'\]"):
        create_audio_reader(entries, create_fake_gangs(CPU), LogMelConfig(), STATS, AudioReaderOptions(), label_names=["dog"])


def test_audioset_unknown_label_fails_with_the_line(tmp_path: Path) -> None:
    labels = tmp_path / "class_labels_indices.csv"
    labels.write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/04rlf,"Music, general"\n')
    classes = read_class_labels(labels)
    assert classes[1].display_name == "Music, general"
    segs = tmp_path / "eval_segments.csv"
    segs.write_text('# header\n# YTID, start_seconds, end_seconds, positive_labels\nabcdefghijk, 0.000, 10.000, "/m/09x0r,/m/04rlf"\nbcdefghijkl, 0.000, 10.000, "/m/xxxx"\n')
    with pytest.raises(ManifestError, match=r"eval_segments.csv:4: unknown label\(s\) \['/m/xxxx'\]"):
        read_segments(segs, {c.mid for c in classes})


@pytest.mark.parametrize("rate", [8_000, 44_100, 96_000])
@pytest.mark.parametrize("samples", [1, 10, 28])
def test_tiny_clips_at_any_rate_give_one_frame(tmp_path: Path, rate: int, samples: int) -> None:
    from aape_plugin.data.features import LogMel

    path = tmp_path / "tiny.wav"
    soundfile.write(str(path), np.full(samples, 0.1, dtype=np.float32), rate)
    wave = load_waveform(path)
    assert 1 <= wave.numel() <= 2 * samples
    mel = LogMel()(wave)
    assert mel.shape == (80, 1) and torch.isfinite(mel).all()


def test_statistics_pass_skips_counts_and_pads(odd_corpus: dict) -> None:
    from aape_plugin.data.stats import compute_stats

    entries = [ClipEntry(p) for p, _ in odd_corpus.values()]
    stats = compute_stats(entries, LogMelConfig(), progress=False)
    assert stats.num_skipped == sum(not ok for _, ok in odd_corpus.values())
    assert stats.num_clips == sum(ok for _, ok in odd_corpus.values())
    assert stats.std > 0 and -20 < stats.mean < 5
