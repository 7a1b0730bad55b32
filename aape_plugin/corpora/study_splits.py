"""How the study corpus is split: by source group, never by clip.

Every task's clips are grouped by where they come from (one GM program, one voice, one drum
kit, one spoken word), and a group's clips all land in one split, so a probe's test score is
always on instruments, voices, kits or words it never saw in training. The pre-training pool
takes no clip of a test or validation group of any task. Pure functions; the builder
(:mod:`aape_plugin.corpora.make_study_corpus`) applies them.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping

SPLITS = ("train", "valid", "test")

# General MIDI program -> NSynth instrument family. Programs left out have no clear family
# (pads, effects, percussive and some ethnic instruments, accordion, harmonica, timpani,
# orchestra hit, dulcimer): they go to the pre-training pool only.
GM_FAMILIES: dict[int, str] = {
    **{p: "keyboard" for p in range(0, 8)},  # pianos, electric pianos, harpsichord, clavinet
    **{p: "mallet" for p in range(8, 15)},  # celesta, glockenspiel, music box, vibraphone, marimba, xylophone, tubular bells
    108: "mallet",  # kalimba
    **{p: "organ" for p in range(16, 21)},  # drawbar, percussive, rock, church, reed organ
    **{p: "guitar" for p in range(24, 32)},
    **{p: "bass" for p in range(32, 40)},  # acoustic, electric, fretless, slap and synth basses
    **{p: "string" for p in range(40, 47)},  # violin, viola, cello, contrabass, tremolo, pizzicato, harp
    **{p: "string" for p in range(48, 52)},  # string and synth-string ensembles
    110: "string",  # fiddle
    **{p: "vocal" for p in range(52, 55)},  # choir aahs, voice oohs, synth voice
    **{p: "brass" for p in range(56, 64)},
    **{p: "reed" for p in range(64, 72)},  # saxophones, oboe, English horn, bassoon, clarinet
    111: "reed",  # shanai
    **{p: "flute" for p in range(72, 80)},  # piccolo, flute, recorder, pan flute, bottle, shakuhachi, whistle, ocarina
    **{p: "synth_lead" for p in range(80, 88)},
}


def gm_family(program: int) -> str | None:
    """The NSynth family of a General MIDI program, or None for a pool-only program."""
    return GM_FAMILIES.get(program)


def voice_group(voice: str) -> str:
    """The speaker a synthetic voice belongs to: the split unit of the keyword task.

    ``espeak-ng:en-gb-x-rp+f4`` -> ``espeak-ng:f4``: an espeak-ng variant sets the voice's pitch,
    formants and breathiness, the accent only the pronunciation, so all accents of one variant
    are one speaker. ``flite:slt@tempo=0.87`` -> ``flite:slt``: sox variants stay with their voice.
    """
    engine, _, name = voice.partition(":")
    name = name.split("@", 1)[0]
    if engine == "espeak-ng":
        variant = name.partition("+")[2]
        return f"espeak-ng:{variant or 'default'}"
    return f"{engine}:{name}"


KIT_GROUPS: dict[str, str] = {
    # The AVL drumkits and Hydrogen's "The Black Pearl" are recordings of the same drums and
    # share their hi-hats, splash and cowbell: one group.
    "The Black Pearl 1.0": "AVL drumkits",
    "AVL Black Pearl 4": "AVL drumkits",
    "AVL Red Zeppelin 4": "AVL drumkits",
    # One author's kits, built from overlapping recordings.
    "Millo-Drums_v.1": "Millo",
    "Millo_MultiLayered2": "Millo",
    "Millo_MultiLayered3": "Millo",
}


def kit_group(kit: str) -> str:
    """The split unit of the drum task: a kit, or the kits that share recordings."""
    return KIT_GROUPS.get(kit, kit)


_THEME_PREFIX = re.compile(r"^(egypt_|moon_|pizzeria_|tv_|xmas_|robot_workshop_|butterflies_|tux-)")


def object_word(name: str) -> str:
    """A KTuberling object's word: theme prefix and numbering dropped (``tv_ball`` -> ``ball``,
    ``pizzeria_olive2`` -> ``olive``), since each theme's ball is the same spoken word."""
    return re.sub(r"\d+$", "", _THEME_PREFIX.sub("", name.lower()))


