"""The linear probe: StandardScaler on train, then one linear layer fitted one of two ways.

* ``logistic`` (default): L2-regularised logistic regression solved to convergence (L-BFGS),
  its penalty chosen on the validation split (:mod:`aape_plugin.eval.logistic`). Deterministic,
  and it measures the features, not an optimiser.
* ``evar``: EVAR's protocol (Adam, at most ``max_epochs``, early stopping with ``patience`` on
  validation, best weights restored), kept for comparison with published tables. Its defaults do
  not converge on tasks of a few hundred clips (log-mel statistics on a 16-class task: 35%,
  against 74-78% converged). Hand-written because scikit-learn's linear models have no early
  stopping on a given validation set with restoration of the best weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal

import torch
from sklearn.preprocessing import StandardScaler
from torch import Tensor
from torch.nn import Dropout, Linear, Module, ReLU, Sequential

from aape_plugin.eval.logistic import select_logistic, sklearn_reference
from aape_plugin.eval.metrics import score


@dataclass(kw_only=True)
class ProbeSettings:
    """How the linear head is fitted (the ``probe`` section of ``aape_linear_probe``)."""

    mode: Literal["logistic", "evar"] = "logistic"
    """``logistic``: logistic regression solved to convergence, L2 penalty chosen on validation
    (deterministic: one run per round whatever ``seeds`` says). ``evar``: EVAR's Adam protocol
    with ``lr``, ``max_epochs``, ``patience`` below, one run per seed."""

    penalties: list[float] = field(default_factory=lambda: [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    """``logistic``: the L2 penalties tried (per-clip loss + penalty / 2 * ||W||^2); the best on
    validation is kept."""

    max_iter: int = 1000
    """``logistic``: L-BFGS-B iteration limit per penalty (weak penalties on thousands of clips
    may stop there a little short of the optimum: within about 0.5 accuracy points, measured; the
    ``converged`` field of each run says whether it reached the tolerance)."""

    path_patience: int | None = 2
    """``logistic``: stop trying weaker penalties after this many in a row that do not improve
    the validation score (``null``: try them all)."""

    precision: Literal["double", "single"] = "double"
    """``logistic``: float64 (``double``) or float32 (``single``, 2-5x faster on thousands of clips
    on a CPU, the same choices and scores to within a clip or two) for the objective."""

    widen: int = 0
    """``logistic``: when validation picks the strongest or the weakest penalty, extend the grid
    by a factor of 10 beyond it, up to this many times (the result records whether the chosen
    penalty ended inside the grid: ``penalty_at_edge``)."""

    lr: float = 3e-4
    """``evar``: Adam learning rate (EVAR: 3e-4 for most models, 3e-5 for M2D's 3840-d features)."""

    weight_decay: float = 1e-8
    """``evar``: Adam weight decay."""

    max_epochs: int = 200
    """``evar``: upper bound on training epochs."""

    patience: int = 20
    """``evar``: stop after this many epochs without a better validation score."""

    batch_size: int = 200
    """``evar``: embeddings per step (EVAR: min(200, N))."""

    hidden: list[int] = field(default_factory=list)
    """``evar``: hidden layer sizes for an MLP probe (ReLU, dropout 0.5); empty: linear."""

    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    """``evar``: one probe per seed (and per fold); results are mean +- std over all of them.
    ``logistic`` uses the first seed only (it has no randomness)."""

    def run_seeds(self) -> list[int]:
        """The seeds that give different runs."""
        return list(self.seeds) if self.mode == "evar" else list(self.seeds[:1])


@dataclass
class ProbeResult:
    test_score: float
    valid_score: float
    test_outputs: Tensor
    """``(N_test, C)`` the head's outputs on the test clips (logits), in test order."""

    valid_outputs: Tensor
    """``(N_valid, C)`` the chosen head's outputs on the validation clips."""

    best_epoch: int | None = None
    """``evar``: the epoch whose weights were kept."""

    epochs_run: int | None = None
    """``evar``: epochs trained before stopping."""

    penalty: float | None = None
    """``logistic``: the L2 penalty chosen on validation."""

    iterations: int | None = None
    """``logistic``: L-BFGS iterations of the chosen fit."""

    converged: bool = True
    """``logistic``: whether the chosen fit reached the gradient tolerance."""

    gradient: float | None = None
    """``logistic``: the largest gradient entry of the chosen fit at its end."""

    penalty_at_edge: bool | None = None
    """``logistic``: whether the chosen penalty is an end of the (widened) grid."""

    penalties_tried: list[float] | None = None
    """``logistic``: every penalty fitted (the grid, widened, minus those the path cut short)."""

    sklearn_test_score: float | None = None
    """With ``reference_check``: scikit-learn's tuned logistic regression on the same features."""

    def summary(self) -> dict[str, object]:
        """The JSON-able fields (everything but the outputs)."""
        return {k: v for k, v in self.__dict__.items() if not k.endswith("_outputs")}


def make_head(in_dim: int, num_classes: int, hidden: list[int]) -> Module:
    layers: list[Module] = []
    dim = in_dim
    for h in hidden:
        layers += [Linear(dim, h), ReLU(), Dropout(0.5)]
        dim = h
    layers.append(Linear(dim, num_classes))
    return Sequential(*layers)


def train_probe(
    train: tuple[Tensor, Tensor],
    valid: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    num_classes: int,
    multi_label: bool,
    settings: ProbeSettings,
    seed: int,
    reference_check: bool = False,
) -> ProbeResult:
    """Fits on ``train``, selects on ``valid``, scores ``test`` once.

    :param reference_check: also score scikit-learn's logistic regression tuned on ``valid``
        over the same penalties (``logistic`` mode, single-label tasks): a converged probe gives
        the same test score.
    """
    scaler = StandardScaler().fit(train[0].numpy())

    def scale(x: Tensor) -> Tensor:
        return torch.from_numpy(scaler.transform(x.numpy())).float()

    x_train, x_valid, x_test = scale(train[0]), scale(valid[0]), scale(test[0])

    if settings.mode == "logistic":
        chosen = select_logistic(
            (x_train, train[1]), (x_valid, valid[1]), num_classes=num_classes, multi_label=multi_label,
            penalties=settings.penalties, max_iter=settings.max_iter, patience=settings.path_patience, widen=settings.widen,
            dtype=torch.float32 if settings.precision == "single" else None,
        )
        outputs = chosen.fit.logits(x_test).float()
        reference = None
        if reference_check and not multi_label:
            # The same penalties, the same objective, the same gradient tolerance.
            reference = sklearn_reference((x_train, train[1]), (x_valid, valid[1]), (x_test, test[1]),
                                          penalties=sorted(chosen.valid_scores), max_iter=settings.max_iter)
        return ProbeResult(
            test_score=score(outputs, test[1], multi_label), valid_score=chosen.valid_score, test_outputs=outputs,
            valid_outputs=chosen.fit.logits(x_valid).float(),
            penalty=chosen.fit.penalty, iterations=chosen.fit.iterations, converged=chosen.fit.converged,
            gradient=chosen.fit.gradient, penalty_at_edge=chosen.at_edge, penalties_tried=sorted(chosen.valid_scores),
            sklearn_test_score=reference,
        )

    if settings.mode != "evar":
        raise ValueError(f"`probe.mode` must be 'logistic' or 'evar', but is {settings.mode!r} instead.")

    return _train_evar_probe((x_train, train[1]), (x_valid, valid[1]), (x_test, test[1]),
                             num_classes=num_classes, multi_label=multi_label, settings=settings, seed=seed)


def _train_evar_probe(
    train: tuple[Tensor, Tensor],
    valid: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    num_classes: int,
    multi_label: bool,
    settings: ProbeSettings,
    seed: int,
) -> ProbeResult:
    x_train, x_valid, x_test = train[0], valid[0], test[0]
    y_train = train[1].float() if multi_label else train[1].long()

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = make_head(x_train.size(1), num_classes, settings.hidden)
    optimizer = torch.optim.Adam(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss() if multi_label else torch.nn.CrossEntropyLoss()
    batch = min(settings.batch_size, len(x_train))

    best, best_state, best_epoch, epoch = -float("inf"), copy.deepcopy(head.state_dict()), 0, 0
    for epoch in range(1, settings.max_epochs + 1):
        head.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            optimizer.zero_grad()
            loss_fn(head(x_train[idx]), y_train[idx]).backward()
            optimizer.step()
        head.eval()
        with torch.no_grad():
            current = score(head(x_valid), valid[1], multi_label)
        if current > best:
            best, best_state, best_epoch = current, copy.deepcopy(head.state_dict()), epoch
        elif epoch - best_epoch >= settings.patience:
            break

    head.load_state_dict(best_state)
    head.eval()
    with torch.no_grad():
        outputs = head(x_test)
        valid_outputs = head(x_valid)

    return ProbeResult(test_score=score(outputs, test[1], multi_label), valid_score=best, test_outputs=outputs,
                       valid_outputs=valid_outputs,
                       best_epoch=best_epoch, epochs_run=epoch)
