"""Shared test settings and fixtures."""

import os

import pytest

# A failure inside the plugin's fairseq2 extension must fail the tests, not only log a warning.
os.environ.setdefault("FAIRSEQ2_EXTENSION_TRACE", "1")


@pytest.fixture(scope="session")
def fairseq2_initialised() -> None:
    """fairseq2's library container (with this plugin's extension), once per test session."""
    from fairseq2 import init_fairseq2
    from fairseq2.error import InvalidOperationError

    try:
        init_fairseq2()
    except InvalidOperationError:  # already initialised in this process
        pass
