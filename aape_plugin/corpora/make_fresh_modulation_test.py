"""Builds the modulation group's fresh test split (:mod:`aape_plugin.corpora.modulation_fresh`)
in a corpus folder of its own, beside the study corpus (not committed).

    python -m aape_plugin.corpora.make_fresh_modulation_test [--out DIR] [--study DIR]

``DIR`` defaults to the study corpus' folder with ``-fresh`` appended
(``~/.cache/aape-fairseq2/study-corpus-fresh``). fluidsynth is installed with apt-get when
missing (needs root); ``timgm6mb-soundfont`` and ``lmms-common`` are fetched with
``apt-get download`` and unpacked into ``DIR-sources``. Deterministic for a seed.

Layout: the fresh clips are under ``fresh/``; ``fresh_test/<task>.csv`` lists them alone (split
``test``). When the study corpus is built, ``<task>.csv`` lists its ``train`` and ``valid`` rows
(through the link ``study`` to its folder) and the fresh clips as ``test``, and ``stats.json``
links to its statistics, so that the study's own asset cards read the fresh split as their test
split with nothing but another root: ``--config dataset.root=DIR``. The old test rows are left
out. A second run with the clips in place only refreshes that link and exits.

Nothing here reads, embeds or scores the clips: the split stays unread until the protocol that
uses it is written.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from aape_plugin.corpora.make_study_corpus import (
    CLIPPED_FRACTION,
    GM_DRUM_KEYS,
    SILENT_DB,
    Writer,
    copy_licences,
    fetch_packages,
    finished_report,
    read,
)
from aape_plugin.corpora.modulation import MODULATION_RATES
from aape_plugin.corpora.modulation_fresh import (
    DRUMS_FOLDER,
    DRUMS_PACKAGE,
    FRESH_NOISE_GROUPS,
    FRESH_NOISE_LOW_HZ,
    FRESH_NOISE_WIDTH_RATIO,
    FRESH_NOTE_PITCHES,
    FRESH_PACKAGES,
    FRESH_SEED,
    FRESH_SPLIT,
    FRESH_TONE_FAMILIES,
    FRESH_TONE_GROUPS,
    NOT_FRESH_SOUNDFONT_PACKAGES,
    SOUNDFONT_FILE,
    SOUNDFONT_NAME,
    SOUNDFONT_PACKAGE,
    TIM_KITS,
    fresh_am_clips,
    fresh_roll_clips,
    fresh_vibrato_clips,
    hit_carrier,
    note_carrier,
)
from aape_plugin.corpora.modulation_tasks import MODULATION_TASKS, ModulationClip, rate_label
from aape_plugin.corpora.render import SAMPLE_RATE, SOUNDFONT, fit_to_clip, read_sf2_samples, render_notes, rms_db
from aape_plugin.corpora.study_splits import GM_FAMILIES, gm_family
from aape_plugin.data.study_corpus import study_dir

BUILD_VERSION = 1
"""Bumped whenever the builder's output changes, so that an older build is rebuilt."""

NOTE_SECONDS, NOTE_HOLD, NOTE_SLOT = 2.0, 1.5, 2.2
"""As the study's notes: 2 s, held 1.5 s."""
HIT_SECONDS = 1.0
DUPLICATE_HIT = 0.995
"""A kit hit whose correlation with a hit kept from another kit exceeds this is the same sample."""
MAX_REBUILDS = 10
COPY_SECONDS = 0.25
COPY_CORRELATION = 0.99
"""A fresh hit this correlated with a hit of the study's kits (over their first 0.25 s, at any
lag) is a copy; different recordings of one kind of drum reach about 0.9."""

Notes = dict[str, list[tuple[int, np.ndarray]]]
Strokes = dict[str, list[tuple[str, np.ndarray, str]]]


def say(message: str) -> None:
    print(f"[fresh-modulation] {message}", file=sys.stderr, flush=True)


def fresh_dir() -> Path:
    """The default folder: the study corpus' with ``-fresh`` appended."""
    study = study_dir()
    return study.with_name(study.name + "-fresh")


def ensure_fluidsynth() -> None:
    if shutil.which("fluidsynth") is not None:
        return
    if os.geteuid() != 0:
        raise SystemExit("make_fresh_modulation_test needs fluidsynth: run `sudo apt-get install -y fluidsynth` (or run this command as root).")
    say("installing fluidsynth (apt-get install)")
    if subprocess.run(["apt-get", "install", "-y", "-q", "fluidsynth"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "fluidsynth"], check=True, stdout=subprocess.DEVNULL)


