"""hinet.recipes.lr_at against the official training loop, simulated step by step on a real torch optimiser.

What the official code (megvii-model/HINet, basicsr) does, and what :func:`official_lrs` reproduces:

* ``basicsr/train.py``: ``current_iter`` starts at 0 and is incremented *before* each iteration (so the first
  optimiser step has ``current_iter == 1``); the loop stops after ``total_iter`` steps. Each iteration calls
  ``model.update_learning_rate(current_iter, warmup_iter)`` and then ``optimize_parameters`` (one
  ``optimizer.step()``).
* ``basicsr/models/base_model.py`` ``update_learning_rate``: ``scheduler.step()`` only when
  ``current_iter > 1`` (after the previous optimiser step), then, while ``current_iter < warmup_iter``,
  every group's ``lr`` is overwritten with ``initial_lr / warmup_iter * current_iter``. ``warmup_iter=-1``
  means none.
* ``options/train/{SIDD,GoPro,Rain13k}/HINet.yml``: scheduler ``TrueCosineAnnealingLR``, which
  ``setup_schedulers`` maps to ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=400000, eta_min)``; torch
  computes its values recursively from the group's *current* lr (so a warm-up override carries into the
  cosine that follows), not from the closed form.

The simulation runs all 400k iterations of each official recipe with torch's own scheduler and compares
every step's lr with ``lr_at`` (relative difference <= 1e-6).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from hinet.recipes import RECIPES, lr_at

# Values copied from options/train/<task>/HINet.yml of megvii-model/HINet:
# (optim_g.lr, scheduler.T_max, scheduler.eta_min, total_iter, warmup_iter)
OFFICIAL_YAML = {
    "sidd": (2e-4, 400_000, 1e-6, 400_000, -1),
    "gopro": (2e-4, 400_000, 1e-7, 400_000, -1),
    "rain13k": (2e-4, 400_000, 1e-7, 400_000, 10_000),
}


def official_lrs(lr: float, t_max: int, eta_min: float, total_iter: int, warmup_iter: int) -> np.ndarray:
    """The lr each optimiser step of the official loop uses, index = step (0-based) = current_iter - 1.

    A real ``torch.optim.SGD`` on one parameter and torch's ``CosineAnnealingLR``; the loop body is the
    official ``update_learning_rate`` followed by the optimiser step. Only the first ``optimizer.step()``
    is really called (the lr never depends on it; torch checks the step order at the first scheduler
    step): stepping 400k times would cost ~10 s per recipe.
    """
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max, eta_min=eta_min)
    group = optimizer.param_groups[0]
    lrs = np.empty(total_iter)  # (total_iter,) float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's "lr_scheduler.step() before optimizer.step()"
        for current_iter in range(1, total_iter + 1):
            if current_iter > 1:
                scheduler.step()
            if current_iter < warmup_iter:
                group["lr"] = group["initial_lr"] / warmup_iter * current_iter
            lrs[current_iter - 1] = group["lr"]
            if current_iter == 1:
                param.grad = torch.ones(1)
                optimizer.step()  # the lr this step used is the one recorded
                assert param.item() == pytest.approx(-lrs[0], rel=1e-6)
    return lrs


def compare(name: str, official: np.ndarray) -> None:
    ours = np.array([lr_at(RECIPES[name], step) for step in range(len(official))])
    rel = np.abs(ours - official) / official
    bad = np.flatnonzero(rel > 1e-6)
    assert bad.size == 0, (
        f"{name}: lr_at differs from the official loop at {bad.size} of {official.size} steps; first at step "
        f"{bad[0]}: lr_at {ours[bad[0]]:.9e}, official {official[bad[0]]:.9e} (max relative difference "
        f"{rel.max():.3e} at step {int(rel.argmax())})")


@pytest.mark.parametrize("name", sorted(OFFICIAL_YAML))
def test_recipe_matches_official_yaml(name):
    lr, t_max, eta_min, total_iter, warmup_iter = OFFICIAL_YAML[name]
    r = RECIPES[name]
    assert (r.lr, r.total_iters, r.eta_min) == (lr, total_iter, eta_min)
    assert t_max == total_iter  # the cosine reaches eta_min exactly at the end on every official config
    assert r.warmup_iters == max(warmup_iter, 0)


@pytest.mark.parametrize("name", sorted(OFFICIAL_YAML))
def test_lr_at_equals_official_loop_every_step(name):
    official = official_lrs(*OFFICIAL_YAML[name])
    # the simulation itself: starts at lr (or the first warm-up value) and ends one step short of eta_min
    lr, t_max, eta_min, _, warmup_iter = OFFICIAL_YAML[name]
    assert official[0] == pytest.approx(lr / warmup_iter if warmup_iter > 1 else lr, rel=1e-12)
    assert eta_min < official[-1] < eta_min + 1e-9
    compare(name, official)


@pytest.mark.parametrize("name", sorted(n for n in RECIPES if n.endswith("-proxy")))
def test_lr_at_equals_official_loop_for_proxies(name):
    """Proxies keep the official schedule's kind, so the same loop (their warm-up included) must hold."""
    r = RECIPES[name]
    official = official_lrs(r.lr, r.total_iters, r.eta_min, r.total_iters, r.warmup_iters or -1)
    compare(name, official)


def test_warm_up_anchors_the_recursive_cosine():
    """torch's recursion carries the warm-up's last value into the cosine: no jump back to the closed form."""
    lr, t_max, eta_min, total, warmup = 1.0, 100, 0.0, 100, 10
    official = official_lrs(lr, t_max, eta_min, total, warmup)
    closed = eta_min + (lr - eta_min) * 0.5 * (1 + np.cos(np.pi * np.arange(total) / t_max))
    assert official[warmup - 2] == pytest.approx(lr * (warmup - 1) / warmup)  # last warm-up step (iter 9)
    assert abs(official[warmup - 1] / closed[warmup - 1] - 1) > 1e-3  # iter 10: not the closed form
