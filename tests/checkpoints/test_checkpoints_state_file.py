"""State files (safetensors plus a JSON structure): every state the recipes write reads back
exactly, nothing is unpickled on the way, what the format cannot hold is refused when saved, and
a damaged or crafted file is refused in one line naming it."""

import io
import json
import math
import pickle
import struct
import warnings
from collections import OrderedDict
from pathlib import Path

import pytest
import safetensors.torch
import torch

from aape_plugin.checkpoints import StateNotStorableError, UnsafeCheckpointError, dump_state, load_state
from aape_plugin.checkpoints.state_file import FORMAT, MAX_DEPTH, MAX_STRUCTURE_BYTES, STRUCTURE_KEY

NAME = Path("/runs/x/checkpoints/step_4/trainer/rank_00.pt")


def same(a: object, b: object, where: str = "") -> None:
    """``a`` and ``b`` are equal in every type, key order, dtype, shape and value (NaN equals NaN)."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where  # type: ignore[union-attr]
        bits = lambda t: t.detach().contiguous().flatten().view(torch.uint8)  # noqa: E731  (NaN payloads and -0.0 too)
        assert torch.equal(bits(a), bits(b)), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where  # type: ignore[call-overload]
        assert getattr(a, "_metadata", None) == getattr(b, "_metadata", None), where
        for key in a:
            same(a[key], b[key], f"{where}.{key}")  # type: ignore[index]
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where  # type: ignore[arg-type]
        for i, (x, y) in enumerate(zip(a, b)):  # type: ignore[call-overload]
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where  # type: ignore[arg-type]
    else:
        assert a == b, (where, a, b)


def round_trip(state: dict) -> dict:
    return load_state(dump_state(state, NAME), NAME)


def real_like_states() -> dict[str, dict]:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.BatchNorm1d(4))
    optimiser = torch.optim.AdamW(model.parameters(), betas=(0.9, 0.95))
    model(torch.randn(2, 3)).sum().backward()
    optimiser.step()
    return {
        "model": model.state_dict(),  # an OrderedDict with _metadata (module versions)
        "optimizer": optimiser.state_dict(),  # int keys, tuples of betas, None, bools, 0-dim step tensors
        "trainer": {"_step_nr": 3, "_data_epoch_nr": 1, "_lr_scheduler": {"base_lrs": [1e-3, 0.0], "cycle_mul": 1.0, "last_epoch": 3},
                    "_fp16_loss_scaler": {}, "_rng_bag": {"generators": [torch.get_rng_state()]},
                    "_metric_bag": {"loss": {"weighted_sum": torch.tensor(1.5, dtype=torch.float64), "weights": torch.tensor(2.0, dtype=torch.float64)}},
                    "_base_wall_time": 2.7168079950000106},
        "data_reader": {"pipeline": {"position": [True, True, [{"features": torch.randn(2, 1, 8, 4), "paths": ["a.flac", "b.flac"], "labels": None,
                                                               "indices": torch.arange(2), "num_skipped": 0, "extras": {"num_samples": torch.arange(2)}}], 0]},
                        "epoch": 0, "seen": 36, "bad": 0},
        "plain values": {"floats": [math.nan, math.inf, -math.inf, -0.0, 1e-308, 5e-324, 1 / 3], "big int": 10**30, "negative": -(2**70),
                         "tuple": (1, (2.0, "3"), [None]), "empty": ((), [], {}), 7: "an int key", -1: {"nested": True}, "text": "é\u2028\"\n",
                         "dtype": torch.bfloat16, "size": torch.Size([2, 3]), "bytes": [b"raw\x00bytes", b""],
                         "tensors": [torch.zeros(0, 3), torch.tensor(True), torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.float16),
                                     torch.arange(4, dtype=torch.int8), torch.arange(4, dtype=torch.uint8), torch.tensor([math.nan, math.inf])]},
    }


@pytest.mark.parametrize("kind", list(real_like_states()))
def test_every_kind_of_state_reads_back_exactly(kind: str) -> None:
    state = real_like_states()[kind]
    same(state, round_trip(state))


def test_shared_and_strided_tensors_are_stored_and_the_same_tensor_stays_one() -> None:
    base = torch.arange(10.0)
    state = {"a": base, "again": base, "slice": base[2:5], "transposed": base.view(2, 5).t(), "expanded": torch.ones(1).expand(4)}
    with pytest.raises(RuntimeError):  # what safetensors itself refuses
        safetensors.torch.save({"a": base, "slice": base[2:5]})
    loaded = round_trip(state)
    same({k: v.contiguous() for k, v in state.items()}, loaded)
    assert loaded["a"] is loaded["again"]  # one tensor, as it was
    loaded["slice"][0] = -1.0  # copies: writable, and independent of `a`
    assert loaded["a"][2] == 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded["a"].add_(1.0)  # an optimiser updates its moments in place


@pytest.mark.parametrize(("state", "where", "what"), [
    ({"x": {1, 2}}, "x", "a value of type builtins.set"),
    ({"x": [0, object()]}, "x[1]", "a value of type builtins.object"),
    ({"x": {(1, 2): 3}}, "x", "a dict key of type tuple"),
    ({"x": {True: 3}}, "x", "a dict key of type bool"),
    ({"state": {0: {"m": torch.zeros(2, dtype=torch.complex64)}}}, "state.0.m", "a tensor of dtype torch.complex64"),
    ({"x": torch.zeros(2).to_sparse()}, "x", "a Tensor with layout torch.sparse_coo"),
    ({"x": bytearray(b"raw")}, "x", "a value of type builtins.bytearray"),
], ids=["set", "object", "tuple key", "bool key", "complex tensor", "sparse tensor", "bytearray"])
def test_what_the_format_cannot_hold_is_refused_when_saved_naming_where(state: dict, where: str, what: str) -> None:
    with pytest.raises(StateNotStorableError) as info:
        dump_state(state, NAME)
    message = str(info.value)
    assert message.startswith(f"{NAME}: the state to save holds {what}") and f"at `{where}`" in message and "\n" not in message, message


def crafted(structure: object, tensors: dict[str, torch.Tensor] | None = None, *, fmt: str = FORMAT, text: str | None = None) -> bytes:
    """A safetensors file with the given structure (as the dumper writes its header)."""
    text = json.dumps(structure) if text is None else text
    return safetensors.torch.save(tensors or {}, metadata={"format": fmt, STRUCTURE_KEY: text})


def refused(data: bytes, says: str) -> str:
    with pytest.raises(UnsafeCheckpointError) as info:
        load_state(data, NAME)
    message = str(info.value)
    assert message.startswith(f"{NAME} ") and says in message and "\n" not in message, message
    return message


GOOD = dump_state({"w": torch.arange(4.0), "step": 3}, NAME)


@pytest.mark.parametrize(("data", "says"), [
    (GOOD[:5], "fewer than a safetensors header"),
    (GOOD[:40], "its header would be"),
    (GOOD[:-3], "safetensors cannot read it"),
    (struct.pack("<Q", 1 << 40) + GOOD[8:], f"its header would be {1 << 40} bytes, more than"),
    (GOOD[:8] + b"x" + GOOD[9:], "its header is not readable JSON"),
    (crafted({"dict": []}, text="x" * (MAX_STRUCTURE_BYTES + 1)), f"more than {MAX_STRUCTURE_BYTES}"),
    (crafted({"dict": [["w", {"tensor": "t1"}]]}, {"t0": torch.zeros(2)}), "names the tensor 't1', which it does not hold"),
    (crafted({"dict": [["w", {"tensor": "t0"}]]}), "names the tensor 't0', which it does not hold"),
    (crafted({"dict": []}, {"t0": torch.zeros(2)}), "holds 1 tensor(s) its structure does not use"),
    (crafted({"dict": []}, fmt="something else"), "its header names no aape-state/1 structure"),
    (safetensors.torch.save({"w": torch.zeros(2)}), "its header names no aape-state/1 structure"),
    (crafted({"dict": [["x", {"float": "NaN"}]]}), "malformed 'float' entry"),
    (crafted({}, text='{"dict": [["x", NaN]]}'), "JSON holds NaN"),
    (crafted({}, text='{"dict": [], "dict": []}'), "repeats a key"),
    (crafted({"dict": [["x", 1], ["x", 2]]}), "a dict with a repeated key"),
    (crafted({"dict": [[1.5, 1]]}), "not a [str or int key, value] pair"),
    (crafted({"eval": "print()"}), "unknown or malformed 'eval' entry"),
    (crafted({"dict": [["b", {"bytes": "t0"}]]}, {"t0": torch.zeros(2)}), "reads the torch.float32 tensor 't0' as bytes"),
    (crafted({"tuple": []}), "its structure is not a dict of states"),
    (crafted({"dict": [["x", "[" * (MAX_DEPTH + 5)]]}, text='{"dict": [["x", ' + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "]]}"),
     f"nests deeper than {MAX_DEPTH}"),
], ids=["no header", "truncated header", "truncated tensors", "huge header length", "header not JSON", "structure over the cap",
        "structure names a missing tensor", "no tensors at all", "unused tensor", "other format", "plain safetensors", "bad float",
        "NaN literal", "repeated JSON key", "repeated dict key", "float key", "unknown tag", "float tensor as bytes", "not a dict",
        "deep nesting"])
def test_a_damaged_or_crafted_state_file_is_refused_in_one_line(data: bytes, says: str) -> None:
    refused(data, says)


def test_a_pickle_checkpoint_is_refused_with_the_command_that_converts_it() -> None:
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    legacy = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    for data in (buffer.getvalue(), legacy.getvalue()):
        message = refused(data, "is a pickle checkpoint")
        assert "refusing to unpickle it (nothing of it was built); convert it with `aape convert /runs/x`" in message, message
    assert "`aape convert /elsewhere/model.pt`" in str(pytest.raises(UnsafeCheckpointError, load_state, buffer.getvalue(),
                                                                        Path("/elsewhere/model.pt")).value)
    # A `--checkpoint-dir` of another name: the command names that folder.
    assert "`aape convert /ckpt`" in str(pytest.raises(UnsafeCheckpointError, load_state, buffer.getvalue(),
                                                        Path("/ckpt/step_4/trainer/rank_00.pt")).value)


def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``pickle.load``, ``pickle.loads``, ``pickle.Unpickler`` and ``torch.load`` raise (and
    record the call): code run after this cannot unpickle without being seen."""
    calls: list[str] = []

    def refuse(name: str):  # type: ignore[no-untyped-def]
        def call(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"{name} was called")
        return call

    monkeypatch.setattr(pickle, "load", refuse("pickle.load"))
    monkeypatch.setattr(pickle, "loads", refuse("pickle.loads"))
    monkeypatch.setattr(pickle, "Unpickler", refuse("pickle.Unpickler"))
    monkeypatch.setattr(torch, "load", refuse("torch.load"))
    monkeypatch.setattr(torch.serialization, "load", refuse("torch.serialization.load"))
    return calls


