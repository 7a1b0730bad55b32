"""A pre-training step that does not publish metrics reads nothing back from the device.

On a GPU every host read (``.item()``, ``.tolist()``, ``bool(tensor)``, ``nonzero``, a boolean
mask index, ``.cpu()``) stalls the pipeline until the device catches up. On CPU there is no
device to wait for, so the test counts the calls that would wait, with a ``TorchFunctionMode``
that sees every tensor operation of the step (forward, criterion, metrics and backward). The GPU
check (``make gpu-check``) runs the same step under ``torch.cuda.set_sync_debug_mode("error")``.
"""

from pathlib import Path

import torch
from fairseq2.device import CPU
from fairseq2.metrics import MetricBag
from torch.overrides import TorchFunctionMode

from aape_plugin.data.audio import load_waveform
from aape_plugin.data.batch import AudioBatch
from aape_plugin.data.features import LogMel
from aape_plugin.losses import AapeCriterion, AapeCriterionConfig
from aape_plugin.models.archs import ARCHS
from aape_plugin.models.ema import EmaConfig
from aape_plugin.models.factory import create_aape_model
from aape_plugin.recipes.pretrain_unit import AapePretrainUnit

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo"
CLIPS = ["notes/gm000_p060.flac", "notes/gm040_p060.flac", "keywords/en-us_m1_stop.flac", "drums/BJA_Pacific_Snare.flac"]

HOST_READS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "nonzero", "argwhere", "cpu", "numpy",
              "masked_select", "unique", "unique_consecutive"}


class HostReads(TorchFunctionMode):
    """Records every operation that needs a device tensor's value on the host."""

    def __init__(self, host_tensors: list[torch.Tensor]) -> None:
        super().__init__()
        self.host = {id(t) for t in host_tensors}  # tensors that live on the host anyway
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", "")
        first = args[0] if args else None
        on_device = isinstance(first, torch.Tensor) and id(first) not in self.host
        if on_device and name in HOST_READS:
            self.calls.append(name)
        if on_device and name == "__getitem__":
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
                self.calls.append("boolean-mask index")
        return func(*args, **(kwargs or {}))


def batch() -> AudioBatch:
    x = torch.stack([(LogMel()(load_waveform(DEMO / n))[:, :96] + 7.08) / 6.83 for n in CLIPS]).unsqueeze(1)
    return AudioBatch(features=x, num_frames=torch.full((4,), 96), paths=CLIPS, indices=torch.arange(4))


def step_reads(arch: str, step_nr: int) -> list[str]:
    torch.manual_seed(0)
    model = create_aape_model(ARCHS[arch]()).train()
    unit = AapePretrainUnit(model, model, AapeCriterion(AapeCriterionConfig()), EmaConfig(num_steps=100), 100.0,
                            publish_every=10, num_steps=100)
    bag = MetricBag(CPU)
    unit.prepare_metric_bag(bag)
    unit.set_step_nr(step_nr)
    data = batch()
    with HostReads([data.indices]) as mode:  # batch indices stay on the host (mask seeds)
        loss, _ = unit.process_batch(data, bag)
        loss.backward()
    return mode.calls


def test_a_step_that_does_not_publish_reads_nothing_back() -> None:
    for arch in ("aape_tiny", "vit_tiny"):
        assert step_reads(arch, 3) == [], arch


def test_the_counter_sees_the_reads_of_a_publishing_step() -> None:
    # Step 10 publishes: the stem quantiles and the effective ranks read values back, and the
    # counter must see them (else the test above proves nothing).
    reads = step_reads("aape_tiny", 10)
    assert "cpu" in reads and "__float__" in reads