# ----------------------------------------------------------------------------- carriers


def note_carriers(soundfont: Path, work: Path, dropped: Counter[str]) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Group ``timgm6mb_gmNNN`` -> (pitch, 2 s note) for every labelled GM program of the study."""
    notes: dict[str, list[tuple[int, np.ndarray]]] = {}
    for program in sorted(GM_FAMILIES):
        waves = render_notes(program, list(FRESH_NOTE_PITCHES), work, slot=NOTE_SLOT, hold=NOTE_HOLD, seconds=NOTE_SECONDS, soundfont=soundfont)
        kept = []
        for pitch, wave in zip(FRESH_NOTE_PITCHES, waves):
            if rms_db(wave) < -50:  # no sample at this pitch
                dropped[f"note without a sample at its pitch ({SOUNDFONT_PACKAGE})"] += 1
            else:
                kept.append((pitch, wave))
        if kept:
            notes[f"timgm6mb_gm{program:03d}"] = kept
    return notes


def kit_hits(soundfont: Path, work: Path, dropped: Counter[str]) -> dict[str, list[tuple[str, np.ndarray, str]]]:
    """TimGM6mb's percussion kits, one hit per General MIDI drum key of the study (velocity 100);
    a hit equal to one of an earlier kit is dropped (kits share samples)."""
    keys = sorted(GM_DRUM_KEYS)
    kept: dict[int, list[np.ndarray]] = defaultdict(list)
    hits: dict[str, list[tuple[str, np.ndarray, str]]] = {}
    for preset, kit in sorted(TIM_KITS.items()):
        group = f"timgm6mb_kit{preset:03d}_{kit.replace(' ', '')}"
        waves = render_notes(preset, keys, work, slot=1.2, hold=0.5, seconds=HIT_SECONDS, channel=9, soundfont=soundfont)
        for key, wave in zip(keys, waves):
            if rms_db(wave) < SILENT_DB:
                dropped[f"silent drum key ({SOUNDFONT_PACKAGE})"] += 1
                continue
            unit = wave / (np.linalg.norm(wave) + 1e-12)
            if any(float(np.dot(unit, other)) > DUPLICATE_HIT for other in kept[key]):
                dropped[f"duplicate hit of another TimGM6mb kit ({SOUNDFONT_PACKAGE})"] += 1
                continue
            kept[key].append(unit)
            hits.setdefault(group, []).append((f"key{key}", wave, SOUNDFONT_PACKAGE))
    return hits


def lmms_hits(root: Path, dropped: Counter[str]) -> dict[str, list[tuple[str, np.ndarray, str]]]:
    """Every drum one-shot of LMMS, as one kit."""
    hits = []
    for path in sorted((root / DRUMS_FOLDER).glob("*.ogg")):
        wave = read(path)
        if wave is None or rms_db(wave) < SILENT_DB:
            dropped[f"unreadable or silent ({DRUMS_PACKAGE})"] += 1
            continue
        hits.append((path.stem, fit_to_clip(wave, centre=False, seconds=HIT_SECONDS), DRUMS_PACKAGE))
    return {"lmms_drums": hits}


def writable(wave: np.ndarray) -> bool:
    """Whether the corpus writer keeps the clip (:class:`~aape_plugin.corpora.make_study_corpus.Writer`:
    not silent, not clipped)."""
    return rms_db(wave) >= SILENT_DB and int(np.sum(np.abs(wave) >= 0.999)) < max(3, CLIPPED_FRACTION * len(wave))


def without_dropped_carriers(build: Callable[[Notes, Strokes], list[ModulationClip]], notes: Notes, strokes: Strokes,
                             ) -> tuple[list[ModulationClip], list[str]]:
    """The clips of ``build``, rebuilt without every carrier one of whose clips the writer would
    drop (a note too quiet in its segment, a clipped recording), so that every rate keeps the same
    number of clips. Returns them and the carriers left out."""
    left_out: list[str] = []
    for _ in range(MAX_REBUILDS):
        made = build(notes, strokes)
        bad = {c.carrier for c in made if not writable(c.wave)}
        if not bad:
            return made, left_out
        left_out += sorted(bad)
        notes = {g: [(p, n) for p, n in v if note_carrier(g, p) not in bad] for g, v in notes.items()}
        strokes = {g: [(name, h, pkg) for name, h, pkg in v if hit_carrier(g, name) not in bad] for g, v in strokes.items()}
    raise SystemExit(f"the fresh clips still hold silent or clipped clips after {MAX_REBUILDS} rebuilds (carriers left out: {left_out[:5]}...)")


# ----------------------------------------------------------------------------- freshness checks


def _onset_spectra(waves: list[np.ndarray]) -> np.ndarray:
    """Unit-norm spectra of each wave's first :data:`COPY_SECONDS`, for cross-correlation."""
    n = int(COPY_SECONDS * SAMPLE_RATE)
    out = []
    for wave in waves:
        x = wave[:n].astype(np.float64) - float(np.mean(wave[:n]))
        out.append(np.fft.rfft(x / (np.linalg.norm(x) + 1e-12), 2 * n))
    return np.array(out)


