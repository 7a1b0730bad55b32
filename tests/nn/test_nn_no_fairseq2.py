"""`aape_plugin.nn` is plain PyTorch: importing all of it loads no fairseq2."""

import subprocess
import sys

from tests.recipes.helpers import cpu_env


def test_nn_imports_no_fairseq2() -> None:
    code = (
        "import pkgutil, importlib, sys, aape_plugin.nn as nn\n"
        "for m in pkgutil.iter_modules(nn.__path__): importlib.import_module(f'aape_plugin.nn.{m.name}')\n"
        "print(sorted(k for k in sys.modules if k.startswith('fairseq2')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=cpu_env()).stdout
    assert out.strip() == "[]"
