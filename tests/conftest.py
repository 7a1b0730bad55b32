"""Shared test settings."""

import os

# A failure inside the plugin's fairseq2 extension must fail the tests, not only log a warning.
os.environ.setdefault("FAIRSEQ2_EXTENSION_TRACE", "1")
