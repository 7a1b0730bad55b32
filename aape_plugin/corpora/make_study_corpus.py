"""Builds the study corpus: hours of real audio from Debian packages, five probe tasks and a
pre-training pool, in a local cache folder (not committed).

    python -m aape_plugin.corpora.make_study_corpus [--out DIR]        (or: make study-corpus)

``DIR`` defaults to ``$AAPE_STUDY_DIR``, else ``~/.cache/aape-fairseq2/study-corpus``; data sets
address it as the root ``@study``. Tools (fluidsynth, espeak-ng, flite, sox, the FluidR3 GM
SoundFont) are installed with apt-get when missing (needs root); data packages are fetched with
``apt-get download`` and unpacked with ``dpkg-deb -x`` into ``DIR-sources``. A second run with
everything in place only checks the files and exits. Deterministic: the same packages and seed
give the same clips, labels and splits.

Tasks (EVAR metadata CSVs, ``file_name,label,split``), each split by source group
(:mod:`aape_plugin.corpora.study_splits`):

* ``study_pitch`` / ``study_instrument``: MIDI pitch 36-84 / NSynth family of 2 s notes of the
  FluidR3 GM programs (fluidsynth), split by program;
* ``study_keywords``: 20 Speech Commands words spoken by espeak-ng and flite voices (synthetic
  speech), split by voice;
* ``study_drums``: drum type of real kit one-shots (Hydrogen kits, the AVL drumkits, FluidR3
  percussion, Sonic Pi), every velocity layer, split by kit;
* ``study_language``: language of words spoken by real people (KTuberling), split by word;
* the modulation group (:mod:`aape_plugin.corpora.modulation_tasks`): ``study_am_rate``,
  ``study_vibrato_rate``, ``study_roll_rate``, whose only label is a rate of 4-38 Hz (the band a
  16-frame patch stem aliases), on real notes and drum hits and on synthetic carriers; held out
  of the pool.

The pool (``pretrain.tsv``) holds the training clips of every task plus unlabelled material
(notes of programs no task uses, letters, game sound effects, keyboard and UI sounds, spoken
dialogue) and no clip of any test or validation group.
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
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aape_plugin.data.audio import AudioReadError, load_waveform
from aape_plugin.corpora.render import (
    SAMPLE_RATE,
    SOUNDFONT,
    drum_class,
    estimate_f0,
    fit_to_clip,
    midi_hz,
    peak_normalise,
    read_sf2_samples,
    render_notes,
    rms_db,
    trim_silence,
    write_flac,
)
from aape_plugin.corpora.modulation_tasks import (
    MODULATION_TASKS,
    NOTE_CARRIER_PITCHES,
    am_clips,
    roll_clips,
    vibrato_clips,
)
from aape_plugin.data.study_corpus import study_dir
from aape_plugin.corpora.study_splits import gm_family, kit_group, pool_allows, split_groups, voice_group, word_groups

BUILD_VERSION = 3
"""Bumped whenever the builder's output changes, so that an older corpus is rebuilt."""

TASKS = {
    "study_pitch": "MIDI pitch of sampled instrument notes",
    "study_instrument": "NSynth instrument family of the same notes",
    "study_keywords": "spoken keyword (synthetic speech)",
    "study_drums": "drum type of real kit one-shots",
    "study_language": "language of words spoken by real people",
    **MODULATION_TASKS,
}

# Split fractions (of a task's clips), minimum clip counts, and a seed offset per task.
SPLIT_PLAN = {
    "notes": dict(test=0.2, valid=0.15, min_test=300, min_valid=100, offset=1),
    "study_keywords": dict(test=0.2, valid=0.15, min_test=300, min_valid=100, offset=2),
    "study_drums": dict(test=0.3, valid=0.15, min_test=300, min_valid=100, offset=3),
    "study_language": dict(test=0.25, valid=0.15, min_test=300, min_valid=100, offset=4),
    "study_am_rate": dict(test=0.25, valid=0.15, min_test=250, min_valid=150, offset=5),
    "study_vibrato_rate": dict(test=0.25, valid=0.15, min_test=250, min_valid=150, offset=6),
    "study_roll_rate": dict(test=0.25, valid=0.15, min_test=250, min_valid=150, offset=7),
}

NOTE_SECONDS, NOTE_HOLD, NOTE_SLOT = 2.0, 1.5, 2.2
NOTE_PITCHES = list(range(36, 85))
POOL_NOTE_PITCHES = list(range(36, 85, 2))

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
         "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
