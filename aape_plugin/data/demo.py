"""The demo data shipped inside the package, addressable as the root ``@demo``; the root aliases
(``@demo``, and ``@study`` for the locally built study corpus) are resolved here for every data set."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from aape_plugin.data.errors import AudioDataError
from aape_plugin.data.study_corpus import STUDY_ROOT, study_root

DEMO_ROOT = "@demo"
"""Write this as a data set's root to mean the demo data shipped with aape_plugin (asset cards
cannot hold paths relative to themselves)."""


def demo_root() -> Path:
    """The folder of the shipped demo data (``assets/demo`` in a checkout)."""
    root = Path(str(files("aape_plugin.assets") / "demo"))
    if not (root / "pretrain.tsv").exists():
        raise AudioDataError(
            f"The demo data is missing from {root}. In a checkout, regenerate it with "
            f"`python -m aape_plugin.corpora.make_demo --out assets/demo`."
        )
    return root


def resolve_root(root: Path | str) -> Path:
    """``@demo`` (or ``@demo/sub/folder``) -> the shipped demo folder; ``@study`` -> the locally
    built study corpus (:mod:`aape_plugin.data.study_corpus`); other paths unchanged."""
    text = str(root)
    for alias, folder in ((DEMO_ROOT, demo_root), (STUDY_ROOT, study_root)):
        if text == alias or text.startswith(alias + "/"):
            return folder() / text[len(alias) :].lstrip("/")
    return Path(text).expanduser()
