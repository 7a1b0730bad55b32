"""The checks behind ``aape convert`` (the one path that still reads pickle checkpoints): what
the recipes saved as pickles passes and loads unchanged; each way a file could run code, write
files or exhaust memory is refused before anything of it is built, in one line naming the file,
and the file is left as it was."""

import io
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from aape_plugin.checkpoints import FileBudget, UnsafeCheckpointError, load_state
from aape_plugin.checkpoints.convert import convert_file
from aape_plugin.checkpoints.load import check_file, load_checked
from aape_plugin.checkpoints.pickle_check import MAX_DEPTH
from tests.checkpoint_attacks import (
    BINPERSID, EMPTY_DICT, MARK, NONE, PROTO2, REDUCE, SETITEM, STOP, TUPLE, _global, _int, _str, _tensor_view,
    allocator_newobj_ex, build_on_class_writer, decompression_bomb, tensor_iteration_bomb, torchscript_writer,
)

BUDGET = FileBudget(max_bytes=64 << 20, kind="trainer", basis="a test budget")


def saved(state: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer, pickle_protocol=2)
    return buffer.getvalue()


def refused(data: bytes | Path, match: str, budget: FileBudget = BUDGET) -> str:
    with pytest.raises(UnsafeCheckpointError, match=match) as info:
        check_file(data, budget, name="state.pt")
    message = str(info.value)
    assert message.startswith("state.pt ") and "\n" not in message
    return message


def test_what_the_recipes_save_passes_and_loads_as_torch_loads_it() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    optimiser = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 3)).sum().backward()
    optimiser.step()
    states = {
        "model": model.state_dict(),  # an OrderedDict with _metadata (BUILD)
        "optimizer": optimiser.state_dict(),  # tuples of betas, None, bools, floats, int keys
        "trainer": {"_step_nr": 3, "_rng_bag": {"generators": [torch.get_rng_state()]}, "_metric_bag": {"loss": {"weighted_sum": torch.tensor(1.5, dtype=torch.float64)}}},
        "data_reader": {"pipeline": {"position": [True, [{"features": torch.randn(2, 1, 8, 4), "paths": ["a.flac", "b.flac"], "labels": None,
                                                            "indices": torch.arange(2), "num_skipped": 0}], b"raw bytes"]}, "epoch": 0},
        "shared views": {"a": (t := torch.arange(10.0)), "b": t[2:5], "c": t.view(2, 5).t()},
    }
    for kind, state in states.items():
        data = saved(state)
        loaded = load_checked(data, BUDGET)
        expected = torch.load(io.BytesIO(data), weights_only=True)
        assert str(loaded) == str(expected), kind
    assert getattr(load_checked(saved(model.state_dict()), BUDGET), "_metadata") == model.state_dict()._metadata  # type: ignore[attr-defined]


