"""Every way of naming a checkpoint reaches the same checked loader.

An asset card's ``checkpoint`` may be relative (resolved against the card's folder), a ``file:``
URI in any case, a folder with ``checkpoint_path`` or a ``{shard_idx}`` pattern; a run folder's
model folder may be a symbolic link to another folder, hold a FIFO, or sit next to a planted
step folder. Each is tried in one fresh process (its peak memory read from the kernel) with a
1 GiB decompression bomb (a pickle checkpoint) behind it: each must be refused in one line naming
the file, with no hang and no more memory than a clean load.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.checkpoint_attacks import decompression_bomb
from tests.recipes.helpers import REPO, cpu_env

# A subprocess per source, each loading a bomb: `make test-slow` and CI run it.
pytestmark = pytest.mark.slow

BOMB_BYTES = 1 << 30
"""What the bomb inflates to when loaded unchecked."""

ATTEMPT = """
import json, os, resource, sys
from pathlib import Path
from aape_plugin.inference.loading import EncoderLoadError, load_encoder
from fairseq2.assets import AssetCard

outcomes = {}
for what, source in json.loads(sys.argv[1]).items():
    if isinstance(source, dict):
        source = AssetCard(source["name"], {**source, **({"__base_path__": Path(source["__base_path__"])} if "__base_path__" in source else {})})
    try:
        load_encoder(source)
        outcomes[what] = "loaded"
    except EncoderLoadError as ex:
        outcomes[what] = str(ex)
print(json.dumps({"outcomes": outcomes, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def attempt(sources: dict[str, object]) -> tuple[dict[str, str], int]:
    proc = subprocess.run([sys.executable, "-c", ATTEMPT, json.dumps(sources)], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=cpu_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["outcomes"], result["peak_kb"]


def card(name: str, checkpoint: str, **fields: object) -> dict[str, object]:
    return {"name": name, "model_family": "aape_encoder", "model_arch": "aape_tiny", "checkpoint": checkpoint, **fields}


def test_every_way_of_naming_a_checkpoint_is_checked(short_run: Path, tmp_path: Path) -> None:
    bomb = decompression_bomb(tmp_path / "bomb.pt", BOMB_BYTES)

    def place(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bomb, path)
        return path

    relative = place(tmp_path / "cards" / "weights" / "encoder.pt")
    native = place(tmp_path / "native" / "pp_00" / "tp_00" / "sdp_00.pt")
    linked_run = tmp_path / "linked_run"
    shutil.copytree(short_run, linked_run)
    shutil.rmtree(linked_run / "checkpoints" / "step_4" / "model")
    (linked_run / "checkpoints" / "step_4" / "model").symlink_to(native.parents[2])
    fifo_run = tmp_path / "fifo_run"
    shutil.copytree(short_run, fifo_run)
    fifo = fifo_run / "checkpoints" / "step_4" / "model" / "pp_00" / "tp_00" / "sdp_00.pt"
    fifo.unlink()
    os.mkfifo(fifo)
    planted_run = tmp_path / "planted_run"
    shutil.copytree(short_run, planted_run)
    planted = planted_run / "checkpoints" / "step_99999999999999999999"
    shutil.copytree(planted_run / "checkpoints" / "step_4", planted)
    place(planted / "model" / "pp_00" / "tp_00" / "sdp_00.pt")

    compressed = "is a pickle checkpoint"  # refused at its first bytes, never inflated
    cases = {
        "relative to the card's folder": (card("relative", "weights/encoder.pt", __base_path__=str(relative.parents[1])), relative, compressed),
        "file: URI": (card("file_uri", f"file:{relative}"), relative, compressed),
        "FILE:// URI": (card("upper_uri", f"FILE://{relative}"), relative, compressed),
        "checkpoint_path": (card("sub_path", f"file://{relative.parent}", checkpoint_path="encoder.pt"), relative, compressed),
        "{shard_idx} pattern": (card("shards", f"file://{native.parents[2]}/model.{{shard_idx}}.pt"), native, compressed),
        "model folder linked elsewhere": (str(linked_run), linked_run / "checkpoints" / "step_4" / "model" / "pp_00" / "tp_00" / "sdp_00.pt", compressed),
        "FIFO in the model folder": (str(fifo_run), fifo, "is a FIFO (named pipe), not a regular file"),
        "planted step folder": (str(planted_run), planted, "is not a checkpoint these recipes write"),
    }
    clean, clean_kb = attempt({"clean": str(short_run)})
    assert clean == {"clean": "loaded"}

    outcomes, peak_kb = attempt({what: source for what, (source, _, _) in cases.items()})

    for what, (_, named, says) in cases.items():
        message = outcomes[what]
        assert message.startswith(f"{named} ") and says in message and "\n" not in message, (what, message)
    assert peak_kb < clean_kb + (BOMB_BYTES >> 11), f"peak {peak_kb >> 10} MiB, a clean load {clean_kb >> 10} MiB"


def test_the_shipped_encoder_loads_through_the_checked_loader() -> None:
    from fairseq2.io import SafetensorsLoader
    from fairseq2.runtime.dependency import get_dependency_resolver

    from aape_plugin.inference.loading import load_encoder
    from aape_plugin.recipes.safe_checkpoints import CheckedSafetensorsLoader

    loaded = load_encoder("aape_tiny_demo")
    assert loaded.description == "asset aape_tiny_demo" and loaded.stats is not None
    assert isinstance(get_dependency_resolver().resolve(SafetensorsLoader), CheckedSafetensorsLoader)
