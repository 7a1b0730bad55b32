"""The README's findings, the current section of docs/results.md and their figures are generated
from the published outcomes; every interval the README and results.md quote is one a generated
page states; and "tie" is said only of a narrow interval that holds zero."""

import json
import re
import shutil
from pathlib import Path

from studies import findings

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
INTERVAL = re.compile(r"([+-]\d+\.\d+) \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\]")


def test_the_published_findings_are_what_the_stored_outcomes_give() -> None:
    page = (DOCS / "results.md").read_text()
    assert page.count(findings.BEGIN) == 1 and page.count(findings.END) == 1
    assert findings.splice(page, findings.section(DOCS)) == page, "run `python -m studies.findings --docs docs`"
    assert findings.quoted_block(REPO / "README.md") == findings.readme_block(DOCS), "run `python -m studies.findings --docs docs`"
    assert page.index(findings.BEGIN) < page.index("## The five-task study"), "the current findings come first"


def test_the_page_table_and_figures_rebuild_from_docs_alone(tmp_path: Path) -> None:
    """``python -m studies.study --from-docs`` on a copy of the published data writes the
    current section into a page that lacks it, the README's table and the figures."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("results.md", "results.json", "budget-check.json", "modulation.json", "design.md",
                 *(f"{r}.json" for f in findings.FINDINGS for r in f.readings)):
        shutil.copy(DOCS / name, docs / name)
    for name in ("objectives-screen.json", "objectives-alias-screen.json", "objectives-visible-screen.json",
                 "objectives-finetune-outcomes.json", "objectives-alias-finetune-outcomes.json"):
        shutil.copy(DOCS / name, docs / name)  # what the modulation section reads besides
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    page = (docs / "results.md").read_text()
    (docs / "results.md").write_text(page.split(findings.BEGIN)[0] + page.split(findings.END)[1].lstrip("\n"))  # no section yet
    readme = (tmp_path / "README.md").read_text()
    (tmp_path / "README.md").write_text(readme.replace(findings.quoted_block(REPO / "README.md"),
                                                       f"{findings.README_BEGIN}\n{findings.README_END}"))

    from studies.study import main

    assert main(["--from-docs", "--docs", str(docs)]) == 0  # what `make study` rewrites from docs/, without runs
    assert (docs / "results.md").read_text() == (DOCS / "results.md").read_text()
    assert (tmp_path / "README.md").read_text() == (REPO / "README.md").read_text()
    assert (docs / "design.md").read_text() == (DOCS / "design.md").read_text()
    for name in ("findings_intervals.png", "findings_modulation_erosion.png", "study_length_curve.png"):
        drawn = (docs / "figures" / name).read_bytes()
        assert drawn[:8] == b"\x89PNG\r\n\x1a\n" and len(drawn) > 20_000, name
        assert f"figures/{name}" in (DOCS / "results.md").read_text(), f"results.md shows {name}"


def generated_text() -> str:
    """Everything the study code states from the published data: the current findings, the
    modulation section, the five-task summary, every interval stored in results.json and
    budget-check.json, and the objective readings' pages (rebuilt byte for byte elsewhere)."""
    from aape_plugin.eval.bootstrap import Interval
    from studies.modulation_section import section
    from studies.summary import published_block

    parts = [findings.section(DOCS), section(DOCS), published_block(DOCS)]

    def intervals(node: object) -> None:
        if isinstance(node, dict):
            if {"estimate", "low", "high"} <= set(node):
                found = Interval(node["estimate"], node["low"], node["high"])
                parts.extend([found.describe(), found.describe(1.0, 3)])
                # As pages written before bounds near zero got more digits print them:
                parts.append("{:+.1f} [{:+.1f}, {:+.1f}]".format(*(100 * v for v in (found.estimate, found.low, found.high))))
            for value in node.values():
                intervals(value)
        elif isinstance(node, list):
            for value in node:
                intervals(value)

    for name in ("results.json", "budget-check.json"):
        intervals(json.loads((DOCS / name).read_text()))
    parts += [p.read_text() for p in sorted(DOCS.glob("objectives-*.md"))]
    # The adaptive half's pages and the adaptivity page, each rebuilt from its JSON by a test.
    parts += [p.read_text() for p in sorted(DOCS.glob("adaptiv*.md"))]
    return "\n".join(parts)


def test_every_interval_the_readme_and_results_page_quote_is_one_a_generated_page_states() -> None:
    stated = {m.group(0) for m in INTERVAL.finditer(" ".join(generated_text().split()))}
    for name in ("README.md", "docs/results.md"):
        quoted = [m.group(0) for m in INTERVAL.finditer(" ".join((REPO / name).read_text().split()))]
        assert len(quoted) >= 10, name
        assert [q for q in quoted if q not in stated] == [], f"{name} quotes intervals no generated page states"


CLAUSE = re.compile(r"\||;|(?<=[.!?])\s+(?=[A-Z*`(\[])|\n\s*\n|\n(?=\s*[-|#])")


def misused_ties(text: str) -> list[str]:
    """Clauses (table cells, sentences, list items, parts between semicolons) that call a tie
    while quoting an interval that excludes zero or reaches past the tie margin (2 points; 0.02
    for a cosine, which is printed with three decimals)."""
    bad = []
    for clause in CLAUSE.split(text):
        clause = " ".join(clause.split())  # an interval may be wrapped over two lines
        intervals = list(INTERVAL.finditer(clause))
        called = []
        for word in re.finditer(r"\bti(e|es|ed)\b", clause):
            # "X [a, b], a tie" names the interval just before; "ties ... (X [a, b])" those after.
            before = [m for m in intervals if m.end() <= word.start() and word.start() - m.end() <= 40]
            called += before[-1:] or [m for m in intervals if m.start() > word.end()]
        for m in called:
            low, high = float(m.group(2)), float(m.group(3))
            margin = 0.02 if len(m.group(1).split(".")[1]) == 3 and abs(low) < 1 and abs(high) < 1 else 2.0
            if not (low <= 0.0 <= high and max(-low, high) <= margin + 1e-9):
                bad.append(clause[:160])
    return bad


def test_tie_is_said_only_of_an_interval_that_holds_zero_within_the_margin() -> None:
    assert misused_ties("frozen minus trained +8.0 [-1.5, +17.5], a tie at 3 seeds") != []
    assert misused_ties("| +4.5 [+3.3, +5.7], a tie |") != []
    assert misused_ties("+0.8 [-0.4, +1.9], a tie within ±2 points; +4.5 [+3.3, +5.7]") == []
    assert misused_ties("-0.002 [-0.014, +0.017], a tie within ±0.02") == []
    for page in [REPO / "README.md", *sorted(DOCS.glob("*.md"))]:
        assert misused_ties(page.read_text()) == [], page.name


def test_the_documentation_index_lists_every_page_once() -> None:
    index = (DOCS / "README.md").read_text()
    linked = re.findall(r"^- \[([^\]]+)\]\(\1\): ", index, flags=re.MULTILINE)
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if p.name != "README.md")
    assert sorted(linked) == pages, "docs/README.md: one line per page, `- [page](page): what it is`"
    assert [h for h in re.findall(r"^## (.+)$", index, flags=re.MULTILINE)] == ["User guide", "Reference", "Study"]