def test_the_attacks_are_real_and_each_is_refused(tmp_path: Path) -> None:
    # A TorchScript archive that writes a file when torch.load hands it to torch.jit.load.
    written = tmp_path / "site.pth"
    script = torchscript_writer(tmp_path / "script.pt", written)
    torch.load(script, weights_only=False)
    assert written.read_text().startswith("import os")
    written.unlink()
    refused(script, "is a TorchScript archive")

    # A legacy file whose BUILD sets attributes of an allowlisted class, then makes torch write a
    # .patch file where the file says (shown in a separate process: the class stays modified).
    stem = tmp_path / "patched"
    legacy = build_on_class_writer(tmp_path / "legacy.pt", stem)
    probe = "import torch; from aape_plugin.data.batch import AudioBatch as A; torch.load(%r, weights_only=False); print(A.__name__)"
    out = subprocess.run([sys.executable, "-c", probe % str(legacy)], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == str(stem) and stem.with_suffix(".patch").exists(), out.stderr[-2000:]
    refused(legacy, "is not a PyTorch zip archive")

    # NEWOBJ_EX on UntypedStorage with an integer allocator: a call through a raw pointer.
    crash = allocator_newobj_ex(tmp_path / "alloc.pt")
    probe = "import pickle, torch, zipfile; pickle.loads(zipfile.ZipFile(%r).read('archive/data.pkl'))"
    assert subprocess.run([sys.executable, "-c", probe % str(crash)], capture_output=True, timeout=120).returncode == -11
    refused(crash, "protocol-4 pickle")

    # A file of a few hundred bytes that builds one tensor per element of a stride-0 view, even
    # through torch's own weights_only loader (builtins.set is on its allowlist).
    bomb = tensor_iteration_bomb(tmp_path / "iterate.pt", 1000)
    assert bomb.stat().st_size < 1000 and len(torch.load(bomb, weights_only=True)["x"]) == 1000
    refused(tensor_iteration_bomb(tmp_path / "big.pt", 10**10), r"asks to build `builtins.set`")

    # A deflated record: 64 MiB of zeros in 64 KiB, inflated by torch.load (weights_only too).
    inflated = decompression_bomb(tmp_path / "deflate.pt", 64 << 20)
    assert inflated.stat().st_size < (1 << 20) and torch.load(inflated, weights_only=True)["weight"].numel() == 16 << 20
    refused(inflated, r"holds the compressed record 'data/0'")


def pickle_file(body: bytes, records: dict[str, bytes] | None = None) -> bytes:
    """A zip archive whose data.pkl is ``PROTO 2`` + ``body`` + ``STOP``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", PROTO2 + body + STOP)
        z.writestr("archive/byteorder", b"little")
        for key, data in (records or {}).items():
            z.writestr(f"archive/data/{key}", data)
    return buffer.getvalue()


ONE_FLOAT = {"0": struct.pack("<f", 1.0)}


def view(size: tuple[int, ...], stride: tuple[int, ...], length: int = 1) -> bytes:
    return _tensor_view("0", "FloatStorage", length, size, stride)


@pytest.mark.parametrize(("body", "records", "match"), [
    (EMPTY_DICT + _str("x") + _global("builtins", "exec") + SETITEM, None, r"asks to build `builtins.exec`"),
    (EMPTY_DICT + _str("x") + _global("collections", "OrderedDict") + MARK + _int(10**9) + TUPLE + REDUCE + SETITEM, None,
     "calls OrderedDict with arguments"),
    (EMPTY_DICT + _str("x") + _global("collections", "OrderedDict") + b")" + b"\x81" + SETITEM, None, "opcode NEWOBJ"),
    (EMPTY_DICT + _str("x") + _global("torch", "FloatStorage") + SETITEM, None, "stores a bare global as data"),
    (_global("collections", "OrderedDict") + b"N}" + _str("dump_patches") + b"\x88s\x86b", None, r"sets the state of a global \(BUILD\)"),
    (_global("collections", "OrderedDict") + b")R}" + _str("evil") + _int(1) + SETITEM + b"b", None, "other than its _metadata"),
    (EMPTY_DICT + _str("x") + view((5,), (0,)) + SETITEM, ONE_FLOAT, "a view that repeats or reaches past its storage"),
    (EMPTY_DICT + _str("x") + view((2,), (1,)) + SETITEM, ONE_FLOAT, "reaches past its storage"),
    (EMPTY_DICT + _str("x") + view((1,), (1,), length=2) + SETITEM, ONE_FLOAT, r"holds 2 FloatStorage elements \(8 bytes\), but its record has 4"),
    (EMPTY_DICT + _str("x") + view((1,), (1,)) + SETITEM, {}, "uses the storage record '0', which it does not hold"),
    (EMPTY_DICT + _str("x") + view((1,), (1,)) + SETITEM, {**ONE_FLOAT, "1": b"1234"}, "storage records no tensor uses"),
    (EMPTY_DICT + _str("x") + MARK + _str("storage") + _global("torch", "FloatStorage") + _str("0") + _str("cpu") + _int(1) + TUPLE
     + BINPERSID + SETITEM, ONE_FLOAT, "stores a bare storage as data"),
    (EMPTY_DICT + _str("x") + _global("collections", "OrderedDict") + b")" + _str("x") + b"\x92" + SETITEM, None, "opcode NEWOBJ_EX"),
    (b"]q\x00h\x00a", None, "puts a container inside itself"),
    (b"]q\x00]q\x01h\x00ah\x00h\x01a", None, r"changes a container \(list\) after placing it in another"),
], ids=["exec", "OrderedDict(n)", "NEWOBJ", "bare storage type", "BUILD on a class", "BUILD other attributes", "stride-0 view",
        "view past its storage", "record size", "missing record", "unused record", "bare storage", "NEWOBJ_EX", "self-cycle", "cycle"])
def test_what_no_recipe_saves_is_refused(body: bytes, records: dict[str, bytes] | None, match: str) -> None:
    refused(pickle_file(body, records), match)


def test_nesting_and_shared_references_cannot_expand_past_the_budget() -> None:
    deep = b"]" * (MAX_DEPTH + 2) + b"a" * (MAX_DEPTH + 1)
    refused(pickle_file(EMPTY_DICT + _str("k") + deep + SETITEM), f"nests containers deeper than {MAX_DEPTH}")
    # Each level is a list holding the previous one twice: 40 levels are 2**40 nodes when walked.
    doubling = _str("leaf") + b"q\x00" + b"".join(b"]q" + bytes([i]) + b"(h" + bytes([i - 1]) * 1 + b"h" + bytes([i - 1]) + b"e"
                                                for i in range(1, 41))
    refused(pickle_file(EMPTY_DICT + _str("k") + doubling + SETITEM), "expands to more than 64.0 MiB")
    # A tensor used a hundred thousand times counts a hundred thousand times.
    reuse = view((1024,), (1,), length=1024) + b"q\x00]" + b"(" + b"h\x00" * 100_000 + b"e"
    refused(pickle_file(EMPTY_DICT + _str("k") + reuse + SETITEM, {"0": bytes(4096)}), "expands to more than",
            FileBudget(max_bytes=16 << 20, kind="trainer", basis="test"))


def test_the_walk_itself_stays_small_however_many_values_the_pickle_pushes() -> None:
    # Ten million one-byte opcodes that each push a value: within the file budget, they
    # would make ten million descriptions (about 2 GB) if the walk did not count opcodes.
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused(pickle_file(EMPTY_DICT + NONE * 10_000_000), "has more than 262144 pickle opcodes",
            FileBudget(max_bytes=16 << 20, kind="trainer", basis="test"))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 << 10, f"the walk peaked {grown_kib >> 10} MiB above the test's earlier peak"


def test_the_budget_bounds_the_file_and_its_pickle() -> None:
    data = saved({"w": torch.zeros(1000)})
    small = FileBudget(max_bytes=2000, kind="optimizer", basis="aape_tiny, 1.9M parameters")
    refused(data, r"is 5\.\d KiB, more than the 2\.0 KiB this run's configuration allows for its optimizer state \(aape_tiny, 1\.9M parameters\)", small)
    refused(data, "pickle, more than the", FileBudget(max_bytes=1 << 20, kind="trainer", basis="t", max_pickle_bytes=10))


def test_protocol_5_and_other_protocols_are_refused() -> None:
    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(2)}, buffer, pickle_protocol=5)
    refused(buffer.getvalue(), "is a protocol-5 pickle")
    refused(pickle.dumps({"x": 1}, protocol=2), "is not a PyTorch zip archive")


def test_damaged_archives_are_refused_in_one_line() -> None:
    data = saved({"w": torch.arange(4.0)})
    refused(data[:200], "is not a readable zip archive")
    refused(data[:-30], "is not a readable zip archive")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        records = {i.filename: z.read(i) for i in z.infolist()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, content in records.items():
            z.writestr(name, content)
        z.writestr("archive/extra/evil.py", b"print()")
    refused(buffer.getvalue(), "is a TorchScript archive")


def test_convert_refuses_each_attack_in_one_line_and_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    written = tmp_path / "site.pth"
    attacks = {
        "is a TorchScript archive": torchscript_writer(tmp_path / "script.pt", written),
        "is not a PyTorch zip archive": build_on_class_writer(tmp_path / "legacy.pt", tmp_path / "patched"),
        "protocol-4 pickle": allocator_newobj_ex(tmp_path / "alloc.pt"),
        "asks to build `builtins.set`": tensor_iteration_bomb(tmp_path / "big.pt", 10**10),
        "holds the compressed record 'data/0'": decompression_bomb(tmp_path / "deflate.pt", 64 << 20),
    }
    for says, file in attacks.items():
        before = file.read_bytes()
        with pytest.raises(UnsafeCheckpointError) as info:
            convert_file(file)
        message = str(info.value)
        assert message.startswith(f"{file} ") and says in message and "refusing to convert it" in message and "\n" not in message, message
        assert file.read_bytes() == before and not file.with_name(file.name + ".pickle").exists(), file
    assert not written.exists() and not (tmp_path / "patched.patch").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in attacks.values())  # nothing written beside


def test_convert_keeps_the_original_and_reads_back_the_same_state(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    file = tmp_path / "sdp_00.pt"
    file.write_bytes(saved(model.state_dict()))
    original = file.read_bytes()
    assert convert_file(file) is True
    assert file.with_name("sdp_00.pt.pickle").read_bytes() == original
    converted = load_state(file.read_bytes(), file)
    assert str(converted) == str(torch.load(io.BytesIO(original), weights_only=True))
    assert getattr(converted, "_metadata") == model.state_dict()._metadata  # type: ignore[attr-defined]
    assert convert_file(file) is False  # a state file already: left alone
