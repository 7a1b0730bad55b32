"""The converged probe: logistic regression by L-BFGS against scikit-learn on real features."""

import numpy as np
import pytest
import torch
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from aape_plugin.data.hub import get_audio_manifest_hub
from aape_plugin.data.stats import FeatureStats
from aape_plugin.eval.linear_eval import embed_split
from aape_plugin.eval.logistic import _loss, fit_logistic, select_logistic, sklearn_reference
from aape_plugin.eval.probe import ProbeSettings, train_probe
from aape_plugin.inference.embedder import LogMelEmbedder


@pytest.fixture(scope="module")
def pitch_logmel(fairseq2_initialised: None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Log-mel statistics (per-bin mean and std) of every demo_pitch clip, by split."""
    dataset = get_audio_manifest_hub().open_dataset("demo_pitch")
    embedder = LogMelEmbedder(FeatureStats.load(dataset.stats_file))
    out = {}
    for split in ("train", "valid", "test"):
        data = embed_split(embedder, dataset, split, create_fake_gangs(CPU), clip_seconds=1.0, crop="start",
                           seed=2, num_parallel_calls=1)
        out[split] = (data["embeddings"], data["labels"])
    return out


def test_penalised_fit_is_the_scikit_learn_optimum(pitch_logmel) -> None:
    x, y = pitch_logmel["train"]
    x = torch.from_numpy(StandardScaler().fit_transform(x.double().numpy()))
    penalty = 1e-2
    ours = fit_logistic(x, y, num_classes=25, multi_label=False, penalty=penalty)
    theirs = LogisticRegression(C=1.0 / (penalty * len(x)), max_iter=10_000, tol=1e-10).fit(x.numpy(), y.numpy())
    assert ours.converged and len(theirs.classes_) == 25
    # The same objective at the same optimum (to 1e-6 relative)...
    weight, bias = torch.from_numpy(theirs.coef_.T.copy()), torch.from_numpy(theirs.intercept_.copy())
    objective = lambda w, b: float(_loss(x, y, w, b, penalty, multi_label=False))  # noqa: E731
    assert objective(ours.weight, ours.bias) == pytest.approx(objective(weight, bias), rel=1e-6)
    # sklearn's classes are the labels present in train; columns of ours follow class indices.
    present = torch.as_tensor(theirs.classes_)
    logits = ours.logits(x)[:, present].numpy()
    theirs_logits = theirs.decision_function(x.numpy())
    # Softmax logits are defined up to a per-row constant: compare centred logits.
    centred = lambda a: a - a.mean(axis=1, keepdims=True)  # noqa: E731
    # ...hence the same decision function (logits of magnitude about 5).
    assert np.abs(centred(logits) - centred(theirs_logits)).max() < 5e-3


def test_tuned_probe_matches_tuned_scikit_learn_on_log_mel_statistics(pitch_logmel) -> None:
    """Within 1 point of scikit-learn's logistic regression tuned on validation (same features,
    same penalty grid): the probe measures the features, not its optimiser."""
    settings = ProbeSettings()
    train, valid, test = pitch_logmel["train"], pitch_logmel["valid"], pitch_logmel["test"]
    ours = train_probe(train, valid, test, num_classes=25, multi_label=False, settings=settings, seed=0, reference_check=True)
    assert ours.converged and ours.penalty in settings.penalties and ours.sklearn_test_score is not None
    # scikit-learn solving the same objective to the same gradient tolerance over the same
    # penalties, tuned on the same validation split: at most one of the 50 test clips apart.
    assert abs(ours.test_score - ours.sklearn_test_score) <= 1 / len(test[0]) + 1e-6, (ours.test_score, ours.sklearn_test_score)
    # The features are good: converged, log-mel statistics clearly learn pitch (25 classes);
    # EVAR's default protocol stays far below on the same features (it does not converge).
    assert ours.test_score > 0.8
    evar = train_probe(train, valid, test, num_classes=25, multi_label=False, settings=ProbeSettings(mode="evar"), seed=42)
    assert evar.test_score < ours.test_score - 0.15, (evar.test_score, ours.test_score)


def test_evar_mode_keeps_the_published_protocol(pitch_logmel) -> None:
    settings = ProbeSettings(mode="evar", max_epochs=5, patience=2, seeds=[1, 2])
    assert settings.run_seeds() == [1, 2] and ProbeSettings().run_seeds() == [42]
    res = train_probe(*(pitch_logmel[s] for s in ("train", "valid", "test")), num_classes=25, multi_label=False,
                      settings=settings, seed=1)
    assert res.penalty is None and 1 <= res.best_epoch <= res.epochs_run <= 5


def test_multi_label_probe_learns_independent_classes() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g)
    y = torch.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5, x[:, 3] < -1], dim=1).float()
    fit = fit_logistic(x, y, num_classes=3, multi_label=True, penalty=1e-4)
    assert fit.converged
    probs = torch.sigmoid(fit.logits(x))
    assert ((probs > 0.5).float() == y).float().mean() > 0.97


def test_penalty_must_be_positive() -> None:
    with pytest.raises(ValueError, match="`penalty` must be > 0, but is 0"):
        fit_logistic(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), num_classes=2, multi_label=False, penalty=0.0)


def test_grid_widens_until_the_chosen_penalty_is_inside(fairseq2_initialised: None) -> None:
    # On real features whose validation score peaks inside a wide grid (log-mel statistics of
    # demo_keywords peak at 0.1): grids lying entirely above or below the peak pick their end;
    # widening walks past that end until the choice is inside the grid again.
    dataset = get_audio_manifest_hub().open_dataset("demo_keywords")
    embedder = LogMelEmbedder(FeatureStats.load(dataset.stats_file))
    data = {s: embed_split(embedder, dataset, s, create_fake_gangs(CPU), clip_seconds=1.0, crop="start", seed=2, num_parallel_calls=1)
            for s in ("train", "valid")}
    scaler = StandardScaler().fit(data["train"]["embeddings"].double().numpy())
    train, valid = ((torch.from_numpy(scaler.transform(data[s]["embeddings"].double().numpy())), data[s]["labels"]) for s in ("train", "valid"))
    common = dict(num_classes=len(dataset.label_names), multi_label=False, patience=None)
    full = select_logistic(train, valid, penalties=[10.0 ** k for k in range(-5, 3)], **common)
    assert not full.at_edge
    for grid in ([full.fit.penalty * 1000, full.fit.penalty * 100], [full.fit.penalty / 100, full.fit.penalty / 1000]):
        narrow = select_logistic(train, valid, penalties=grid, **common)
        assert narrow.at_edge
        wide = select_logistic(train, valid, penalties=grid, widen=5, **common)
        assert not wide.at_edge and wide.valid_score > narrow.valid_score, (grid, wide.valid_scores)
        assert wide.fit.penalty == pytest.approx(full.fit.penalty) and wide.fit.gradient <= 1e-4 * wide.fit.penalty
