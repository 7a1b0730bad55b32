"""The study corpus' README, written from its build report (so the numbers are the measured ones).

    python -m aape_plugin.corpora.study_readme [DIR]      (rewrites DIR/README.md from DIR/build_report.json)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aape_plugin.data.study_corpus import study_dir

SPLIT_BY = {
    "study_pitch": "GM program (instrument)",
    "study_instrument": "GM program (instrument)",
    "study_keywords": "voice (espeak-ng variant with all its accents; flite voice with its sox variants)",
    "study_drums": "kit (kits that share recordings count as one)",
    "study_language": "word (an object's word in every language and theme)",
    "study_am_rate": "carrier: GM program (its notes), or one noise band under every rate",
    "study_vibrato_rate": "carrier: GM program (its notes), or one harmonic tone under every rate",
    "study_roll_rate": "stroke source: drum kit (as in study_drums), or GM program (its notes)",
}

SOURCES = {
    "study_pitch": "FluidR3 GM SoundFont via fluidsynth: 2 s notes (1.5 s held), MIDI 36-84",
    "study_instrument": "the same notes; label: NSynth family of the program",
    "study_keywords": "espeak-ng and flite (synthetic speech), 1 s",
    "study_drums": "Hydrogen kits, AVL drumkits, FluidR3 GM percussion, Sonic Pi one-shots, 1 s",
    "study_language": "KTuberling's recorded words (real voices), 2 s",
    "study_am_rate": "the FluidR3 notes (0.25-1.25 s) and noise bands, amplitude-modulated at 4-38 Hz (depth 0.5-1, random phase), 1 s",
    "study_vibrato_rate": "the FluidR3 notes and harmonic tones with a 30-100 cent vibrato at 4-38 Hz, 1 s",
    "study_roll_rate": "drum hits of the kits and notes of pianos, mallets and guitars (and basses) repeated at 4-38 Hz (8% timing, 3 dB loudness jitter), 1 s",
}

LICENCES = """\
The audio is derived from these Debian packages; each one's copyright file is in `licenses/`
(read it before redistributing clips: the corpus is built locally for research).

- `fluid-soundfont-gm` (FluidR3 GM by Frank Wen): MIT.
- `espeak-ng`, `espeak-ng-data` (GPL-3+) and `flite`, `libflite1` (BSD-style): the keyword
  clips are the programs' output.
