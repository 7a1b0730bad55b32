"""The EVAR linear probe: StandardScaler on train, one linear layer, Adam, early stopping.

Hand-written (sixty lines) because scikit-learn's linear models have no early stopping on a
given validation set with restoration of the best weights, which the protocol needs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from sklearn.preprocessing import StandardScaler
from torch import Tensor
from torch.nn import Linear, Module, ReLU, Sequential, Dropout

from aape_plugin.eval.metrics import score


@dataclass(kw_only=True)
class ProbeSettings:
    """EVAR's linear-evaluation settings (the ``probe`` section of ``aape_linear_probe``)."""

    lr: float = 3e-4
    """Adam learning rate (EVAR: 3e-4 for most models, 3e-5 for M2D's 3840-d features)."""

    weight_decay: float = 1e-8
    """Adam weight decay."""

    max_epochs: int = 200
    """Upper bound on training epochs."""

    patience: int = 20
    """Stop after this many epochs without a better validation score."""

    batch_size: int = 200
    """Embeddings per step (EVAR: min(200, N))."""

    hidden: list[int] = field(default_factory=list)
    """Hidden layer sizes for an MLP probe (ReLU, dropout 0.5); empty: linear."""

    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    """One probe per seed (and per fold); results are mean +- std over all of them."""


@dataclass
class ProbeResult:
    test_score: float
    valid_score: float
    best_epoch: int
    epochs_run: int


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
) -> ProbeResult:
    """Trains on ``train``, keeps the weights of the best ``valid`` score, scores ``test`` once."""
    scaler = StandardScaler().fit(train[0].numpy())

    def scale(x: Tensor) -> Tensor:
        return torch.from_numpy(scaler.transform(x.numpy())).float()

    x_train, x_valid, x_test = scale(train[0]), scale(valid[0]), scale(test[0])
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
        test_score = score(head(x_test), test[1], multi_label)

    return ProbeResult(test_score=test_score, valid_score=best, best_epoch=best_epoch, epochs_run=epoch)
