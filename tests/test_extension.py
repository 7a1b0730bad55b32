"""The plugin is found by fairseq2 through its entry point and registers without error."""

import subprocess
import sys
from importlib.metadata import entry_points

from aape_plugin.extension import setup_aape_extension
from tests.recipes.helpers import cpu_env


def test_entry_point_resolves_to_the_registration_function() -> None:
    eps = [ep for ep in entry_points(group="fairseq2.extension") if ep.name == "aape"]
    assert len(eps) == 1
    assert eps[0].load() is setup_aape_extension


def test_init_fairseq2_runs_the_extension_with_trace_on() -> None:
    # In a fresh interpreter, as a user would; with FAIRSEQ2_EXTENSION_TRACE=1 any exception
    # in the extension makes init_fairseq2() raise instead of logging a warning.
    code = (
        "from fairseq2 import init_fairseq2\n"
        "from fairseq2.runtime.dependency import get_dependency_resolver\n"
        "init_fairseq2()\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=cpu_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "extension failed" not in proc.stderr
    assert proc.stdout.strip().endswith("ok")


def test_only_models_with_weights_have_cards() -> None:
    # An architecture is no model: a card without weights fails on load ("gated model"), and
    # generic names like vit_base would clash with other plugins' cards.
    proc = subprocess.run(
        [sys.executable, "-m", "fairseq2.assets", "list", "--kind", "model"],
        capture_output=True,
        text=True,
        env=cpu_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    section = proc.stdout.split("package:aape_plugin.assets.cards", 1)[1].split("package:", 1)[0]
    assert section.split() == ["-", "model:aape_tiny_demo@"]


def test_an_architecture_name_says_what_to_load_instead(fairseq2_initialised: None) -> None:
    import pytest

    from aape_plugin.inference.loading import EncoderLoadError, load_encoder

    with pytest.raises(EncoderLoadError, match=r"'vit_base' is an architecture, not a trained model: give a pre-training run folder"):
        load_encoder("vit_base")


def test_configuration_reference_is_current() -> None:
    from pathlib import Path

    from aape_plugin.cli.reference import reference

    committed = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
    assert committed == reference(), "docs/config.md is stale: python -m aape_plugin.cli.reference > docs/config.md"
