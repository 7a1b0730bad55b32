"""Every declared page rebuilds from its stored outcomes alone, byte for byte as committed; a page
whose outcomes are not stored yet is not written."""

import json
import shutil
from pathlib import Path

import pytest

from studies.experiments import EXPERIMENTS, experiment
from studies.render import build, main, rebuildable, stored

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = [e.name for e in rebuildable(DOCS)]


def test_every_page_with_stored_outcomes_is_rebuilt() -> None:
    assert {"lambda_options", "lambda_options_finetune", "alias_feature_target", "alias_feature_target_finetune",
            "visible_alias_target", "visible_alias_target_finetune", "adaptive_screen", "adaptive_fresh"} <= set(PAGES)
    for name in PAGES:
        assert (DOCS / f"{EXPERIMENTS[name].page}.md").is_file(), name


@pytest.mark.parametrize("name", PAGES)
def test_the_committed_page_is_what_its_stored_outcomes_give(tmp_path: Path, name: str) -> None:
    exp = experiment(name)
    # Only the outcomes files: the page needs nothing else (not the readings it reused when measured).
    for part in (exp, *(experiment(s) for s in exp.sections)):
        if stored(part, DOCS):
            shutil.copy(DOCS / f"{part.outcomes}.json", tmp_path / f"{part.outcomes}.json")
    assert main([name, "--docs", str(tmp_path)]) == 0
    assert (tmp_path / f"{exp.page}.md").read_text() == (DOCS / f"{exp.page}.md").read_text()
    if exp.layout != "screen":  # a screen's JSON is its stored form
        assert (tmp_path / f"{exp.page}.json").read_text() == (DOCS / f"{exp.page}.json").read_text()


def test_a_section_follows_only_once_its_outcomes_are_stored(tmp_path: Path) -> None:
    fresh = experiment("adaptive_fresh")
    shutil.copy(DOCS / f"{fresh.outcomes}.json", tmp_path)
    page = build(fresh, tmp_path)
    assert "## The five tasks" not in page.markdown and "five tasks" not in json.loads(page.data or "{}")
    assert page.markdown == (DOCS / f"{fresh.page}.md").read_text().split("\n## The five tasks")[0]


def test_a_page_without_stored_outcomes_is_not_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    finetune = experiment("adaptive_fresh_finetune")
    assert finetune.page == "adaptive-poles-fresh-finetune" and finetune.outcomes == "adaptive-poles-fresh-finetune-outcomes"
    with pytest.raises(FileNotFoundError, match="python -m studies.run adaptive_fresh_finetune"):
        build(finetune, tmp_path)
    shutil.copy(DOCS / "objectives-outcomes.json", tmp_path)
    assert main(["--all", "--docs", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objectives-outcomes.json", "objectives-test.json", "objectives-test.md"]
    assert "adaptive_fresh_finetune: no stored outcomes yet" in capsys.readouterr().out


def test_a_section_has_no_page_of_its_own() -> None:
    with pytest.raises(ValueError, match="a section of adaptive_fresh's"):
        build(experiment("adaptive_fresh_five_tasks"), DOCS)


def test_all_rebuilds_every_page_the_stored_data_give_unchanged(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    shutil.copy(DOCS.parent / "README.md", tmp_path / "README.md")
    # What the analyses' stored JSON alone must give back: their pages and the findings' figures.
    redrawn = ["modulation.md", "shift-parts.md", "pole-gradients.md",
               "figures/findings_intervals.png", "figures/findings_modulation_erosion.png", "figures/study_length_curve.png"]
    for name in redrawn:
        (docs / name).unlink()
    assert main(["--all", "--docs", str(docs)]) == 0
    committed = [*sorted(DOCS.glob("*.md")), *sorted(DOCS.glob("*.json")), *sorted(DOCS.glob("figures/*.png"))]
    changed = [str(p.relative_to(DOCS)) for p in committed if p.read_bytes() != (docs / p.relative_to(DOCS)).read_bytes()]
    assert changed == []
    assert (tmp_path / "README.md").read_text() == (DOCS.parent / "README.md").read_text()


def test_all_rewrites_the_findings_from_the_stored_outcomes(tmp_path: Path) -> None:
    """The README's findings table is generated: a stale copy is put right by ``--all``."""
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    readme = (DOCS.parent / "README.md").read_text()
    table = readme.split("<!-- findings:begin -->", 1)[1].split("<!-- findings:end -->", 1)[0]
    row = next(line for line in table.splitlines() if line.startswith("| ") and " [" in line)
    (tmp_path / "README.md").write_text(readme.replace(row, row.replace(" [", " [9", 1)))
    assert main(["--all", "--docs", str(docs)]) == 0
    assert (tmp_path / "README.md").read_text() == readme