"""The 20 core command words of Speech Commands v2."""
ACCENTS = ["en-029", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-us", "en-us-nyc"]
ACCENTS_PER_VARIANT = 2
FLITE_VOICES = ["awb", "kal", "kal16", "rms", "slt"]
SOX_VARIANTS: dict[str, list[str]] = {"": [], "tempo=0.87": ["tempo", "0.87"], "tempo=1.15": ["tempo", "1.15"],
                                      "pitch=-250": ["pitch", "-250"], "pitch=+250": ["pitch", "250"]}
KEYWORD_SECONDS = 1.0

DRUM_SECONDS = 1.0
GM_DRUM_KEYS = {35: "kick", 36: "kick", 38: "snare", 40: "snare", 39: "clap",
                **{k: "tom" for k in (41, 43, 45, 47, 48, 50)}, **{k: "hihat" for k in (42, 44, 46)},
                **{k: "cymbal" for k in (49, 51, 52, 53, 55, 57, 59)}}
"""General MIDI percussion key -> drum type (side stick, cowbell and latin percussion left out)."""
AVL_DRUM_KEYS = {36: "kick", 38: "snare", 39: "clap", 40: "snare", **{k: "tom" for k in (41, 43, 45, 47)},
                 **{k: "hihat" for k in (42, 44, 46, 48)}, **{k: "cymbal" for k in (49, 50, 51, 52, 53, 55, 57, 58, 59)}}
"""AVL drumkit key -> drum type, read off the kits' sample names (``41-Ludwig16FloorTo-2``: the
names are cut at 20 characters, so the key is the reliable part; 48 is a hi-hat swish there)."""
SONIC_PI_DRUMS = {
    "kick": ["bd_808", "bd_ada", "bd_boom", "bd_fat", "bd_gas", "bd_haus", "bd_klub", "bd_mehackit", "bd_pure", "bd_sone",
             "bd_tek", "bd_zome", "bd_zum", "drum_bass_hard", "drum_bass_soft", "drum_heavy_kick", "elec_hollow_kick", "elec_soft_kick"],
    "snare": ["sn_dolf", "sn_dub", "sn_generic", "sn_zome", "drum_snare_hard", "drum_snare_soft", "elec_filt_snare",
              "elec_hi_snare", "elec_lo_snare", "elec_mid_snare", "elec_snare"],
    "hihat": ["drum_cymbal_closed", "drum_cymbal_open", "drum_cymbal_pedal"],
    "cymbal": ["drum_cymbal_hard", "drum_cymbal_soft", "drum_splash_hard", "drum_splash_soft", "elec_cymbal"],
    "tom": ["drum_tom_hi_hard", "drum_tom_hi_soft", "drum_tom_lo_hard", "drum_tom_lo_soft", "drum_tom_mid_hard",
            "drum_tom_mid_soft", "elec_fuzz_tom"],
}
"""Sonic Pi's drum one-shots by type (its names say ``cymbal`` for hi-hats, hence a table)."""

LANGUAGE_SECONDS = 2.0
MIN_LANGUAGE_CLIPS = 60
"""KTuberling languages with fewer recorded words go to the pool only."""

EXTRA_MAX_SECONDS = 4.0
EXTRA_MAX_CHUNKS = 8
SILENT_DB = -55.0
CLIPPED_FRACTION = 0.001
"""A clip counts as clipped when more than this share of its samples (and at least 3) sit at
full scale before normalisation (a single full-scale peak is a normalised recording, not clipping)."""
TRANSPOSED_FRACTION = 0.5
"""A program whose notes mostly sound more than 50 cents off their key (organ 16' ranks,
glockenspiel, harmonics) leaves the pitch task: its label would not be the pitch heard."""

TOOLS = {"fluidsynth": "fluidsynth", "espeak-ng": "espeak-ng", "flite": "flite", "sox": "sox"}
DATA_PACKAGES = ["hydrogen-drumkits", "hydrogen-data", "avldrums.lv2-soundfont", "sonic-pi-samples", "ktuberling-data",
                 "klettres-data", "wesnoth-1.16-data", "fillets-ng-data", "bucklespring-data", "oxygen-sounds",
                 "sound-theme-freedesktop"]
TOOL_LICENCES = ["fluid-soundfont-gm", "espeak-ng", "espeak-ng-data", "flite", "libflite1"]


@dataclass
class Clip:
    file_name: str
    num_samples: int
    package: str
    source: str
    labels: dict[str, str] = field(default_factory=dict)
    """Task -> label, for the tasks the clip belongs to."""
    groups: dict[str, str] = field(default_factory=dict)
    """Task -> source group (also for unlabelled clips that share a task's source)."""
    checks: dict[str, object] = field(default_factory=dict)


@dataclass
class Tally:
    """What was dropped, per reason and package."""

    dropped: Counter[str] = field(default_factory=Counter)
    cropped: Counter[str] = field(default_factory=Counter)


def say(message: str) -> None:
    print(f"[study-corpus] {message}", file=sys.stderr, flush=True)


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_")


# ----------------------------------------------------------------------------- packages


def ensure_tools() -> None:
    """Installs the rendering tools with apt-get when missing (root only)."""
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if not SOUNDFONT.exists():
        missing.append("fluid-soundfont-gm")
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"make_study_corpus needs the Debian packages {' '.join(missing)}: run `sudo apt-get install -y {' '.join(missing)}` (or run this command as root).")
    say(f"installing {' '.join(missing)} (apt-get install)")
    if subprocess.run(["apt-get", "install", "-y", "-q", *missing], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, stdout=subprocess.DEVNULL)


