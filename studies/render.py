"""Rebuilds an experiment's page (``DOCS/<page>.md`` and ``.json``) from its stored outcomes
alone: nothing is trained or measured.

    python -m studies.render EXPERIMENT [EXPERIMENT ...] --docs docs
    python -m studies.render --all --docs docs

``--all`` rebuilds every declared page whose outcomes are stored (a page whose outcomes are not
stored yet is named and left unwritten), then every page of the other analyses that their stored
JSON gives (:data:`ANALYSES`): the stem-part pages (``modulation.md``, ``shift-parts.md``,
``pole-gradients.md``) and what ``make study``'s published data give (``results.md``'s summary,
modulation section and findings, the README's tables and the figures: ``python -m studies.study
--from-docs``). The parts of ``results.md`` that report the main study's runs are written by
``python -m studies.study`` from its runs. A page's sections (another experiment's tables on the
same page) follow when their outcomes are stored. ``--note`` and ``--adaptivity`` change the
stored note under a page's tables (or a screen's adaptivity cells) before rendering.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studies.experiments import EXPERIMENTS, Experiment, experiment, host_of


@dataclass(frozen=True, kw_only=True)
class Page:
    """A page's files, as text: ``DOCS/<page>.md`` and (except a screen's, which is its stored form) ``.json``."""

    markdown: str
    data: str | None


def outcomes_file(exp: Experiment, docs: Path) -> Path:
    if exp.outcomes is None:
        raise ValueError(f"{exp.name} stores no outcomes (it has no page of its own).")
    return docs / f"{exp.outcomes}.json"


def stored(exp: Experiment, docs: Path) -> bool:
    return exp.outcomes is not None and outcomes_file(exp, docs).is_file()


def tables_of(exp: Experiment, outcomes: Mapping[str, Mapping[str, Any]], choices: Mapping[str, Any] | None = None
              ) -> tuple[str, dict[str, object]]:
    """The tables and data of a probe or fine-tuning experiment's page, from per-clip outcomes."""
    if exp.layout == "paired":
        from studies.paired_page import report

        return report(outcomes, exp)
    if exp.layout == "per_task":
        from studies.per_task_page import report as per_task

        return per_task(outcomes, exp)
    if exp.layout == "finetune":
        from studies.finetune_page import page

        return page(outcomes, choices or {}, exp)
    raise ValueError(f"{exp.name}: a {exp.layout} page has no per-clip tables.")


def tables(exp: Experiment, docs: Path) -> tuple[str, dict[str, object]]:
    """The tables (below the head, with the stored note) and data, from the stored outcomes."""
    from studies.outcomes import load

    document = json.loads(outcomes_file(exp, docs).read_text())
    text, data = tables_of(exp, load(document), document.get("choices"))
    if exp.layout == "paired":
        return text, data
    note = str(document.get("note", ""))
    return text + "\n" + (f"\n{note}\n" if note else ""), data


def build(exp: Experiment, docs: Path) -> Page:
    """The page of ``exp`` from ``docs``' stored outcomes (refused when they are not stored)."""
    if exp.page is None:
        host = host_of(exp.name)
        raise ValueError(f"{exp.name} has no page of its own" + (f": it is a section of {host.name}'s" if host else "") + ".")
    if not stored(exp, docs):
        raise FileNotFoundError(f"{exp.name}: no stored outcomes at {outcomes_file(exp, docs)} (run "
                                f"`python -m studies.run {exp.name} --docs {docs}` first).")
    if exp.layout == "screen":
        from studies.screen_page import render

        return Page(markdown=render(json.loads(outcomes_file(exp, docs).read_text()), exp), data=None)
    text, data = tables(exp, docs)
    markdown = exp.head + text + ("\n" if exp.layout == "paired" else "")
    for name in exp.sections:
        section = experiment(name)
        if stored(section, docs):
            section_text, section_data = tables(section, docs)
            markdown += section.head + section_text
            data[section.group_name] = section_data
    return Page(markdown=markdown, data=json.dumps(data, indent=1, sort_keys=True) + "\n")


def write(exp: Experiment, docs: Path) -> Page:
    page = build(exp, docs)
    assert exp.page is not None
    (docs / f"{exp.page}.md").write_text(page.markdown)
    if page.data is not None:
        (docs / f"{exp.page}.json").write_text(page.data)
    return page


