"""Renders the demo data set (real audio, labelled tasks, a pre-training pool) from Debian packages.

Sources (all in Debian main; licences copied next to the audio):

* pitched notes of real sampled instruments: ``fluid-soundfont-gm`` (FluidR3 GM, MIT) rendered
  with ``fluidsynth``; labels: MIDI pitch (``demo_pitch``) and NSynth instrument family
  (``demo_instrument``);
* spoken keywords: ``espeak-ng`` voices (synthetic speech; labels: word, ``demo_keywords``);
* drum one-shots: ``hydrogen-drumkits`` (14 real kits; labels: drum type, ``demo_drums``).

Every clip is 1 s of 16 kHz mono FLAC. Splits never share a source where the task allows it
(keywords: by voice; drums: by kit; notes: each pitch's instruments shuffled into 8 / 2 / 2).
The pre-training pool (``pretrain.tsv``) holds every train and valid clip plus extra notes of
instruments no task uses, and no test clip of any task.

Run: ``python -m aape_plugin.corpora.make_demo --out assets/demo`` (the committed copy), or
``--size large --out data/demo_large`` for a bigger local copy (not committed) for studies.
Deterministic: the same packages and seed give the same files.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aape_plugin.data.audio import load_waveform
from aape_plugin.corpora.render import (
    SAMPLE_RATE,
    SOUNDFONT,
    drum_class,
    estimate_f0,
    fit_to_clip,
    midi_hz,
    peak_normalise,
    render_notes,
    rms_db,
    trim_silence,
    write_flac,
)

CLIP_SECONDS = 1.0

# General MIDI program -> NSynth instrument family.
TASK_PROGRAMS: dict[int, str] = {
    0: "keyboard",  # Acoustic Grand Piano
    11: "mallet",  # Vibraphone
    19: "organ",  # Church Organ
    24: "guitar",  # Acoustic Guitar (nylon)
    32: "bass",  # Acoustic Bass
    40: "string",  # Violin
    56: "brass",  # Trumpet
    65: "reed",  # Alto Sax
    73: "flute",  # Flute
    81: "synth_lead",  # Lead 2 (sawtooth)
    52: "vocal",  # Choir Aahs
    12: "mallet",  # Marimba
}

# Instruments only in the pre-training pool (never in a task).
POOL_PROGRAMS: list[int] = [1, 4, 16, 25, 33, 42, 48, 57, 61, 68, 71, 80]

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one"]

VOICES = [
    "en-us+m1", "en-us+f1", "en-gb+m3", "en-gb+f2", "en-gb-scotland+m2", "en-gb-scotland+f3",
    "en-gb-x-rp+m4", "en-gb-x-rp+f4", "en-029+m5", "en-029+f5", "en-us-nyc+m6", "en-us-nyc+f2",
    "en-gb-x-gbclan+m7", "en-gb-x-gbcwmd+f1", "en-us+klatt2", "en-gb+klatt4",
]

@dataclass(kw_only=True)
class Sizes:
    """How much to render."""

    pitches: list[int]
    pool_pitches: list[int]
    voices: list[str]
    drums_per_class_per_kit: int


SIZES: dict[str, Sizes] = {
    "small": Sizes(
        pitches=list(range(48, 73)),
        pool_pitches=list(range(48, 73, 6)),
        voices=VOICES,
        drums_per_class_per_kit=2,
    ),
    "large": Sizes(
        pitches=list(range(36, 85)),
        pool_pitches=list(range(36, 85)),
        voices=VOICES,
        drums_per_class_per_kit=10,
    ),
}


@dataclass
class Clip:
    file_name: str
    labels: dict[str, str]
    split: str
    source: str
    checks: dict[str, object] = field(default_factory=dict)


def say(message: str) -> None:
    print(f"[make_demo] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- tools


def ensure_tools(work: Path) -> Path:
    """Installs (as root) or checks fluidsynth, the soundfont and espeak-ng; unpacks the
    Hydrogen kits without installing them. Returns the drumkit folder."""
    missing = [pkg for tool, pkg in (("fluidsynth", "fluidsynth"), ("espeak-ng", "espeak-ng")) if shutil.which(tool) is None]
    if not SOUNDFONT.exists():
        missing.append("fluid-soundfont-gm")

    if missing:
        if os.geteuid() != 0:
            raise SystemExit(f"make_demo needs the Debian packages {missing}: run `sudo apt-get install -y {' '.join(missing)}`.")
        say(f"installing {missing} (apt-get)")
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, stdout=subprocess.DEVNULL)

    kits = work / "hydrogen" / "usr" / "share" / "hydrogen" / "data" / "drumkits"
    if not kits.exists():
        debs = work / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        say("downloading hydrogen-drumkits (apt-get download, 143 MB)")
        subprocess.run(["apt-get", "download", "hydrogen-drumkits"], cwd=debs, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deb = next(debs.glob("hydrogen-drumkits_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "hydrogen")], check=True)

    return kits


# ----------------------------------------------------------------------------- notes


def note_clips(out: Path, work: Path, sizes: Sizes, rng: random.Random) -> list[Clip]:
    clips: list[Clip] = []
    programs = list(TASK_PROGRAMS)

    # Split: for each pitch, the task instruments are shuffled into 8 train, 2 valid, 2 test.
    split_of: dict[tuple[int, int], str] = {}
    for pitch in sizes.pitches:
        order = programs[:]
        rng.shuffle(order)
        for k, program in enumerate(order):
            split_of[(program, pitch)] = "train" if k < 8 else ("valid" if k < 10 else "test")

    for program in programs + POOL_PROGRAMS:
        in_task = program in TASK_PROGRAMS
        pitches = sizes.pitches if in_task else sizes.pool_pitches
        say(f"rendering GM program {program} ({len(pitches)} notes)")
        for pitch, wave in zip(pitches, render_notes(program, pitches, work)):
            level = rms_db(wave)
            if level < -50:  # the program has no sample at this pitch
                continue
            peak = float(np.abs(wave).max())
            f0 = estimate_f0(wave)
            cents = 1200 * np.log2(f0 / midi_hz(pitch))
            folder = "notes" if in_task else "pool_notes"
            name = f"{folder}/gm{program:03d}_p{pitch:03d}.flac"
            write_flac(out / name, peak_normalise(wave))
            labels = {"pitch": str(pitch), "family": TASK_PROGRAMS[program]} if in_task else {}
            clips.append(Clip(name, labels, split_of.get((program, pitch), "pool"), f"FluidR3_GM program {program}",
                              {"rms_db": round(level, 1), "clipped": peak >= 0.999, "f0_hz": round(f0, 1), "cents_off": round(float(cents), 1)}))
    return clips


# ----------------------------------------------------------------------------- keywords


def keyword_clips(out: Path, work: Path, sizes: Sizes, rng: random.Random) -> list[Clip]:
    voices = sizes.voices[:]
    rng.shuffle(voices)
    n = len(voices)
    split_of = {v: ("test" if i < n // 8 + 1 else "valid" if i < 2 * (n // 8 + 1) else "train") for i, v in enumerate(voices)}
    clips = []
    for voice in sizes.voices:
        say(f"speaking {len(WORDS)} words with espeak-ng voice {voice}")
        for word in WORDS:
            wav = work / "speech.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), word], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wave = load_waveform(wav, SAMPLE_RATE).numpy()
            wave = fit_to_clip(trim_silence(wave), centre=True)
            name = f"keywords/{voice.replace('+', '_')}_{word}.flac"
            write_flac(out / name, peak_normalise(wave))
            clips.append(Clip(name, {"word": word}, split_of[voice], f"espeak-ng {voice}", {"rms_db": round(rms_db(wave), 1)}))
    return clips


# ----------------------------------------------------------------------------- drums


def drum_clips(out: Path, kits_dir: Path, sizes: Sizes, rng: random.Random) -> list[Clip]:
    kits = sorted(p for p in kits_dir.iterdir() if (p / "drumkit.xml").exists())
    order = kits[:]
    rng.shuffle(order)
    split_of = {k.name: ("test" if i < 3 else "valid" if i < 5 else "train") for i, k in enumerate(order)}
    clips = []
    for kit in kits:
        root = ET.parse(kit / "drumkit.xml").getroot()
        ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
        taken: Counter[str] = Counter()
        for inst in root.iter(f"{ns}instrument"):
            name = inst.findtext(f"{ns}name") or ""
            label = drum_class(name)
            if label is None or taken[label] >= sizes.drums_per_class_per_kit:
                continue
            files = [e.text for e in inst.iter(f"{ns}filename") if e.text]
            if not files:
                continue
            source = kit / files[len(files) // 2]  # a middle velocity layer
            if not source.exists():
                continue
            wave = load_waveform(source, SAMPLE_RATE).numpy()
            wave = fit_to_clip(wave, centre=False)
            if rms_db(wave) < -60:
                continue
            taken[label] += 1
            safe = "".join(c if c.isalnum() else "_" for c in f"{kit.name}_{name}")
            file_name = f"drums/{safe}.flac"
            write_flac(out / file_name, peak_normalise(wave))
            clips.append(Clip(file_name, {"drum": label}, split_of[kit.name], f"hydrogen-drumkits {kit.name}: {name}", {"rms_db": round(rms_db(wave), 1)}))
    return clips


# ----------------------------------------------------------------------------- metadata


TASKS = {"demo_pitch": "pitch", "demo_instrument": "family", "demo_keywords": "word", "demo_drums": "drum"}


def write_metadata(out: Path, clips: list[Clip]) -> dict[str, object]:
    report: dict[str, object] = {}
    for task, key in TASKS.items():
        rows = [c for c in clips if key in c.labels]
        with open(out / f"{task}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file_name", "label", "split"])
            for c in sorted(rows, key=lambda c: c.file_name):
                writer.writerow([c.file_name, c.labels[key], c.split])
        per_split = Counter(c.split for c in rows)
        report[task] = {"clips": len(rows), "classes": len({c.labels[key] for c in rows}), "splits": dict(per_split)}

    pool = sorted(c for c in (c.file_name for c in clips if c.split != "test"))
    with open(out / "pretrain.tsv", "w") as f:
        f.write("path\tnum_samples\n")
        for name in pool:
            f.write(f"{name}\t{int(SAMPLE_RATE * CLIP_SECONDS)}\n")
    report["pretrain_pool"] = {"clips": len(pool)}
    return report


def copy_licences(out: Path, kits_root: Path) -> None:
    lic = out / "licenses"
    lic.mkdir(exist_ok=True)
    for pkg, src in (
        ("fluid-soundfont-gm", Path("/usr/share/doc/fluid-soundfont-gm/copyright")),
        ("espeak-ng", Path("/usr/share/doc/espeak-ng/copyright")),
        ("hydrogen-drumkits", kits_root.parents[2] / "doc" / "hydrogen-drumkits" / "copyright"),
    ):
        if src.exists():
            shutil.copyfile(src, lic / f"{pkg}.copyright")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aape_plugin.corpora.make_demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("assets/demo"))
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "aape-demo-build",
                        help="scratch folder (downloaded packages are kept here between runs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    sizes = SIZES[args.size]
    args.work.mkdir(parents=True, exist_ok=True)
    kits = ensure_tools(args.work)

    for sub in ("notes", "pool_notes", "keywords", "drums"):
        shutil.rmtree(args.out / sub, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)

    torch.set_num_threads(1)
    clips = []
    clips += note_clips(args.out, args.work, sizes, random.Random(args.seed))
    clips += keyword_clips(args.out, args.work, sizes, random.Random(args.seed + 1))
    clips += drum_clips(args.out, kits, sizes, random.Random(args.seed + 2))

    report = write_metadata(args.out, clips)
    copy_licences(args.out, kits)

    notes = [c for c in clips if "cents_off" in c.checks]
    octave_or_worse = [c.file_name for c in notes if abs(float(c.checks["cents_off"])) > 50]  # type: ignore[arg-type]
    report["checks"] = {
        "notes": len(notes),
        "notes_within_50_cents_of_label": len(notes) - len(octave_or_worse),
        "notes_off_by_more_than_50_cents": octave_or_worse,
        "clipped_before_normalisation": [c.file_name for c in clips if c.checks.get("clipped")],
        "quietest_clip_rms_db": min(float(c.checks["rms_db"]) for c in clips),  # type: ignore[arg-type]
        "size_mb": round(sum(f.stat().st_size for f in args.out.rglob("*.flac")) / 1e6, 2),
    }
    (args.out / "build_report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "clip_checks.json").write_text(json.dumps({c.file_name: {"source": c.source, **c.checks} for c in clips}, indent=1) + "\n")

    say(json.dumps(report["checks"] | {k: v for k, v in report.items() if k != "checks"}, indent=1)[:2000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
