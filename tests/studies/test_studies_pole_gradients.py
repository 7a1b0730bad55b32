"""The pole-gradient diagnostic: its following statistic is Pearson's r over clips, averaged over
(subband, kernel), and differentiable; its first-order change is what a small step really does."""

import numpy as np
import torch

from studies.pole_gradients import following_r

LOG_RATE = torch.log(torch.tensor([4.0, 6.0, 9.0, 13.0, 19.0, 27.0, 38.0]))
UNRELATED = torch.tensor([0.3, -1.2, 0.8, 0.1, -0.4, 1.5, -0.9])


class _Reader(torch.nn.Module):
    """Stands in for a Lambda Encoder: each of 2 kernels mixes the clip's level (which is the log
    rate) and a pattern unrelated to it."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = torch.nn.Parameter(torch.tensor([[1.0, 1.0], [0.5, -1.0]]))

    def forward(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.stack([mels.mean(dim=(1, 2, 3)), UNRELATED], dim=1)  # (C, 2)
        frequency = (features @ self.mix.T)[:, None, None, :]  # (C, S=1, P=1, N=2)
        return frequency, frequency


def test_following_r_is_the_mean_pearson_r_and_a_small_step_changes_it_as_predicted() -> None:
    mels = LOG_RATE[:, None, None, None].expand(7, 1, 16, 16).clone()
    reader = _Reader()
    r = following_r(reader, mels, LOG_RATE)
    with torch.no_grad():
        frequency = reader(mels)[1][:, 0, 0, :].numpy()
    expected = np.mean([np.corrcoef(frequency[:, k], LOG_RATE.numpy())[0, 1] for k in range(2)])
    assert abs(r.item() - expected) < 1e-5
    (grad,) = torch.autograd.grad(r, [reader.mix])
    assert grad.abs().sum() > 0
    with torch.no_grad():
        reader.mix += 1e-3 * grad
    r = r.detach()
    predicted = float(r) + 1e-3 * float((grad * grad).sum())
    after = following_r(reader, mels, LOG_RATE).item()
    assert after > float(r) and abs(after - predicted) < 0.05 * (predicted - float(r))


def test_the_page_is_its_stored_measurement_rendered() -> None:
    import json

    from studies.pole_gradients import TERMS, render
    from tests.recipes.helpers import REPO

    document = json.loads((REPO / "docs" / "pole-gradients.json").read_text())
    assert (REPO / "docs" / "pole-gradients.md").read_text() == render(document)
    assert {m["variant"] for m in document["measurements"]} == {"trained_visible", "modulation_lambda"}
    assert all(set(m["terms"]) == set(TERMS) for m in document["measurements"])


def test_measured_again_the_page_keeps_its_note_unless_a_new_one_is_given(tmp_path) -> None:  # noqa: ANN001
    import json

    from studies.pole_gradients import new_document

    out = tmp_path / "pole-gradients.json"
    assert new_document([], out, None) == {"measurements": [], "note": ""}
    out.write_text(json.dumps({"measurements": [{"seed": 1}], "note": "what the numbers say"}))
    assert new_document([{"seed": 2}], out, None) == {"measurements": [{"seed": 2}], "note": "what the numbers say"}
    assert new_document([{"seed": 2}], out, "a new reading")["note"] == "a new reading"
    assert new_document([], None, None)["note"] == ""