def test_the_recipes_loader_and_load_encoder_read_a_real_run_without_unpickling(short_run: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 fairseq2_initialised: None) -> None:
    from tests.recipes.test_recipes_safe_resume import recipe_loader

    files = sorted((short_run / "checkpoints").rglob("*.pt"))
    assert len(files) == 8
    from aape_plugin.inference.loading import load_encoder

    calls = no_unpickling(monkeypatch)
    for file in files:
        recipe_loader(max_step=4).load(file)
    load_encoder(short_run)  # what the fine-tuning recipe, the probe and HEAR call
    load_encoder(short_run / "checkpoints" / "step_2", weights="student")
    assert calls == []


def header_size(data: bytes) -> int:
    return struct.unpack("<Q", data[:8])[0]  # type: ignore[no-any-return]


def header(data: bytes) -> dict:
    return json.loads(data[8:8 + header_size(data)])  # type: ignore[no-any-return]


def test_real_states_read_back_exactly_and_write_the_same_bytes(short_run: Path) -> None:
    from aape_plugin.checkpoints.budget import FileBudget
    from aape_plugin.checkpoints.load import load_checked

    kinds = set()
    for file in sorted((short_run / "checkpoints").rglob("*.pt")):
        data = file.read_bytes()
        state = load_state(data, file)
        # What was read is what is written again: the same header (safetensors orders its metadata
        # entries as it likes) and the same tensor bytes.
        again = dump_state(state, file)
        assert header(again) == header(data) and len(again) == len(data) and again[-(len(data) - 8 - header_size(data)):] == \
            data[8 + header_size(data):], file
        same(state, load_state(dump_state(state, file), file), str(file))
        kinds.add(file.relative_to(short_run / "checkpoints").parts[1])
        # As a pickle (how these recipes wrote it before), then converted: the same state, the same bytes.
        old = io.BytesIO()
        torch.save(state, old, pickle_protocol=2)
        same(state, load_checked(old.getvalue(), FileBudget(max_bytes=64 << 20, kind="test", basis="test")), str(file))
    assert kinds == {"model", "optimizer", "trainer", "data_reader"}
    model = load_state((short_run / "checkpoints" / "step_4" / "model" / "pp_00" / "tp_00" / "sdp_00.pt").read_bytes(), NAME)
    assert type(model) is OrderedDict and getattr(model, "_metadata")[""] == {"version": 1}
