"""L2-regularised logistic regression solved to convergence (L-BFGS-B), its penalty chosen on a
validation split: the probe that measures features rather than an optimiser.

The objective is ``mean_i loss(x_i W + b, y_i) + penalty / 2 * ||W||^2`` (softmax cross-entropy for
single-label tasks, independent sigmoids for multi-label ones; the bias is not penalised). For
single-label tasks it is scikit-learn's ``LogisticRegression(C=1 / (penalty * n))``, so the two agree
when both converge (tested); it is written in PyTorch so that it runs on the GPU and handles
multi-label tasks (AudioSet) with the same code. The problem is convex, so the result does not
depend on a seed, a learning rate or a number of epochs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from torch import Tensor

from aape_plugin.eval.metrics import score


@dataclass
class LogisticFit:
    """One fitted probe."""

    weight: Tensor
    """``(D, C)``."""

    bias: Tensor
    """``(C,)``."""

    penalty: float
    """The L2 penalty it was fitted with."""

    iterations: int
    """L-BFGS-B iterations used."""

    converged: bool
    """Whether the gradient fell below the tolerance before ``max_iter``."""

    gradient: float = 0.0
    """The largest absolute entry of the objective's gradient at the end (converged means at
    most ``tolerance * penalty``)."""

    def logits(self, x: Tensor) -> Tensor:
        return x.to(self.weight) @ self.weight + self.bias


def _loss(x: Tensor, y: Tensor, weight: Tensor, bias: Tensor, penalty: float, multi_label: bool) -> Tensor:
    logits = x @ weight + bias
    if multi_label:
        data = F.binary_cross_entropy_with_logits(logits, y, reduction="sum") / x.size(0)
    else:
        data = F.cross_entropy(logits, y)
    return data + 0.5 * penalty * weight.square().sum()


SMALL_PROBLEM = 50_000_000
"""Multiply-adds per evaluation under which a CPU fit runs on one thread: each evaluation is a
few small matrix products, and several threads then cost more in synchronisation than they save
(measured: 20x slower with 2 threads on a busy 2-core machine)."""


@contextmanager
def _cpu_threads_for(x: Tensor, num_classes: int) -> Iterator[None]:
    if x.device.type != "cpu" or x.numel() * num_classes >= SMALL_PROBLEM:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_logistic(
    x: Tensor,
    y: Tensor,
    *,
    num_classes: int,
    multi_label: bool,
    penalty: float,
    max_iter: int = 1000,
    tolerance: float = 1e-4,
    init: LogisticFit | None = None,
    dtype: torch.dtype | None = None,
) -> LogisticFit:
    """Fits one probe on standardised features ``x`` ``(N, D)``.

    :param y: class indices ``(N,)``, or a ``(N, C)`` 0/1 matrix when ``multi_label``.
    :param init: a previous fit to start from (a warm start along the penalty path).
    :param dtype: of the loss and gradient (L-BFGS itself runs in float64). Default: float64 on
        the CPU (agreement with scikit-learn to many digits), float32 on accelerators. float32
        on the CPU is 2-5x faster on thousands of clips and leaves validation accuracy unchanged
        (measured), but its gradient cannot fall below about 1e-7: weak penalties then stop on
        stalled progress instead of the gradient tolerance (``gradient`` says how far).
    :param tolerance: stop when the largest gradient entry falls below ``tolerance * penalty``.
        The objective is ``penalty``-strongly convex, so the weights are then within about
        ``tolerance`` of the optimum whatever the penalty (an absolute gradient tolerance would
        stop far from it at weak penalties, where the loss is flat).
    """
    if penalty <= 0:
        raise ValueError(f"`penalty` must be > 0, but is {penalty} instead.")

    # float64 on the CPU (exact agreement with scikit-learn); float32 on accelerators.
    dtype = dtype or (torch.float64 if x.device.type == "cpu" else torch.float32)
    x = x.to(dtype)
    y = y.to(dtype) if multi_label else y.long()
    dim = x.size(1)

    if init is None:
        theta0 = np.zeros(dim * num_classes + num_classes)
    else:
        theta0 = torch.cat([init.weight.flatten(), init.bias]).double().cpu().numpy()

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = torch.from_numpy(theta).to(device=x.device, dtype=dtype).requires_grad_(True)
        with torch.enable_grad():
            loss = _loss(x, y, params[: dim * num_classes].view(dim, num_classes), params[dim * num_classes :], penalty, multi_label)
            (grad,) = torch.autograd.grad(loss, params)
        return float(loss.detach()), grad.double().cpu().numpy()

    # SciPy's L-BFGS-B (what scikit-learn uses) with PyTorch computing the loss and gradient,
    # on whatever device the features are. Its line search stays robust near the optimum,
    # where torch.optim.LBFGS stalls on ill-conditioned probes.
    with _cpu_threads_for(x, num_classes):
        result = minimize(
            objective, theta0, jac=True, method="L-BFGS-B",
            options={"maxiter": max_iter, "maxls": 50, "gtol": tolerance * penalty, "ftol": 64 * np.finfo(float).eps},
        )

    theta = torch.from_numpy(result.x).to(device=x.device, dtype=dtype)
    largest_grad = float(np.abs(result.jac).max())

    return LogisticFit(
        weight=theta[: dim * num_classes].view(dim, num_classes),
        bias=theta[dim * num_classes :],
        penalty=penalty,
        iterations=int(result.nit),
        converged=largest_grad <= tolerance * penalty or bool(result.success),
        gradient=largest_grad,
    )


@dataclass
class LogisticSelection:
    """The probe chosen on validation, and the validation score of every penalty tried."""

    fit: LogisticFit
    valid_score: float
    valid_scores: dict[float, float]

    @property
    def at_edge(self) -> bool:
        """Whether the chosen penalty is the strongest or the weakest one tried (the optimum
        may lie beyond the grid)."""
        return self.fit.penalty in (min(self.valid_scores), max(self.valid_scores))


def select_logistic(
    train: tuple[Tensor, Tensor],
    valid: tuple[Tensor, Tensor],
    *,
    num_classes: int,
    multi_label: bool,
    penalties: Sequence[float],
    max_iter: int = 1000,
    tolerance: float = 1e-4,
    patience: int | None = 2,
    widen: int = 0,
    dtype: torch.dtype | None = None,
) -> LogisticSelection:
    """Fits one probe per penalty (strongest first, each warm-started from the previous one) and
    keeps the one with the best validation score; ties go to the stronger penalty.

    :param patience: stop going down the penalty path after this many penalties in a row that do
        not beat the best validation score (weaker penalties cost the most iterations, and the
        validation score of a penalty path rises to one peak); ``None``: try every penalty.
    :param widen: when the best penalty is at an end of the grid, extend the grid by a factor of
        10 beyond that end, up to this many times, until the best is inside it.
    :param dtype: of the objective's computation (default: float64 on the CPU, else float32).
    """
    if not penalties:
        raise ValueError("`penalties` must hold at least one value.")

    best: LogisticFit | None = None
    best_score = -float("inf")
    scores: dict[float, float] = {}

    def try_path(path: Sequence[float], start: LogisticFit | None) -> None:
        nonlocal best, best_score
        previous, since_best = start, 0
        for penalty in path:
            if patience is not None and since_best >= patience:
                break
            fit = fit_logistic(
                train[0], train[1], num_classes=num_classes, multi_label=multi_label, penalty=penalty,
                max_iter=max_iter, tolerance=tolerance, init=previous, dtype=dtype,
            )
            previous = fit
            with torch.no_grad():
                current = score(fit.logits(valid[0]).float().cpu(), valid[1].cpu(), multi_label)
            scores[penalty] = current
            if current > best_score or (current == best_score and best is not None and penalty > best.penalty):
                best, best_score, since_best = fit, current, 0
            else:
                since_best += 1

    try_path(sorted(penalties, reverse=True), None)
    for _ in range(widen):
        assert best is not None
        if best.penalty == min(scores):  # the weak end won: go weaker
            try_path([best.penalty / 10], best)
        elif best.penalty == max(scores) and len(scores) > 1:  # the strong end won: go stronger
            try_path([best.penalty * 10], best)
        else:
            break

    assert best is not None
    return LogisticSelection(best, best_score, scores)


def sklearn_reference(
    train: tuple[Tensor, Tensor],
    valid: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    penalties: Sequence[float],
    tolerance: float = 1e-4,
    max_iter: int = 10_000,
) -> float:
    """Test accuracy of scikit-learn's ``LogisticRegression`` on the same standardised features,
    its ``C`` chosen on ``valid`` over the same penalty grid (``C = 1 / (penalty * n)``): the
    reference a converged probe must match (single-label tasks).

    :param tolerance: in :func:`fit_logistic`'s terms: scikit-learn's L-BFGS stops when the
        largest gradient entry of the same objective falls below its ``tol``, which is set to
        ``tolerance * penalty`` for each penalty, as :func:`fit_logistic` stops. The default is
        the probe's tolerance (a matching check); smaller values make the reference the more
        converged of the two.
    """
    from sklearn.linear_model import LogisticRegression

    x_train, x_valid, x_test = (part[0].double().numpy() for part in (train, valid, test))
    best_valid, best_test = -1.0, 0.0
    for penalty in sorted(penalties, reverse=True):
        model = LogisticRegression(C=1.0 / (penalty * len(x_train)), max_iter=max_iter, tol=tolerance * penalty)
        model.fit(x_train, train[1].numpy())
        current = model.score(x_valid, valid[1].numpy())
        if current > best_valid:
            best_valid, best_test = current, model.score(x_test, test[1].numpy())
    return float(best_test)
