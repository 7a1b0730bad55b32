"""Builders of the project's own corpora from Debian packages: the demo data shipped in
``assets/demo`` (``python -m aape_plugin.corpora.make_demo``) and the study corpus
(``python -m aape_plugin.corpora.make_study_corpus``, ``make study-corpus``).

They install and drive system tools (apt, fluidsynth, espeak-ng, sox); nothing a training run
reads imports them. The readers of the built corpora are in :mod:`aape_plugin.data`.
"""
