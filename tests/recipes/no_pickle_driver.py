"""Runs the ``fairseq2`` command in this process with every unpickler hooked to fail.

    python -m tests.recipes.no_pickle_driver CALLS_FILE recipe run aape_pretrain OUT ...

``pickle.load``, ``pickle.loads``, ``pickle.Unpickler``, ``torch.load`` (and
``torch.serialization.load``, the same function) are replaced, before anything of the plugin or
fairseq2 is imported, by functions that append their name to ``CALLS_FILE`` and raise: a run
that reads a state file through any of them fails and leaves the name behind, however the
exception is then handled.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import torch
import torch.serialization


def _hook(calls: Path, name: str):  # type: ignore[no-untyped-def]
    def refuse(*args: object, **kwargs: object) -> None:
        with open(calls, "a") as f:
            f.write(f"{name}\n")
        raise AssertionError(f"{name} was called")

    return refuse


def main() -> int:
    calls = Path(sys.argv[1])
    calls.touch()
    pickle.load = _hook(calls, "pickle.load")  # type: ignore[assignment]
    pickle.loads = _hook(calls, "pickle.loads")  # type: ignore[assignment]
    pickle.Unpickler = _hook(calls, "pickle.Unpickler")  # type: ignore[assignment, misc]
    torch.load = _hook(calls, "torch.load")  # type: ignore[assignment]
    torch.serialization.load = _hook(calls, "torch.serialization.load")  # type: ignore[assignment]

    from aape_plugin.cli import main as cli_main

    sys.argv = ["fairseq2", *sys.argv[2:]]
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
