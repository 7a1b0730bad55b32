"""The demo (``make demo``): pre-train aape_tiny on the shipped demo data, then linear-probe it on
the demo tasks next to a randomly initialised encoder and the log-mel baseline.

    python -m aape_plugin.demo [--out runs/demo] [--steps 400]

Every step is the public ``fairseq2`` command a user would type (printed before it runs);
re-running resumes the pre-training and reuses cached embeddings. The pre-training folder is
named after a digest of the configuration it runs (``pretrain-<digest>``): when a new version
changes the demo's defaults, the demo trains afresh beside the old folder instead of resuming a
run that was written with another configuration.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

from aape_plugin.eval.report import comparison_table, load_results

TASKS = ("demo_pitch", "demo_instrument", "demo_keywords", "demo_drums")


def fairseq2(*args: str) -> None:
    command = [sys.executable, "-m", "aape_plugin", *args]
    print(f"\n$ fairseq2 {' '.join(shlex.quote(a) for a in args)}", flush=True)
    subprocess.run(command, check=True)


def config_digest(*args: str) -> str:
    """A short digest of the configuration ``fairseq2 recipe run ... --dump-config`` prints."""
    command = [sys.executable, "-m", "aape_plugin", "recipe", "run", *args, "--dump-config"]
    dumped = subprocess.run(command, capture_output=True, text=True)
    if dumped.returncode != 0:  # the recipe's own message (a bad setting), not a traceback of ours
        sys.stderr.write(dumped.stderr)
        raise SystemExit(dumped.returncode)
    return hashlib.sha256(dumped.stdout.encode()).hexdigest()[:8]


def loss_curve(run: Path) -> str:
    rows = [json.loads(line) for line in (run / "metrics" / "train.jsonl").read_text().splitlines()]
    alias = "Alias Feature Loss" in rows[-1]  # the AaPE archs' alias-feature target
    lines = ["| step | loss | masked token | CLS global | contrastive |" + (" alias features |" if alias else "") + " EMA decay |",
             "|---|---|---|---|---|" + ("---|" if alias else "") + "---|"]
    shown = rows[:: max(1, len(rows) // 10)]
    if shown[-1] is not rows[-1]:
        shown.append(rows[-1])
    for r in shown:
        lines.append(f"| {r['Step']} | {r['Loss']:.3f} | {r['Masked Token Loss']:.3f} | {r['CLS Global Loss']:.4f} | "
                     f"{r['Contrastive Loss']:.3f} |" + (f" {r['Alias Feature Loss']:.3f} |" if alias else "") + f" {r['EMA Decay']:.5f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aape_plugin.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS), help="the demo tasks to probe")
    args = parser.parse_args(argv)

    # The warm-up is a tenth of the run, as in the preset (40 of 400 steps), so any length works.
    recipe = ("aape_pretrain", "--preset", "demo", "--config", f"regime.num_steps={args.steps}",
              f"lr_scheduler.config.num_warmup_steps={max(1, args.steps // 10)}")
    pretrain = args.out / f"pretrain-{config_digest(*recipe)}"
    fairseq2("recipe", "run", recipe[0], str(pretrain), *recipe[1:])

    models = {
        "pretrained": ("aape_tiny, pre-trained on the demo pool", f"model.checkpoint={pretrain}"),
        "random": ("aape_tiny, random initialisation", "model.arch=aape_tiny"),
        "logmel": ("log-mel statistics (no model)", "model.kind=logmel"),
    }
    runs = []
    for slug, (label, spec) in models.items():
        for task in args.tasks:
            # The pre-trained encoder's probes live beside the run they read (a probe folder
            # belongs to one configuration, and a changed demo pre-trains into a new folder).
            out = args.out / "probe" / (f"{slug}-{pretrain.name.removeprefix('pretrain-')}" if slug == "pretrained" else slug) / task
            fairseq2("recipe", "run", "aape_linear_probe", str(out), "--preset", task, "--config", spec,
                     f"cache_dir={args.out / 'embeddings'}")
            runs.append((label, out))

    results = load_results([out for _, out in runs])
    names = {r["model"]: label for r, (label, _) in zip(results, runs)}
    table = comparison_table(results, names)
    curve = loss_curve(pretrain)

    report = (f"# Demo results\n\nPre-training loss (aape_tiny, demo preset, {args.steps} steps):\n\n{curve}\n\n"
              f"Linear probe (converged: logistic regression, penalty chosen on validation), test accuracy (%):\n\n{table}\n")
    (args.out / "results.md").write_text(report)
    print("\n" + report + f"\n(written to {args.out / 'results.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
