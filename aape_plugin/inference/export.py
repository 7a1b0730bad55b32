"""Exporting the encoder of a pre-training run as one safetensors file (no teacher/predictor).

    python -m aape_plugin.inference.export RUN_DIR --out model.safetensors [--weights teacher]

The file loads with the ``aape_encoder`` family (``model_arch`` = the run's arch). The run's
log-mel statistics are printed, for the asset card's ``feature_stats`` field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aape_plugin.inference.loading import load_encoder
from aape_plugin.safetensors_files import save_safetensors


def export_encoder(run: Path, out: Path, *, weights: str = "teacher", step: int | None = None) -> dict[str, object]:
    loaded = load_encoder(run, weights=weights, step=step)  # type: ignore[arg-type]
    state = {f"encoder.{k}": v.detach().contiguous() for k, v in loaded.encoder.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(state, out, metadata={"arch_source": run.name, "weights": weights})
    info: dict[str, object] = {"source": loaded.description, "parameters": sum(v.numel() for v in state.values())}
    if loaded.stats is not None:
        info["feature_stats"] = {"mean": loaded.stats.mean, "std": loaded.stats.std}
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aape_plugin.inference.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", choices=("teacher", "student"), default="teacher")
    parser.add_argument("--step", type=int, default=None)
    args = parser.parse_args(argv)
    print(json.dumps(export_encoder(args.run, args.out, weights=args.weights, step=args.step), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