def _json_page(page: str, module: str, render: str) -> tuple[Callable[[Path], None], str]:
    """How ``DOCS/<page>`` is rebuilt from ``DOCS/<page stem>.json`` by ``module.render``, and that file."""
    data = page.removesuffix(".md") + ".json"

    def rebuild(docs: Path) -> None:
        text = getattr(importlib.import_module(module), render)(json.loads((docs / data).read_text()))
        (docs / page).write_text(text)

    return rebuild, data


def _study_from_docs(docs: Path) -> None:
    from studies.study import rewrite_from_docs

    rewrite_from_docs(docs)


ANALYSES = {
    "modulation.md": _json_page("modulation.md", "studies.modulation", "page"),
    "shift-parts.md": _json_page("shift-parts.md", "studies.shift_parts", "page"),
    "pole-gradients.md": _json_page("pole-gradients.md", "studies.pole_gradients", "render"),
    "results.md, the README's tables, figures/": (_study_from_docs, "results.json"),
}
"""Pages of the analyses outside the declarations that ``--all`` rebuilds from stored data:
page -> (how, the file it needs). The last one reads the declared readings' stored outcomes too
(the findings), so it comes after the declared pages."""


def rebuildable(docs: Path) -> list[Experiment]:
    """The declared experiments with a page of their own and stored outcomes."""
    return [e for e in EXPERIMENTS.values() if e.page is not None and stored(e, docs)]


def set_note(exp: Experiment, docs: Path, note: str) -> None:
    """The paragraph under the page's tables, kept in its stored outcomes."""
    path = outcomes_file(exp, docs)
    document = json.loads(path.read_text())
    document["note"] = note
    path.write_text(json.dumps(document, indent=1) + "\n")


def set_adaptivity(exp: Experiment, docs: Path, cells: list[str]) -> None:
    """A screen's adaptivity cells, ``VARIANT=TEXT`` (measured by ``aape_plugin.eval.adaptivity``)."""
    if exp.rule is None:
        raise ValueError(f"{exp.name} is not a screen with a rule; --adaptivity applies to {[e.name for e in EXPERIMENTS.values() if e.rule]}.")
    path = outcomes_file(exp, docs)
    document = json.loads(path.read_text())
    for item in cells:
        variant, _, text = item.partition("=")
        if variant not in exp.rule.candidates or not text:
            raise ValueError(f"--adaptivity {item!r}: expected VARIANT=TEXT with VARIANT one of {', '.join(exp.rule.candidates)}")
        document.setdefault("adaptivity", {})[variant] = text
    path.write_text(json.dumps(document, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="*", metavar="EXPERIMENT", help=f"one of: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--all", action="store_true", help="every page whose outcomes are stored")
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    parser.add_argument("--note", default=None, help="with one EXPERIMENT: the paragraph under its tables (stored with its outcomes)")
    parser.add_argument("--adaptivity", nargs="*", default=[], metavar="VARIANT=TEXT", help="with a screen: its adaptivity cells")
    args = parser.parse_args(argv)
    if args.all == bool(args.experiments):
        parser.error("name the experiments, or give --all")
    try:
        chosen = rebuildable(args.docs) if args.all else [experiment(name) for name in args.experiments]
        if (args.note is not None or args.adaptivity) and len(chosen) != 1:
            parser.error("--note and --adaptivity need exactly one EXPERIMENT")
        if args.note is not None:
            set_note(chosen[0], args.docs, args.note)
        if args.adaptivity:
            set_adaptivity(chosen[0], args.docs, args.adaptivity)
        for exp in chosen:
            write(exp, args.docs)
            print(f"{args.docs / str(exp.page)}.md: rebuilt from {outcomes_file(exp, args.docs)}")
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    if args.all:
        for page_name, (rebuild, needs) in ANALYSES.items():
            if (args.docs / needs).is_file():
                rebuild(args.docs)
                print(f"{args.docs / page_name}: rebuilt from {args.docs / needs}")
        for exp in EXPERIMENTS.values():
            if exp.page is not None and not stored(exp, args.docs):
                print(f"{exp.name}: no stored outcomes yet ({exp.outcomes}.json); its page is not written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
