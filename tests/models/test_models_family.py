"""The fairseq2 families: archs, meta construction, checkpoint round trip, encoder-only view."""

from pathlib import Path

import pytest
import torch

from fairseq2.device import CPU
from fairseq2.nn.utils.module import to_device

from aape_plugin.checkpoints import save_state
from aape_plugin.models.config import AapeConfig
from aape_plugin.models.encoder_model import convert_aape_state_dict
from aape_plugin.models.hub import get_aape_encoder_hub, get_aape_hub
from aape_plugin.models.parallelism import apply_ac_to_aape, compile_aape

ARCHS = {"aape_base", "aape_small", "aape_tiny", "vit_base", "vit_small", "vit_tiny"}


@pytest.fixture(scope="module", autouse=True)
def _fairseq2(fairseq2_initialised: None) -> None:
    """Every test here needs the registered families."""


def test_both_families_list_every_arch() -> None:
    assert get_aape_hub().get_archs() == ARCHS
    assert get_aape_encoder_hub().get_archs() == ARCHS
    base = get_aape_hub().get_arch_config("aape_base")
    assert (base.encoder.model_dim, base.encoder.num_layers, base.encoder.num_heads) == (768, 12, 12)
    assert get_aape_hub().get_arch_config("vit_base").encoder.stem.kind == "plain"


def test_unknown_arch_error_names_it() -> None:
    from fairseq2.models import ModelArchitectureNotKnownError

    with pytest.raises(ModelArchitectureNotKnownError, match="aape_huge is not a known aape model architecture"):
        get_aape_hub().get_arch_config("aape_huge")


@pytest.mark.parametrize("arch", ["aape_tiny", "vit_tiny"])
def test_meta_construction_then_materialisation_gives_a_working_model(arch: str) -> None:
    hub = get_aape_hub()
    config = hub.get_arch_config(arch)
    model = hub.create_new_model(config, device=torch.device("cpu"), meta=True)
    assert all(p.is_meta for p in model.parameters())
    # What fairseq2 does when it resumes a run: materialise, then load the checkpoint.
    to_device(model, CPU)
    torch.manual_seed(0)
    reference = hub.create_new_model(config, device=torch.device("cpu"))
    model.load_state_dict(reference.state_dict())
    x = torch.randn(2, 1, 80, 96)
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(1)
    b = reference(x)
    torch.testing.assert_close(a.predicted_patches, b.predicted_patches)


def test_checkpoint_round_trip_is_bit_exact_and_strict(tmp_path: Path) -> None:
    hub = get_aape_hub()
    config = hub.get_arch_config("aape_tiny")
    model = hub.create_new_model(config, device=torch.device("cpu"))
    with torch.no_grad():  # make teacher != student, as after training
        for p in model.student.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "aape_tiny.pt"
    save_state(model.state_dict(), path)  # a state file, as the recipes write

    loaded = hub.load_custom_model(path, config)  # through the plugin's checked loader
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name

    # Strict keys: an extra key is refused.
    sd = model.state_dict()
    sd["unexpected.weight"] = torch.zeros(1)
    save_state(sd, tmp_path / "bad.pt")
    from fairseq2.model_checkpoint import CorruptModelCheckpointError

    with pytest.raises(CorruptModelCheckpointError, match=r"bad.pt is not compatible with the aape model"):
        hub.load_custom_model(tmp_path / "bad.pt", config)


def test_encoder_only_view_loads_the_teacher_without_predictor(tmp_path: Path) -> None:
    hub = get_aape_hub()
    config = hub.get_arch_config("aape_tiny")
    model = hub.create_new_model(config, device=torch.device("cpu"))
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "ssl.pt"
    save_state(model.state_dict(), path)

    encoder = get_aape_encoder_hub().load_custom_model(path, config)
    names = set(encoder.state_dict())
    assert not any("predictor" in n or "teacher" in n or "student" in n for n in names)
    for name, value in model.teacher.state_dict().items():
        assert torch.equal(encoder.encoder.state_dict()[name], value), name

    model.eval()
    encoder.eval()
    x = torch.randn(2, 1, 80, 96)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x).patches, model.teacher(x).patches)


def test_converter_rejects_a_foreign_checkpoint() -> None:
    with pytest.raises(ValueError, match="not an AaPE checkpoint"):
        convert_aape_state_dict({"conv.weight": torch.zeros(1)}, AapeConfig())


def test_activation_checkpointing_keeps_results_and_gradients() -> None:
    hub = get_aape_hub()
    config = hub.get_arch_config("aape_tiny")
    torch.manual_seed(0)
    a = hub.create_new_model(config, device=torch.device("cpu"))
    b = hub.create_new_model(config, device=torch.device("cpu"))
    b.load_state_dict(a.state_dict())
    apply_ac_to_aape(b, every_nth_layer=1)
    x = torch.randn(2, 1, 80, 96)
    outs = []
    for model in (a, b):
        torch.manual_seed(3)
        out = model(x)
        out.predicted_patches.square().mean().backward()
        outs.append((out.predicted_patches.detach(), model.student.stem.proj.weight.grad.clone()))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])


def test_compiler_hook_compiles_every_block() -> None:
    hub = get_aape_hub()
    model = hub.create_new_model(hub.get_arch_config("vit_tiny"), device=torch.device("cpu"))
    compile_aape(model, backend="eager")
    blocks = list(model.student.blocks.blocks) + list(model.teacher.blocks.blocks) + list(model.predictor.blocks)
    assert all(getattr(b, "_compiled_call_impl", None) is not None for b in blocks)
    torch.manual_seed(0)
    model(torch.randn(2, 1, 80, 96)).predicted_patches.mean().backward()