def drop_copies(strokes: Strokes, old_hits: list[np.ndarray], dropped: Counter[str]) -> tuple[Strokes, float]:
    """``strokes`` less any hit that is a copy of an old one (normalised cross-correlation over
    every lag above :data:`COPY_CORRELATION`); returns them and the highest correlation kept."""
    if not old_hits:
        return strokes, float("nan")
    old = _onset_spectra(old_hits)
    kept: Strokes = {}
    highest = 0.0
    for group, hits in strokes.items():
        kept[group] = []
        for name, hit, package in hits:
            corr = float(np.fft.irfft(old * np.conj(_onset_spectra([hit])), axis=1).max())
            if corr > COPY_CORRELATION:
                dropped[f"copy of a study drum hit ({package})"] += 1
            else:
                kept[group].append((name, hit, package))
                highest = max(highest, corr)
    return kept, highest


def shared_samples(soundfont: Path, other: Path) -> int | None:
    """How many samples of ``soundfont`` (their first 2,000 values) ``other`` also holds; None when
    ``other`` is missing."""
    if not other.is_file():
        return None

    def fingerprints(path: Path) -> set[bytes]:
        return {np.round(pcm[:2000] * 32768).astype(np.int16).tobytes() for _, _, pcm in read_sf2_samples(path) if len(pcm) > 1000}

    return len(fingerprints(soundfont) & fingerprints(other))


# ----------------------------------------------------------------------------- lists