- `hydrogen-drumkits`, `hydrogen-data`: per kit GPL-2+, CC-BY-3.0, CC-BY-SA-3.0 or CC0 (each
  drum clip's folder is its kit).
- `avldrums.lv2-soundfont` (AVL Drumkits, Glen MacArthur): CC-BY-SA-3.0.
- `sonic-pi-samples`: CC0, a few samples CC-BY-SA-4.0 (listed in the copyright file).
- `ktuberling-data`, `klettres-data` (KDE): GPL-2+ (a few files CC0 or CC-BY).
- `wesnoth-1.16-data`, `fillets-ng-data`: GPL-2 (Wesnoth: some files under other free
  licences, listed); `bucklespring-data`: GPL-2+; `oxygen-sounds`: LGPL-3+;
  `sound-theme-freedesktop`: GPL-2+, CC-BY-3.0 and CC-BY-SA-3.0 per file.
"""


def _hours(h: float) -> str:
    return f"{h:.2f} h"


def render_readme(report: dict) -> str:
    tasks = report["tasks"]
    pool = report["pool"]
    checks = report["checks"]
    lines = [
        "# Study corpus",
        "",
        f"Real audio for the AaPE vs plain-stem study: {report['total']['clips']:,} clips, "
        f"{_hours(report['total']['hours'])}, 16 kHz mono FLAC, 1-4 s each ({report['total']['flac_mb']} MB), "
        "rendered from Debian packages by `python -m aape_plugin.corpora.make_study_corpus` "
        f"(built {report['built']} in {report['build_seconds'] / 60:.1f} min, seed {report['seed']}). "
        "Data sets address this folder as the root `@study` (asset cards `study_pool`, `study_pitch`, "
        "`study_instrument`, `study_keywords`, `study_drums`, `study_language`).",
        "",
        "## Tasks",
        "",
        "Each task is an EVAR metadata CSV (`file_name,label,split`). Splits are by source group: a "
        "group's clips are all in one split, so test instruments, voices, kits and words are never "
        "heard in training (`groups.csv` lists every group's split).",
        "",
        "| task | labels | clips (train / valid / test) | split by | source |",
        "|---|---|---|---|---|",
    ]
    for task, t in tasks.items():
        s = t["splits"]
        lines.append(f"| `{task}` | {t['classes']} classes | {t['clips']:,} ({s['train']:,} / {s['valid']:,} / {s['test']:,}) "
                     f"| {SPLIT_BY[task]} | {SOURCES[task]} |")
    lines += [
        "",
        "Class counts per split are in `build_report.json` (`tasks.*.class_counts`), the groups of each "
        "split under `tasks.*.groups`.",
        "",
        "- Notes: the 85 General MIDI programs with a clear NSynth family (keyboard, mallet, organ, "
        "guitar, bass, string, vocal, brass, reed, flute, synth_lead); velocity 100, no reverb or "
        "chorus. Programs of one family often share FluidR3 samples (e.g. the string ensembles), so an "
        "unheard program is a new patch, not always new recordings. Programs whose notes mostly sound "
        "more than 50 cents off their key (" + ", ".join(checks["programs_left_out_of_study_pitch"]) + "; "
        "e.g. organs with a 16' rank, the glockenspiel two octaves up) are in `study_instrument` only: "
        "their key is not the pitch heard.",
        "- Keywords: the 20 core words of Speech Commands (yes, no, up, down, left, right, on, off, "
        "stop, go, zero-nine). **The speech is synthetic** (espeak-ng variants with two English accents "
        "each, flite's five voices with sox tempo/pitch variants): scores on `study_keywords` say "
        "nothing about real speech.",
        "- Drums: kick, snare, hihat, tom, cymbal, clap, from the kits' instrument names (AVL: the "
        "key of each sample, FluidR3: the General MIDI key); every velocity layer of every "
        "instrument. The AVL kits and Hydrogen's Black Pearl share recordings and are one group, as "
        "are the three Millo kits and FluidR3's 31 percussion kits (whose identical hits are dropped).",
        "- Language: words of the children's game KTuberling recorded by its translators, in the "
        "languages with at least 60 recorded words. Split by word: an object's word (theme prefix and "
        "numbering dropped, plurals with singulars, shared files together) is in one split for all "
        "languages. **Confound:** each language was recorded by one or very few people, so the label "
        "is as much the speaker (voice, microphone, room) as the language; the task measures "
        "speaker/language identity on unseen words. It is the only task on real speech.",
        "",
        "## Pre-training pool",
        "",
        f"`pretrain.tsv`: {pool['clips']:,} clips, {_hours(pool['hours'])}: the training clips of every task "
        "plus unlabelled material. It holds no clip of a test or validation group of any task, and "
        "no unlabelled clip from such a group's source (e.g. a held-out kit's cowbells).",
        "",
        "| part | clips | hours |",
        "|---|---|---|",
    ]
    for part, v in pool["composition"].items():
        lines.append(f"| {part} | {v['clips']:,} | {v['hours']:.2f} |")
    dropped = ", ".join(f"{n} {k}" for k, n in checks["dropped"].items()) or "none"
    cropped = ", ".join(f"{n} {k}" for k, n in checks["cropped"].items()) or "none"
    lines += [
        "",
        f"`stats.json`: log-mel mean {report['stats']['mean']} and std {report['stats']['std']} of the pool "
        f"({report['stats']['clips']} sampled clips, `aape_plugin.data.stats`).",
        "",
        "## Checks",
        "",
        f"- Group splits are disjoint and no test or validation clip or group is in the pool (checked "
        "after writing the lists).",
        f"- Pitch: {checks['notes_within_50_cents_of_label']:,} of {checks['notes']:,} labelled notes measure within 50 "
        f"cents of their MIDI key (YIN-style estimate on 0.1-0.6 s); in `study_pitch`, after leaving out the "
        f"transposed programs, {checks['study_pitch_notes_within_50_cents']}. The rest are estimate errors on "
        "single notes or patches off their key at some pitches; the label follows the key, as NSynth's "
        "does. Per clip: `clip_checks.json`.",
        f"- Dropped: {dropped}.",
        f"- Cropped: {cropped}.",
        f"- Quietest kept clip: {checks['quietest_clip_rms_db']} dB RMS. Every clip is peak-normalised to 0.7.",
        "",
        "## Licences",
        "",
        LICENCES,
    ]
    return "\n".join(lines)


def write_readme(out: Path, report: dict) -> None:
    (out / "README.md").write_text(render_readme(report))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else study_dir()
    write_readme(out, json.loads((out / "build_report.json").read_text()))
    print(out / "README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
