"""The study corpus, built locally and addressable as the root ``@study``.

Built by ``python -m aape_plugin.corpora.make_study_corpus`` (or ``make study-corpus``) into
``$AAPE_STUDY_DIR``, else ``~/.cache/aape-fairseq2/study-corpus``; never committed.
"""

from __future__ import annotations

import os
from pathlib import Path

from aape_plugin.data.errors import AudioDataError

STUDY_ROOT = "@study"
"""Write this as a data set's root to mean the locally built study corpus."""

STUDY_DIR_ENV = "AAPE_STUDY_DIR"

BUILD_COMMAND = "python -m aape_plugin.corpora.make_study_corpus"


def study_dir() -> Path:
    """Where the study corpus is (or will be) built: ``$AAPE_STUDY_DIR`` or the user cache."""
    configured = os.environ.get(STUDY_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "aape-fairseq2" / "study-corpus"


def study_root() -> Path:
    """The built study corpus; a one-line error naming the build command when it is missing."""
    root = study_dir()
    if not (root / "pretrain.tsv").is_file():
        raise AudioDataError(
            f"The study corpus is not built at {root} (no pretrain.tsv). Build it with "
            f"`{BUILD_COMMAND} --out {root}` (or `make study-corpus`; about 20 minutes, needs root for apt-get)."
        )
    return root
