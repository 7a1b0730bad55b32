"""One comparison table from several evaluation runs (their ``results.json``).

    python -m aape_plugin.eval.report RUN_DIR [RUN_DIR ...] [--out table.md]
    fairseq2 recipe run aape_report OUT --config "runs=[RUN_DIR, ...]"

Rows are models, columns tasks; cells are the score in percent, with +- the standard deviation
over seeds and folds when a run has several.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load_results(runs: list[Path]) -> list[dict]:
    results = []
    for run in runs:
        path = run / "results.json" if run.is_dir() else run
        if not path.is_file():
            raise SystemExit(f"{path} does not exist: expected the OUTPUT_DIR of an evaluation run.")
        results.append(json.loads(path.read_text()))
    return results


def comparison_table(results: list[dict], model_names: dict[str, str] | None = None) -> str:
    tasks = sorted({r["task"] for r in results})
    models: list[str] = []
    cells: dict[tuple[str, str], str] = {}
    metrics: dict[str, str] = {}
    for r in results:
        model = (model_names or {}).get(r["model"], r["model"])
        if model not in models:
            models.append(model)
        s = r["summary"]
        cells[(model, r["task"])] = f"{100 * s['mean']:.1f}" + (f" +- {100 * s['std']:.1f}" if s["n"] > 1 else "")
        metrics[r["task"]] = r["metric"]
    header = "| model | " + " | ".join(f"{t} ({metrics[t]})" for t in tasks) + " |"
    rule = "|---|" + "---|" * len(tasks)
    rows = [f"| {m} | " + " | ".join(cells.get((m, t), "-") for t in tasks) + " |" for m in models]
    return "\n".join([header, rule, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aape_plugin.eval.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    table = comparison_table(load_results(args.runs))
    if args.out:
        args.out.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
