"""``python -m aape_plugin ...`` is the ``fairseq2`` command (see :mod:`aape_plugin.cli`)."""

from aape_plugin.cli import console_main

console_main()