def write_fresh_lists(out: Path, clips: list[ModulationClip]) -> dict[str, dict]:
    """``fresh_test/<task>.csv`` and ``groups.csv``; returns each task's counts."""
    (out / "fresh_test").mkdir(exist_ok=True)
    counts = {}
    for task in MODULATION_TASKS:
        rows = sorted((c for c in clips if c.task == task), key=lambda c: c.name)
        with open(out / "fresh_test" / f"{task}.csv", "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["file_name", "label", "split"])
            writer.writerows([c.name, c.label, FRESH_SPLIT] for c in rows)
        per_group: dict[str, set[str]] = defaultdict(set)
        for c in rows:
            per_group[c.group].add(c.label)
        counts[task] = {
            "clips": len(rows),
            "class_counts": {rate_label(r): sum(c.label == rate_label(r) for c in rows) for r in MODULATION_RATES},
            "groups": len(per_group),
            "fewest_rates_per_group": min(len(v) for v in per_group.values()),
            "clips_per_package": dict(sorted(Counter(c.package for c in rows).items())),
        }
    with open(out / "groups.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["task", "group", "split", "clips", "rates", "package"])
        grouped: dict[tuple[str, str], list[ModulationClip]] = defaultdict(list)
        for c in clips:
            grouped[(c.task, c.group)].append(c)
        for (task, group), members in sorted(grouped.items()):
            writer.writerow([task, group, FRESH_SPLIT, len(members), len({c.label for c in members}), members[0].package])
    return counts


def link_study(out: Path, study: Path) -> dict[str, object]:
    """``<task>.csv`` = the study corpus' train and valid rows (through ``study/``) + the fresh
    test rows, and ``stats.json`` -> the study's; only when the study corpus is complete (its
    ``build_report.json`` is written last). Otherwise any earlier link is removed. ``pretrain.tsv``
    links to the study's pool list too, so that ``AAPE_STUDY_DIR`` may name this folder for an
    evaluation (the study's modulation cards then read the fresh test split). Pre-training reads
    the study corpus itself: the list's paths are relative to the study's folder."""
    link, stats, pool = out / "study", out / "stats.json", out / "pretrain.tsv"
    for task in MODULATION_TASKS:
        (out / f"{task}.csv").unlink(missing_ok=True)
    for path in (link, stats, pool):
        if path.is_symlink() or path.exists():
            path.unlink()
    report_file = study / "build_report.json"
    if not report_file.is_file() or not all((study / f"{t}.csv").is_file() for t in MODULATION_TASKS):
        return {"linked": False, "study": str(study), "why": "the study corpus is not built there (no build_report.json or task lists)"}
    link.symlink_to(study.resolve(), target_is_directory=True)
    stats.symlink_to(Path("study") / "stats.json")
    pool.symlink_to(Path("study") / "pretrain.tsv")
    study_report = json.loads(report_file.read_text())
    counts = {}
    for task in MODULATION_TASKS:
        with open(study / f"{task}.csv", newline="") as f:
            old = [row for row in csv.DictReader(f) if row["split"] in ("train", "valid")]
        with open(out / "fresh_test" / f"{task}.csv", newline="") as f:
            fresh = list(csv.DictReader(f))
        with open(out / f"{task}.csv", "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["file_name", "label", "split"])
            writer.writerows([f"study/{row['file_name']}", row["label"], row["split"]] for row in old)
            writer.writerows([row["file_name"], row["label"], row["split"]] for row in fresh)
        counts[task] = {s: sum(r["split"] == s for r in old) for s in ("train", "valid")} | {"test (fresh)": len(fresh)}
    return {"linked": True, "study": str(study.resolve()), "study_build_version": study_report.get("build_version"),
            "study_seed": study_report.get("seed"), "study_built": study_report.get("built"), "splits": counts}


def already_built(out: Path, seed: int) -> dict | None:
    """The report of a finished build of this version and seed whose clips are all there."""
    return finished_report(out, version=BUILD_VERSION, seed=seed, lists=[out / "fresh_test" / f"{task}.csv" for task in MODULATION_TASKS])


# ----------------------------------------------------------------------------- README


def render_readme(report: dict) -> str:
    link = report["study_link"]
    lines = [
        "# The modulation group's fresh test split",
        "",
        f"Built {report['built']} by `python -m aape_plugin.corpora.make_fresh_modulation_test` "
        f"(build {report['build_version']}, seed {report['seed']}, {report['build_seconds']:.0f} s). "
        "**Unread**: no probe or model has seen these clips; they answer the claim the protocol names, "
        "once it is written (docs/data.md, \"The modulation group's fresh test split\"). The old test splits of the three "
        "tasks were read while the study was designed.",
        "",
        "Layout: `fresh/` the clips (16 kHz mono FLAC, 1 s); `fresh_test/<task>.csv` the fresh clips "
        "alone (split `test`); `<task>.csv` the study corpus' `train` and `valid` rows (through the "
        "link `study`) with the fresh clips as `test`, and `stats.json` the study's statistics, so the "
        "study's cards read it with `--config dataset.root=<this folder>`; `groups.csv` every carrier "
        "group; `build_report.json` every count; `licenses/` each package's copyright file.",
        "",
        ("Linked to the study corpus at `" + str(link["study"]) + f"` (build {link['study_build_version']}, built {link['study_built']})."
         if link["linked"] else f"Not linked to a study corpus yet ({link['why']}): build it, then run this command again."),
        "",
        "| task | clips | per rate | carrier groups | by package |",
        "|---|---|---|---|---|",
    ]
    for task, t in report["tasks"].items():
        per_rate = sorted(set(t["class_counts"].values()))
        lines.append(f"| `{task}` | {t['clips']} | {'-'.join(str(n) for n in per_rate)} | {t['groups']} (each under >= {t['fewest_rates_per_group']} rates) | "
                     + ", ".join(f"{k} {v}" for k, v in t["clips_per_package"].items()) + " |")
    s = report["sources"]
    lines += [
        "",
        "Sources (none used by the study corpus):",
        "",
        f"- `{SOUNDFONT_PACKAGE}` {report['package_versions'].get(SOUNDFONT_PACKAGE, '')}: {s['soundfont']}",
        f"- `{DRUMS_PACKAGE}` {report['package_versions'].get(DRUMS_PACKAGE, '')}: {s['drums']}",
        f"- synthetic: {s['noise']}; {s['tones']}",
        "",
        f"Checks: {json.dumps(report['checks'])}.",
        "",
        f"Dropped while rendering: {json.dumps(report['dropped'])}. Carriers left out because a clip of theirs was silent "
        "or clipped (the rates are assigned again without them, so that every rate keeps as many clips): "
        + ", ".join(f"{task} {v['count']}" for task, v in report["carriers_left_out"].items()) + ".",
        "",
        "Licences: TimGM6mb (Tim Brechbill) GPL-2; LMMS's samples GPL-2+ (see `licenses/`).",
        "",
    ]
    return "\n".join(lines)


def sources_summary() -> dict[str, str]:
    tone = "; ".join(f"{name}: f0 {r['f0_hz'][0]:g}-{r['f0_hz'][1]:g} Hz, {r['partials'][0]:g}-{r['partials'][1]:g} partials, "
                     f"{r['tilt_db'][0]:g}-{r['tilt_db'][1]:g} dB/octave" for name, r in FRESH_TONE_FAMILIES.items())
    return {
        "soundfont": f"{SOUNDFONT_NAME} notes of the {len(GM_FAMILIES)} labelled GM programs at MIDI {', '.join(map(str, FRESH_NOTE_PITCHES))} "
                     f"(AM and vibrato; rolls: pianos, mallets, guitars, basses) and its percussion kits {', '.join(TIM_KITS.values())} (rolls)",
        "drums": "LMMS's drum one-shots (samples/drums), one kit (rolls)",
        "noise": f"{FRESH_NOISE_GROUPS} noise bands, lower edge {FRESH_NOISE_LOW_HZ[0]:g}-{FRESH_NOISE_LOW_HZ[1]:g} Hz, "
                 f"upper/lower {FRESH_NOISE_WIDTH_RATIO[0]:g}-{FRESH_NOISE_WIDTH_RATIO[1]:g} (AM)",
        "tones": f"{FRESH_TONE_GROUPS} harmonic tones, alternating {tone} (vibrato)",
    }


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aape_plugin.corpora.make_fresh_modulation_test", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="folder (default: the study corpus' folder + '-fresh')")
    parser.add_argument("--study", type=Path, default=None, help="the study corpus to link (default: $AAPE_STUDY_DIR or ~/.cache/aape-fairseq2/study-corpus)")
    parser.add_argument("--sources", type=Path, default=None, help="where packages are downloaded and unpacked (default: OUT-sources)")
    parser.add_argument("--seed", type=int, default=FRESH_SEED)
    parser.add_argument("--force", action="store_true", help="rebuild even when a complete build is there")
    args = parser.parse_args(argv)
    if args.seed == 0:
        raise SystemExit("--seed 0 is the study corpus' seed: a fresh split needs another one.")

    out = (args.out or fresh_dir()).expanduser().resolve()
    study = (args.study or study_dir()).expanduser()
    sources = (args.sources or out.with_name(out.name + "-sources")).expanduser().resolve()
    started = time.monotonic()

    if not args.force and (done := already_built(out, args.seed)) is not None:
        done["study_link"] = link_study(out, study)
        (out / "build_report.json").write_text(json.dumps(done, indent=1) + "\n")
        (out / "README.md").write_text(render_readme(done))
        say(f"{out} is complete ({sum(t['clips'] for t in done['tasks'].values())} clips, built {done['built']}); "
            f"study link {'refreshed' if done['study_link']['linked'] else 'not made: ' + done['study_link']['why']} (--force rebuilds)")
        return 0

    ensure_fluidsynth()
    sources.mkdir(parents=True, exist_ok=True)
    roots = fetch_packages(sources, FRESH_PACKAGES, ("fluidsynth",))
    versions = json.loads((sources / "versions.json").read_text())
    soundfont = roots[SOUNDFONT_PACKAGE] / SOUNDFONT_FILE

    for sub in ("fresh", "fresh_test", "licenses"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for stale in ("build_report.json", "groups.csv", "README.md"):
        (out / stale).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    work = sources / "render"
    work.mkdir(exist_ok=True)
    torch.set_num_threads(1)

    dropped: Counter[str] = Counter()
    timings = {}
    t0 = time.monotonic()
    say(f"rendering {SOUNDFONT_NAME} notes of {len(GM_FAMILIES)} programs and {len(TIM_KITS)} kits; reading LMMS drums")
    notes = note_carriers(soundfont, work, dropped)
    strokes = {**kit_hits(soundfont, work, dropped), **lmms_hits(roots[DRUMS_PACKAGE], dropped)}
    shutil.rmtree(work)
    timings["carriers"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    old_drums = sorted((study / "drums").rglob("*.flac")) if (study / "drums").is_dir() else []
    say(f"checking the carriers are new: TimGM6mb against {SOUNDFONT.name}, the hits against {len(old_drums)} study drum clips")
    strokes, highest = drop_copies(strokes, [w for w in map(read, old_drums) if w is not None], dropped)
    checks = {
        "timgm6mb_samples_also_in_fluidr3": shared_samples(soundfont, SOUNDFONT),
        "study_drum_clips_compared": len(old_drums),
        "highest_correlation_of_a_kept_hit_with_a_study_drum_clip": None if np.isnan(highest) else round(highest, 3),
        "copy_threshold": COPY_CORRELATION,
    }
    timings["checks"] = round(time.monotonic() - t0, 1)

    writer = Writer(out)
    family_of = lambda group: gm_family(int(group.rsplit("gm", 1)[1]))  # noqa: E731
    written: list[ModulationClip] = []
    left_out: dict[str, list[str]] = {}
    for task, build in (("study_am_rate", lambda n, s: fresh_am_clips(n, args.seed)),
                        ("study_vibrato_rate", lambda n, s: fresh_vibrato_clips(n, args.seed)),
                        ("study_roll_rate", lambda n, s: fresh_roll_clips(s, n, family_of, args.seed))):
        t0 = time.monotonic()
        made, left_out[task] = without_dropped_carriers(build, notes, strokes)
        for clip in made:
            kept = writer.add(clip.name, clip.wave, clip.package, clip.source, labels={clip.task: clip.label}, groups={clip.task: clip.group})
            if kept is not None:
                written.append(ModulationClip(kept.file_name, np.empty(0), clip.task, clip.label, clip.group, clip.source, clip.package))
        timings[task] = round(time.monotonic() - t0, 1)
        say(f"{task}: {len(made)} clips made ({timings[task]} s)")
    dropped.update(writer.tally.dropped)

    counts = write_fresh_lists(out, written)
    unbalanced = {task: t["class_counts"] for task, t in counts.items() if len(set(t["class_counts"].values())) != 1}
    if unbalanced:
        raise SystemExit(f"fresh split check failed: unbalanced rates {unbalanced}")
    licences = copy_licences(out, roots, ("fluidsynth", *FRESH_PACKAGES))
    report = {
        "build_version": BUILD_VERSION,
        "seed": args.seed,
        "split": FRESH_SPLIT,
        "unread": "no probe or model has read these clips; the protocol that uses them comes first",
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        "build_seconds": round(time.monotonic() - started, 1),
        "stage_seconds": timings,
        "tasks": counts,
        "balanced": True,
        "sources": sources_summary(),
        "packages": list(FRESH_PACKAGES),
        "not_taken": NOT_FRESH_SOUNDFONT_PACKAGES,
        "package_versions": {p: versions[p] for p in (*FRESH_PACKAGES, "fluidsynth") if p in versions},
        "licences_copied": licences,
        "dropped": dict(sorted(dropped.items())),
        "checks": checks,
        "carriers_left_out": {task: {"count": len(v), "why": "a clip of theirs silent (below -55 dB) or clipped", "carriers": v}
                              for task, v in left_out.items()},
        "flac_mb": round(sum(f.stat().st_size for f in (out / "fresh").rglob("*.flac")) / 1e6, 1),
    }
    report["study_link"] = link_study(out, study)
    (out / "build_report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "README.md").write_text(render_readme(report))

    say(f"done in {report['build_seconds']:.0f} s: {len(written)} clips, {report['flac_mb']} MB of FLAC in {out}")
    for task, t in counts.items():
        say(f"  {task}: {t['clips']} clips, per rate {sorted(set(t['class_counts'].values()))}, {t['groups']} carrier groups")
    if not report["study_link"]["linked"]:
        say(f"  not linked to the study corpus: {report['study_link']['why']}; run again once it is built")
    return 0


if __name__ == "__main__":
    sys.exit(main())