def word_groups(objects: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Object name -> word group, for ``(object name, audio file)`` pairs of all languages.

    Objects with the same word (:func:`object_word`, a plural with its singular) are one group,
    and so are objects that share an audio file in any language. The group is named by its
    alphabetically first word.
    """
    pairs = sorted(set(objects))
    words = {object_word(name) for name, _ in pairs}

    def singular(word: str) -> str:
        return word[:-1] if word.endswith("s") and word[:-1] in words else word

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_file: dict[str, str] = {}
    for name, file in pairs:
        key = "word:" + singular(object_word(name))
        union("name:" + name, key)
        if file in by_file:
            union(by_file[file], "name:" + name)
        by_file[file] = "name:" + name

    names = {name for name, _ in pairs}
    roots: dict[str, list[str]] = {}
    for name in names:
        roots.setdefault(find("name:" + name), []).append(name)
    group_of_root = {root: min(singular(object_word(n)) for n in members) for root, members in roots.items()}
    return {name: group_of_root[find("name:" + name)] for name in names}


def split_groups(
    groups: Mapping[str, Counter[str]],
    *,
    test: float,
    valid: float,
    seed: int,
    min_test: int = 0,
    min_valid: int = 0,
) -> dict[str, str]:
    """Assigns whole groups to test, valid and train.

    ``groups`` maps a group to its clip count per label. For test, then valid, the split's
    target is ``max(fraction * all clips, min_*)`` clips: first one group for each label the
    split lacks, then more groups until the target is reached, each time the first group in a
    seeded random order that still fits the target (else the smallest). A group is taken only
    if every label it has keeps a group for each split still to fill (so every label reaches
    train, valid and test when it has at least three groups). The rest is train.
    Deterministic for a given ``groups`` and ``seed``.
    """
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    total = sum(sum(c.values()) for c in groups.values())
    labels = sorted({label for c in groups.values() for label, n in c.items() if n > 0})
    left = list(order)
    assignment: dict[str, str] = {}

    def holders(label: str) -> list[str]:
        return [g for g in left if groups[g][label] > 0]

    def can_take(group: str, reserve: int) -> bool:
        return all(len(holders(label)) - 1 >= reserve for label, n in groups[group].items() if n > 0)

    for split, fraction, minimum, reserve in (("test", test, min_test, 2), ("valid", valid, min_valid, 1)):
        target = max(fraction * total, minimum)
        count = 0

        def pick(candidates: list[str]) -> str:
            # The first (in seeded order) that still fits the target, else the smallest: groups of
            # very different sizes (drum kits) then land near the target instead of far past it.
            fitting = [g for g in candidates if count + sum(groups[g].values()) <= target]
            return fitting[0] if fitting else min(candidates, key=lambda g: sum(groups[g].values()))

        def take(group: str) -> None:
            nonlocal count
            assignment[group] = split
            left.remove(group)
            count += sum(groups[group].values())

        for label in labels:
            if any(groups[g][label] > 0 for g, s in assignment.items() if s == split):
                continue
            eligible = [g for g in holders(label) if can_take(g, reserve)]
            if eligible:
                take(pick(eligible))
        while count < target:
            eligible = [g for g in left if can_take(g, reserve)]
            if not eligible:
                break
            take(pick(eligible))

    for group in left:
        assignment[group] = "train"
    return assignment


def pool_allows(task_groups: Iterable[tuple[str, str]], held_out: Mapping[str, set[str]]) -> bool:
    """Whether a clip may enter the pre-training pool: none of its ``(task, group)`` pairs is a
    held-out (test or validation) group of that task."""
    return not any(group in held_out.get(task, set()) for task, group in task_groups)