def fetch_packages(sources: Path, packages: Sequence[str] = DATA_PACKAGES, tool_licences: Sequence[str] = TOOL_LICENCES) -> dict[str, Path]:
    """``apt-get download`` + ``dpkg-deb -x`` of each data package (kept between runs); returns
    each package's unpacked root. Versions (also of the installed ``tool_licences`` packages) are
    recorded in ``sources/versions.json``."""
    roots = {}
    versions_file = sources / "versions.json"
    versions = json.loads(versions_file.read_text()) if versions_file.exists() else {}
    for package in packages:
        root = sources / package
        if not (root / ".unpacked").exists():
            debs = sources / "debs"
            debs.mkdir(parents=True, exist_ok=True)
            say(f"downloading {package} (apt-get download)")
            if subprocess.run(["apt-get", "download", package], cwd=debs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
                if os.geteuid() != 0:
                    raise SystemExit(f"`apt-get download {package}` failed: run `sudo apt-get update` and try again.")
                subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
                subprocess.run(["apt-get", "download", package], cwd=debs, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
            shutil.rmtree(root, ignore_errors=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            versions[package] = deb.name.split("_")[1].replace("%3a", ":")
            deb.unlink()
            (root / ".unpacked").touch()
        roots[package] = root
    for package in tool_licences:
        query = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True)
        if query.returncode == 0:
            versions[package] = query.stdout.strip()
    versions_file.write_text(json.dumps(versions, indent=1, sort_keys=True) + "\n")
    return roots


# ----------------------------------------------------------------------------- writing clips


class Writer:
    """Normalises, checks and writes clips; drops silent and clipped ones (counted)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.clips: list[Clip] = []
        self.tally = Tally()
        self.names: set[str] = set()
        self.note_carriers: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
        """GM program group -> (pitch, note) of labelled programs, for the modulation tasks."""
        self.drum_strokes: dict[str, list[tuple[str, np.ndarray, str]]] = defaultdict(list)
        """Kit group -> (name, hit, package) of labelled hits, for the roll task."""

    def add(self, name: str, wave: np.ndarray, package: str, source: str, *, labels=None, groups=None, checks=None) -> Clip | None:
        level = rms_db(wave)
        if level < SILENT_DB:
            self.tally.dropped[f"silent ({package})"] += 1
            return None
        if int(np.sum(np.abs(wave) >= 0.999)) >= max(3, CLIPPED_FRACTION * len(wave)):
            self.tally.dropped[f"clipped ({package})"] += 1
            return None
        if name in self.names:  # two sources with the same short name: number the later one
            stem = name.removesuffix(".flac")
            name = next(f"{stem}-{k}.flac" for k in range(2, 10_000) if f"{stem}-{k}.flac" not in self.names)
        self.names.add(name)
        write_flac(self.out / name, peak_normalise(wave))
        clip = Clip(name, len(wave), package, source, dict(labels or {}), dict(groups or {}),
                    {"rms_db": round(level, 1), **(checks or {})})
        self.clips.append(clip)
        return clip


def read(path: Path) -> np.ndarray | None:
    try:
        return load_waveform(path, SAMPLE_RATE).numpy()
    except AudioReadError as ex:
        say(f"skipping unreadable {ex}")
        return None


def chunks(wave: np.ndarray) -> list[np.ndarray]:
    """A sound as pool clips of 1-4 s: short ones padded to 1 s, long ones cut into 4 s pieces."""
    wave = trim_silence(wave)
    longest, shortest = int(EXTRA_MAX_SECONDS * SAMPLE_RATE), SAMPLE_RATE
    if len(wave) < shortest:
        return [fit_to_clip(wave, centre=True, seconds=1.0)]
    pieces = [wave[i : i + longest] for i in range(0, len(wave), longest)][:EXTRA_MAX_CHUNKS]
    return [p for p in pieces if len(p) >= shortest] or [pieces[0]]


def add_extra(writer: Writer, path: Path, package: str, name: str, *, groups=None) -> None:
    wave = read(path)
    if wave is None:
        return
    for i, piece in enumerate(chunks(wave)):
        writer.add(f"pool/{package}/{slug(name)}_{i}.flac", piece, package, f"{package}: {name}", groups=groups)


# ----------------------------------------------------------------------------- notes


def note_clips(writer: Writer, work: Path) -> None:
    for program in range(128):
        family = gm_family(program)
        pitches = NOTE_PITCHES if family else POOL_NOTE_PITCHES
        say(f"notes: GM program {program} ({family or 'pool only'}, {len(pitches)} notes; {len(writer.clips)} clips so far)")
        waves = render_notes(program, pitches, work, slot=NOTE_SLOT, hold=NOTE_HOLD, seconds=NOTE_SECONDS)
        for pitch, wave in zip(pitches, waves):
            if rms_db(wave) < -50:  # the program has no sample at this pitch
                writer.tally.dropped["note without a sample at its pitch (fluid-soundfont-gm)"] += 1
                continue
            checks = {}
            if family:
                f0 = estimate_f0(wave)
                checks = {"f0_hz": round(f0, 1), "cents_off": round(float(1200 * np.log2(f0 / midi_hz(pitch))), 1)}
            if family and pitch in NOTE_CARRIER_PITCHES:
                writer.note_carriers[f"gm{program:03d}"].append((pitch, wave))
            folder = "notes" if family else "pool_notes"
            labels = {"study_pitch": str(pitch), "study_instrument": family} if family else {}
            groups = {"study_pitch": f"gm{program:03d}", "study_instrument": f"gm{program:03d}"} if family else {}
            writer.add(f"{folder}/gm{program:03d}_p{pitch:03d}.flac", wave, "fluid-soundfont-gm", f"FluidR3_GM program {program}",
                       labels=labels, groups=groups, checks=checks)
    drop_transposed_from_pitch(writer.clips)


def drop_transposed_from_pitch(clips: list[Clip]) -> list[str]:
    """Takes the pitch label off the notes of programs that mostly sound off their key
    (:data:`TRANSPOSED_FRACTION`); they stay in the instrument task. Returns those programs."""
    off: dict[str, list[bool]] = defaultdict(list)
    for c in clips:
        if "cents_off" in c.checks:
            off[c.groups["study_pitch"]].append(abs(float(c.checks["cents_off"])) > 50)  # type: ignore[arg-type]
    transposed = sorted(g for g, flags in off.items() if sum(flags) > TRANSPOSED_FRACTION * len(flags))
    for c in clips:
        if c.groups.get("study_pitch") in transposed:
            c.labels.pop("study_pitch", None)
    return transposed


# ----------------------------------------------------------------------------- keywords


def espeak_variants() -> list[str]:
    """espeak-ng's voice variants (``!v``), sorted; those with a space in the name are skipped."""
    for data in (Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data"), Path("/usr/share/espeak-ng-data"), *Path("/usr/lib").glob("*/espeak-ng-data")):
        folder = data / "voices" / "!v"
        if folder.is_dir():
            return sorted(p.name for p in folder.iterdir() if p.is_file() and " " not in p.name)
    raise SystemExit("espeak-ng's voice variants (espeak-ng-data/voices/!v) were not found; reinstall espeak-ng-data.")


def keyword_voices(seed: int) -> list[str]:
    """Every espeak-ng variant with two of the English accents (seeded), and every flite voice
    with its sox tempo/pitch variants."""
    rng = random.Random(seed)
    voices = []
    for variant in espeak_variants():
        for accent in sorted(rng.sample(ACCENTS, ACCENTS_PER_VARIANT)):
            voices.append(f"espeak-ng:{accent}+{variant}")
    for name in FLITE_VOICES:
        for sox_variant in SOX_VARIANTS:
            voices.append(f"flite:{name}" + (f"@{sox_variant}" if sox_variant else ""))
    return voices


def speak(voice: str, word: str, work: Path) -> Path:
    engine, _, name = voice.partition(":")
    name, _, sox_variant = name.partition("@")
    raw = work / "speech.wav"
    if engine == "espeak-ng":
        subprocess.run(["espeak-ng", "-a", "50", "-v", name, "-w", str(raw), word], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        subprocess.run(["flite", "-voice", name, "-t", word, "-o", str(raw)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if sox_variant:
        changed = work / "speech_sox.wav"
        subprocess.run(["sox", "-R", str(raw), str(changed), *SOX_VARIANTS[sox_variant]], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return changed
    return raw


def keyword_clips(writer: Writer, work: Path, seed: int) -> None:
    voices = keyword_voices(seed)
    for k, voice in enumerate(voices):
        if k % 20 == 0:
            say(f"keywords: voice {k + 1}/{len(voices)} ({voice}; {len(writer.clips)} clips so far)")
        for word in WORDS:
            wave = read(speak(voice, word, work))
            if wave is None:
                continue
            spoken = trim_silence(wave)
            if len(spoken) > KEYWORD_SECONDS * SAMPLE_RATE:
                writer.tally.cropped["keywords longer than 1 s (centre kept)"] += 1
            name = f"keywords/{slug(voice.partition(':')[2].replace('+', '_').replace('@', '_'))}_{word}.flac"
            writer.add(name, fit_to_clip(spoken, centre=True, seconds=KEYWORD_SECONDS), voice.partition(":")[0], voice,
                       labels={"study_keywords": word}, groups={"study_keywords": voice_group(voice)},
                       checks={"spoken_s": round(len(spoken) / SAMPLE_RATE, 2)})


# ----------------------------------------------------------------------------- drums


def drum_clip(writer: Writer, wave: np.ndarray, kit: str, name: str, label: str | None, package: str) -> None:
    group = kit_group(kit)
    if label is None:
        for i, piece in enumerate(chunks(wave)):
            writer.add(f"pool/{package}/{slug(kit)}/{slug(name)}_{i}.flac", piece, package, f"{package} {kit}: {name}",
                       groups={"study_drums": group})
        return
    hit = fit_to_clip(wave, centre=False, seconds=DRUM_SECONDS)
    if writer.add(f"drums/{slug(kit)}/{slug(name)}.flac", hit, package, f"{package} {kit}: {name}",
                  labels={"study_drums": label}, groups={"study_drums": group}) is not None:
        writer.drum_strokes[slug(group)].append((slug(name), hit, package))


def modulation_clips(writer: Writer, seed: int) -> None:
    """The modulation group, from the notes and drum hits already rendered."""
    family_of = lambda group: gm_family(int(group.removeprefix("gm")))  # noqa: E731
    for build in (lambda: am_clips(writer.note_carriers, seed), lambda: vibrato_clips(writer.note_carriers, seed),
                  lambda: roll_clips(writer.drum_strokes, writer.note_carriers, family_of, seed)):
        made = build()
        say(f"modulation: {made[0].task}, {len(made)} clips ({len(writer.clips)} clips so far)")
        for clip in made:
            writer.add(clip.name, clip.wave, clip.package, clip.source, labels={clip.task: clip.label}, groups={clip.task: clip.group})


def hydrogen_drums(writer: Writer, roots: dict[str, Path]) -> None:
    """Every sample (all velocity layers) of every instrument of every Hydrogen kit."""
    for package in ("hydrogen-drumkits", "hydrogen-data"):
        kits_dir = roots[package] / "usr" / "share" / "hydrogen" / "data" / "drumkits"
        for kit in sorted(p for p in kits_dir.iterdir() if (p / "drumkit.xml").exists()):
            say(f"drums: Hydrogen kit {kit.name} ({len(writer.clips)} clips so far)")
            root = ET.parse(kit / "drumkit.xml").getroot()
            ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
            seen: set[str] = set()
            for inst in root.iter(f"{ns}instrument"):
                name = inst.findtext(f"{ns}name") or ""
                files = [e.text for e in inst.iter(f"{ns}filename") if e.text]
                for file in files:
                    if file in seen or not (kit / file).exists():
                        continue
                    seen.add(file)
                    wave = read(kit / file)
                    if wave is not None:
                        drum_clip(writer, wave, kit.name, f"{name}_{Path(file).stem}", drum_class(name), package)


def avl_drums(writer: Writer, roots: dict[str, Path]) -> None:
    """Every sample of the two AVL drumkit SoundFonts, read directly (the key in its name gives the drum)."""
    import torchaudio.functional as AF

    folder = roots["avldrums.lv2-soundfont"] / "usr" / "share" / "sounds" / "sf2"
    for path in sorted(folder.glob("*.sf2")):
        kit = "AVL " + path.stem.replace("_LV2", "").replace("_", " ")
        say(f"drums: {kit} ({len(writer.clips)} clips so far)")
        for name, rate, pcm in read_sf2_samples(path):
            wave = AF.resample(torch.from_numpy(pcm), rate, SAMPLE_RATE).numpy()
            drum_clip(writer, wave, kit, name, AVL_DRUM_KEYS.get(int(name.split("-", 1)[0])), "avldrums.lv2-soundfont")


def fluid_drums(writer: Writer, work: Path) -> None:
    """The FluidR3 GM percussion kits (bank 128), one hit per General MIDI drum key at velocity
    100; kits share samples, so a hit equal to one already kept (correlation > 0.995) is dropped."""
    presets = sorted({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 24, 25, 32, 33, 34, 35, 36, 40, 41, 42, 48})
    keys = sorted(GM_DRUM_KEYS)
    kept: dict[int, list[np.ndarray]] = defaultdict(list)
    say(f"drums: FluidR3 GM percussion, {len(presets)} kits ({len(writer.clips)} clips so far)")
    for preset in presets:
        waves = render_notes(preset, keys, work, slot=1.2, hold=0.5, seconds=DRUM_SECONDS, channel=9)
        for key, wave in zip(keys, waves):
            if rms_db(wave) < SILENT_DB:
                continue
            unit = wave / (np.linalg.norm(wave) + 1e-12)
            if any(float(np.dot(unit, other)) > 0.995 for other in kept[key]):
                writer.tally.dropped["duplicate hit of another FluidR3 kit (fluid-soundfont-gm)"] += 1
                continue
            kept[key].append(unit)
            drum_clip(writer, wave, "FluidR3 GM percussion", f"kit{preset:03d}_key{key}", GM_DRUM_KEYS[key], "fluid-soundfont-gm")


def sonic_pi(writer: Writer, roots: dict[str, Path]) -> None:
    """Sonic Pi's drum one-shots as one more kit; its other samples go to the pool (with the kit's
    group, so they leave the pool if that kit is held out)."""
    folder = roots["sonic-pi-samples"] / "usr" / "share" / "sonic-pi" / "samples"
    label_of = {name: label for label, names in SONIC_PI_DRUMS.items() for name in names}
    say(f"drums: Sonic Pi samples ({len(writer.clips)} clips so far)")
    for path in sorted(folder.glob("*.flac")) + sorted(folder.glob("*.wav")):
        wave = read(path)
        if wave is not None:
            drum_clip(writer, wave, "Sonic Pi", path.stem, label_of.get(path.stem), "sonic-pi-samples")


# ----------------------------------------------------------------------------- spoken language


def ktuberling_words(root: Path) -> dict[str, list[tuple[str, Path]]]:
    """Language -> ``(object name, audio file)`` for every recorded word (one entry per file)."""
    sounds = root / "usr" / "share" / "ktuberling" / "sounds"
    words: dict[str, list[tuple[str, Path]]] = {}
    for theme in sorted(sounds.glob("*.soundtheme")):
        language = theme.stem
        seen: set[Path] = set()
        entries = []
        for sound in ET.parse(theme).getroot().iter("sound"):
            path = sounds / sound.get("file", "")
            if path.is_file() and path not in seen:
                seen.add(path)
                entries.append((sound.get("name", ""), path))
        if entries:
            words[language] = sorted(entries)
    return words


def language_clips(writer: Writer, roots: dict[str, Path]) -> None:
    words = ktuberling_words(roots["ktuberling-data"])
    # Word groups over every object name, with files shared within a language merged.
    pairs = [(name, str(path)) for entries in words.values() for name, path in entries]
    group_of = word_groups(pairs)
    for language, entries in sorted(words.items()):
        labelled = len(entries) >= MIN_LANGUAGE_CLIPS
        say(f"language: KTuberling {language}, {len(entries)} words ({'task' if labelled else 'pool only'}; {len(writer.clips)} clips so far)")
        for name, path in entries:
            wave = read(path)
            if wave is None:
                continue
            spoken = trim_silence(wave)
            groups = {"study_language": group_of[name]}
            if labelled:
                if len(spoken) > LANGUAGE_SECONDS * SAMPLE_RATE:
                    writer.tally.cropped["words longer than 2 s (centre kept)"] += 1
                writer.add(f"language/{language}/{slug(name)}.flac", fit_to_clip(spoken, centre=True, seconds=LANGUAGE_SECONDS),
                           "ktuberling-data", f"ktuberling-data {language}: {name} ({path.name})",
                           labels={"study_language": language}, groups=groups, checks={"spoken_s": round(len(spoken) / SAMPLE_RATE, 2)})
            else:
                for i, piece in enumerate(chunks(wave)):
                    writer.add(f"pool/ktuberling-data/{language}/{slug(name)}_{i}.flac", piece, "ktuberling-data",
                               f"ktuberling-data {language}: {name}", groups=groups)


# ----------------------------------------------------------------------------- unlabelled pool material

AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".flac", ".opus", ".aiff")


def extra_clips(writer: Writer, roots: dict[str, Path]) -> None:
    for package in ("klettres-data", "wesnoth-1.16-data", "fillets-ng-data", "bucklespring-data", "oxygen-sounds", "sound-theme-freedesktop"):
        root = roots[package]
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        say(f"pool: {package}, {len(files)} files ({len(writer.clips)} clips so far)")
        for path in files:
            relative = path.relative_to(root / "usr" / "share")
            add_extra(writer, path, package, "_".join(relative.with_suffix("").parts[-3:]))


# ----------------------------------------------------------------------------- splits and lists


def assign_splits(clips: list[Clip], seed: int) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Per task: group -> split. Returns them and each labelled clip's split (notes: by program,
    one assignment for both note tasks)."""
    assignments: dict[str, dict[str, str]] = {}
    for task in ("notes", "study_keywords", "study_drums", "study_language", *MODULATION_TASKS):
        label_task = "study_instrument" if task == "notes" else task
        groups: dict[str, Counter[str]] = defaultdict(Counter)
        for c in clips:
            if label_task in c.labels:
                groups[c.groups[label_task]][c.labels[label_task]] += 1
        plan = SPLIT_PLAN[task]
        assignment = split_groups(groups, test=plan["test"], valid=plan["valid"], min_test=plan["min_test"],
                                  min_valid=plan["min_valid"], seed=seed + plan["offset"])
        if task == "notes":
            assignments["study_pitch"] = assignments["study_instrument"] = assignment
        else:
            assignments[task] = assignment
    split_of = {}
    for c in clips:
        for task in c.labels:
            split_of[f"{task}:{c.file_name}"] = assignments[task][c.groups[task]]
    return assignments, split_of


def write_lists(out: Path, clips: list[Clip], assignments: dict[str, dict[str, str]], split_of: dict[str, str]) -> tuple[list[Clip], dict]:
    """The task CSVs, ``groups.csv``, and ``pretrain.tsv``; deletes pool-only clips of held-out groups."""
    report: dict[str, object] = {}
    for task in TASKS:
        rows = sorted((c for c in clips if task in c.labels), key=lambda c: c.file_name)
        with open(out / f"{task}.csv", "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["file_name", "label", "split"])
            for c in rows:
                writer.writerow([c.file_name, c.labels[task], split_of[f"{task}:{c.file_name}"]])
        per_split = {s: [c for c in rows if split_of[f"{task}:{c.file_name}"] == s] for s in ("train", "valid", "test")}
        report[task] = {
            "clips": len(rows),
            "hours": round(sum(c.num_samples for c in rows) / SAMPLE_RATE / 3600, 3),
            "classes": len({c.labels[task] for c in rows}),
            "splits": {s: len(v) for s, v in per_split.items()},
            "groups": {s: sorted({c.groups[task] for c in v}) for s, v in per_split.items()},
            "class_counts": {s: dict(sorted(Counter(c.labels[task] for c in v).items())) for s, v in per_split.items()},
        }

    with open(out / "groups.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["task", "group", "split"])
        for task in TASKS:
            present = {c.groups[task] for c in clips if task in c.labels}
            for group, split in sorted(assignments[task].items()):
                if group in present:
                    writer.writerow([task, group, split])

    held_out = {task: {g for g, s in a.items() if s != "train"} for task, a in assignments.items()}
    pool, kept, removed = [], [], 0
    for c in clips:
        if c.labels and set(c.labels) <= set(MODULATION_TASKS):
            kept.append(c)  # held-out downstream tasks: never pre-trained on
            continue
        if pool_allows(c.groups.items(), held_out):
            pool.append(c)
        elif not c.labels:  # unlabelled material of a held-out source: not used at all
            (out / c.file_name).unlink()
            removed += 1
            continue
        kept.append(c)
    with open(out / "pretrain.tsv", "w") as f:
        f.write("path\tnum_samples\n")
        for c in sorted(pool, key=lambda c: c.file_name):
            f.write(f"{c.file_name}\t{c.num_samples}\n")
    composition: dict[str, dict[str, float]] = {}
    for c in pool:
        key = ("train clips of " + " / ".join(sorted(c.labels))) if c.labels else f"unlabelled: {c.package}"
        entry = composition.setdefault(key, {"clips": 0, "hours": 0.0})
        entry["clips"] += 1
        entry["hours"] += c.num_samples / SAMPLE_RATE / 3600
    report["pool"] = {
        "clips": len(pool),
        "hours": round(sum(c.num_samples for c in pool) / SAMPLE_RATE / 3600, 3),
        "composition": {k: {"clips": v["clips"], "hours": round(v["hours"], 3)} for k, v in sorted(composition.items())},
        "held_out_groups_kept_out": "test and valid groups of every task",
        "modulation_tasks_kept_out": "every clip of the modulation group (held-out downstream tasks)",
        "unlabelled_clips_of_held_out_sources_removed": removed,
    }
    return kept, report


def verify(out: Path, clips: list[Clip], split_of: dict[str, str], assignments: dict[str, dict[str, str]]) -> dict[str, object]:
    """Re-reads the lists and checks the promises: disjoint groups, no held-out clip or group in the pool."""
    pool = {line.split("\t")[0] for line in (out / "pretrain.tsv").read_text().splitlines()[1:]}
    by_name = {c.file_name: c for c in clips}
    problems = []
    for task in TASKS:
        with open(out / f"{task}.csv") as f:
            rows = list(csv.DictReader(f))
        groups_per_split: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            groups_per_split[row["split"]].add(by_name[row["file_name"]].groups[task])
            if row["split"] != "train" and row["file_name"] in pool:
                problems.append(f"{task}: {row['split']} clip {row['file_name']} is in the pool")
        for a in ("train", "valid", "test"):
            for b in ("train", "valid", "test"):
                if a < b and groups_per_split[a] & groups_per_split[b]:
                    problems.append(f"{task}: groups in both {a} and {b}: {sorted(groups_per_split[a] & groups_per_split[b])[:3]}")
    for name in pool:
        if set(by_name[name].labels) & set(MODULATION_TASKS):
            problems.append(f"pool clip {name} belongs to a modulation task")
        for task, group in by_name[name].groups.items():
            if assignments.get(task, {}).get(group, "train") != "train":
                problems.append(f"pool clip {name} comes from held-out {task} group {group}")
    lengths = [c.num_samples / SAMPLE_RATE for c in clips]
    if min(lengths) < 1.0 or max(lengths) > 4.0:
        problems.append(f"clip lengths outside 1-4 s: {min(lengths):.2f}-{max(lengths):.2f}")
    if problems:
        raise SystemExit("study corpus check failed: " + "; ".join(problems[:5]))
    return {"groups_disjoint_across_splits": True, "no_held_out_clip_or_group_in_pool": True,
            "clip_seconds_min": round(min(lengths), 2), "clip_seconds_max": round(max(lengths), 2)}


# ----------------------------------------------------------------------------- report, README, licences


def copy_licences(out: Path, roots: dict[str, Path], packages: Sequence[str] = (*TOOL_LICENCES, *DATA_PACKAGES)) -> list[str]:
    """Each package's Debian copyright file into ``out/licenses`` (from its unpacked root in
    ``roots``, else the installed one); the packages that had one."""
    lic = out / "licenses"
    lic.mkdir(exist_ok=True)
    copied = []
    for package in packages:
        base = roots.get(package, Path("/"))
        source = base / "usr" / "share" / "doc" / package / "copyright"
        if source.exists():
            shutil.copyfile(source, lic / f"{package}.copyright")
            copied.append(package)
    return copied


def note_checks(clips: list[Clip]) -> dict[str, object]:
    notes = [c for c in clips if "cents_off" in c.checks]
    off = [c for c in notes if abs(float(c.checks["cents_off"])) > 50]  # type: ignore[arg-type]
    by_program = Counter(c.file_name.split("/")[1].split("_")[0] for c in off)
    pitch_notes = [c for c in notes if "study_pitch" in c.labels]
    pitch_off = [c for c in off if "study_pitch" in c.labels]
    return {"notes": len(notes), "notes_within_50_cents_of_label": len(notes) - len(off),
            "notes_off_by_more_than_50_cents": len(off), "off_pitch_notes_per_program": dict(by_program.most_common()),
            "programs_left_out_of_study_pitch": sorted({c.groups["study_pitch"] for c in notes if "study_pitch" not in c.labels}),
            "study_pitch_notes_within_50_cents": f"{len(pitch_notes) - len(pitch_off)} of {len(pitch_notes)}"}


def finished_report(out: Path, *, version: int, seed: int, lists: Sequence[Path], names: Sequence[str] = (),
                    required: Sequence[Path] = ()) -> dict | None:
    """The ``build_report.json`` of a finished build of ``version`` and ``seed`` in ``out`` whose
    clip lists (``file_name`` CSVs) all exist and whose clips (and ``names``, relative to ``out``)
    and ``required`` files are all there; ``None`` otherwise."""
    report_file = out / "build_report.json"
    if not report_file.is_file():
        return None
    report = json.loads(report_file.read_text())
    if report.get("build_version") != version or report.get("seed") != seed:
        return None
    names = list(names)
    for listed in lists:
        if not listed.is_file():
            return None
        with open(listed, newline="") as f:
            names += [row["file_name"] for row in csv.DictReader(f)]
    if not names or not all((out / n).is_file() for n in set(names)) or not all(r.exists() for r in required):
        return None
    return report


def already_built(out: Path, seed: int) -> dict | None:
    """The report of a finished build with this builder version and seed whose files are all there."""
    pool = out / "pretrain.tsv"
    names = [line.split("\t")[0] for line in pool.read_text().splitlines()[1:]] if pool.exists() else []
    return finished_report(out, version=BUILD_VERSION, seed=seed, lists=[out / f"{task}.csv" for task in TASKS], names=names,
                           required=[out / "stats.json"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aape_plugin.corpora.make_study_corpus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="corpus folder (default: $AAPE_STUDY_DIR or ~/.cache/aape-fairseq2/study-corpus)")
    parser.add_argument("--sources", type=Path, default=None, help="where packages are downloaded and unpacked (default: OUT-sources)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild even when a complete corpus is there")
    args = parser.parse_args(argv)

    out = (args.out or study_dir()).expanduser().resolve()
    sources = (args.sources or out.with_name(out.name + "-sources")).expanduser().resolve()
    started = time.monotonic()

    if not args.force and (done := already_built(out, args.seed)) is not None:
        say(f"{out} is complete ({done['total']['clips']} clips, {done['total']['hours']} h, built {done['built']}); "
            f"nothing to do (--force rebuilds)")
        return 0

    ensure_tools()
    sources.mkdir(parents=True, exist_ok=True)
    roots = fetch_packages(sources)
    versions = json.loads((sources / "versions.json").read_text())

    for sub in ("notes", "pool_notes", "keywords", "drums", "language", "pool", "modulation", "licenses"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for stale in ("build_report.json", "stats.json", "pretrain.tsv"):
        (out / stale).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    work = sources / "render"
    work.mkdir(exist_ok=True)
    torch.set_num_threads(1)

    writer = Writer(out)
    timings = {}
    for stage, build in (
        ("notes", lambda: note_clips(writer, work)),
        ("keywords", lambda: keyword_clips(writer, work, args.seed)),
        ("drums", lambda: (hydrogen_drums(writer, roots), avl_drums(writer, roots), fluid_drums(writer, work), sonic_pi(writer, roots))),
        ("language", lambda: language_clips(writer, roots)),
        ("pool extras", lambda: extra_clips(writer, roots)),
        ("modulation", lambda: modulation_clips(writer, args.seed)),
    ):
        t0 = time.monotonic()
        build()
        timings[stage] = round(time.monotonic() - t0, 1)

    shutil.rmtree(work)  # the per-program renders (about 800 MB)
    assignments, split_of = assign_splits(writer.clips, args.seed)
    clips, report = write_lists(out, writer.clips, assignments, split_of)
    checks = verify(out, clips, split_of, assignments)

    say("pool: log-mel statistics (aape_plugin.data.stats)")
    from aape_plugin.data.features import LogMelConfig
    from aape_plugin.data.manifest import read_manifest
    from aape_plugin.data.stats import compute_stats

    entries = read_manifest(out / "pretrain.tsv", out)
    stats = compute_stats(entries, LogMelConfig(), max_clips=2000, seed=args.seed, progress=False,
                          source=f"pretrain.tsv ({min(len(entries), 2000)} of {len(entries)} clips)")
    stats.save(out / "stats.json")

    licences = copy_licences(out, roots)
    (out / "clip_checks.json").write_text(json.dumps({c.file_name: {"source": c.source, **c.checks} for c in clips}, indent=0) + "\n")

    total_samples = sum(c.num_samples for c in clips)
    flac_bytes = sum(f.stat().st_size for f in out.rglob("*.flac"))
    full = {
        "build_version": BUILD_VERSION,
        "seed": args.seed,
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        "build_seconds": round(time.monotonic() - started, 1),
        "stage_seconds": timings,
        "total": {"clips": len(clips), "hours": round(total_samples / SAMPLE_RATE / 3600, 3), "flac_mb": round(flac_bytes / 1e6, 1)},
        "tasks": {task: report[task] for task in TASKS},
        "pool": report["pool"],
        "clips_per_package": dict(sorted(Counter(c.package for c in clips).items())),
        "package_versions": versions,
        "licences_copied": licences,
        "checks": {
            **checks,
            **note_checks(clips),
            "dropped": dict(sorted(writer.tally.dropped.items())),
            "cropped": dict(sorted(writer.tally.cropped.items())),
            "quietest_clip_rms_db": min(float(c.checks["rms_db"]) for c in clips),  # type: ignore[arg-type]
        },
        "stats": {"mean": round(stats.mean, 4), "std": round(stats.std, 4), "clips": stats.num_clips},
    }
    (out / "build_report.json").write_text(json.dumps(full, indent=1) + "\n")

    from aape_plugin.corpora.study_readme import write_readme

    write_readme(out, full)

    say(f"done in {full['build_seconds']:.0f} s: {len(clips)} clips, {full['total']['hours']} h, {full['total']['flac_mb']} MB of FLAC in {out}")
    for task in TASKS:
        t = report[task]
        say(f"  {task}: {t['clips']} clips, {t['classes']} classes, train/valid/test {t['splits']['train']}/{t['splits']['valid']}/{t['splits']['test']}")
    say(f"  pool: {report['pool']['clips']} clips, {report['pool']['hours']} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
