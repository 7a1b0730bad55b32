"""The EVAR linear probe: StandardScaler on train, one linear layer, Adam, early stopping.

Hand-written (sixty lines) because scikit-learn's linear models have no early stopping on a
given validation set with restoration of the best weights, which the protocol needs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from sklearn.preprocessing import StandardScaler
from torch import Tensor
from torch.nn import Linear, Module, ReLU, Sequential, Dropout

from aape_plugin.eval.metrics import score


@dataclass(kw_only=True)
class ProbeSettings:
    """EVAR's defaults."""

    lr: float = 3e-4
    weight_decay: float = 1e-8
    max_epochs: int = 200
    patience: int = 20
    batch_size: int = 200
    hidden: tuple[int, ...] = ()
    """Hidden layers (ReLU, dropout 0.5); empty: a linear probe."""


@dataclass
class ProbeResult:
    test_score: float
    valid_score: float
    best_epoch: int
    epochs_run: int


def make_head(in_dim: int, num_classes: int, hidden: tuple[int, ...]) -> Module:
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
