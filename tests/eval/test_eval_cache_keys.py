"""Cache keys say what the content is: a rewritten clip or changed weights are not reused."""

import os
import shutil
from pathlib import Path

import torch

from aape_plugin.eval.embedding_cache import clips_fingerprint, weights_digest
from tests.data.conftest import DEMO


def test_a_rewritten_clip_changes_the_fingerprint(tmp_path: Path) -> None:
    clips = [tmp_path / "a.flac", tmp_path / "b.flac"]
    for clip, source in zip(clips, sorted((DEMO / "drums").glob("*.flac"))):
        shutil.copy(source, clip)
    before = clips_fingerprint(clips)
    assert clips_fingerprint(list(clips)) == before
    stat = clips[1].stat()
    os.utime(clips[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # same name and size, rebuilt
    assert clips_fingerprint(clips) != before


def test_the_weights_digest_follows_the_weights_not_the_object() -> None:
    torch.manual_seed(0)
    a = torch.nn.Linear(4, 3)
    b = torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        b.weight[0, 0] += 1e-6
    assert weights_digest(a) != weights_digest(b)
