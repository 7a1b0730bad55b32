"""Shared test settings and fixtures."""

import os

import pytest

# A failure inside the plugin's fairseq2 extension must fail the tests, not only log a warning.
os.environ.setdefault("FAIRSEQ2_EXTENSION_TRACE", "1")

# Every test runs on CPU, on a GPU machine too. fairseq2 takes its device from FAIRSEQ2_DEVICE
# before LOCAL_RANK (which would send torchrun's rank 1 to cuda:1), and hidden GPUs pin code that
# asks torch itself. Set before torch initialises CUDA; subprocesses inherit both (and
# tests.recipes.helpers.cpu_env sets them again where a test builds an environment).
os.environ["FAIRSEQ2_DEVICE"] = "cpu"
os.environ["CUDA_VISIBLE_DEVICES"] = ""


@pytest.fixture(scope="session")
def fairseq2_initialised() -> None:
    """fairseq2's library container (with this plugin's extension), once per test session."""
    from fairseq2 import init_fairseq2
    from fairseq2.error import InvalidOperationError

    try:
        init_fairseq2()
    except InvalidOperationError:  # already initialised in this process
        pass
