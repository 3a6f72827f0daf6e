"""Training recipes as code: the official ones (megvii-model/HINet ``options/train/{SIDD,GoPro,Rain13k}/HINet.yml``
with ``basicsr/train.py`` and ``basicsr/models/image_restoration_model.py``) and CPU-sized proxies.

A recipe fixes everything but the network: optimiser, schedule, loss, data, batch and crop, and the
evaluation protocol of its validation. ``proxy(recipe)`` keeps the recipe's kind (loss, betas, warm-up
shape, augmentation) and shrinks iterations, batch, crop, and the network (width / 4, depth - 2), so
that an ablation grid finishes on a laptop CPU. Proxy results are labelled "proxy" everywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from .config import PRESETS, field_error
from .errors import UserError
from .fields import vocabulary
from .losses import LOSSES
from .models import NetworkConfig, proxy_network
from .tasks import TASK_NAMES, TASKS

AUGMENTATIONS = ("dihedral", "sidd", "none")


@dataclass(frozen=True)
class Recipe:
    """One training recipe.

    Args:
        name: recipe name; the paper ones are ``sidd``, ``gopro``, ``rain13k``; proxies end in ``-proxy``.
        task: ``denoise`` / ``deblur`` / ``derain`` (picks datasets and the validation protocol).
        preset: the published network the recipe trains (see ``hinet.config.PRESETS``).
        loss, loss_weight: pixel loss applied to every stage output with equal stage weights.
        lr, eta_min, betas, weight_decay: Adam and cosine annealing (no restarts) to ``eta_min``.
        warmup_iters: linear warm-up (lr * iter / warmup for 1-based iter < warmup_iters; Rain13k: 10000),
            then the cosine continues from the last warm-up lr (see :func:`lr_at`).
        total_iters: optimiser steps.
        batch_size: global batch (all processes and accumulation steps together).
        crop: square training crop side.
        grad_clip: global-norm gradient clipping (official: 0.01 on every config).
        augment: ``dihedral`` (hflip, vflip, transpose each p=0.5, i.e. uniform over the 8 dihedral
            transforms), ``sidd`` (identity with p=0.5, else one of the other 7) or ``none``.
        seed: the official manual_seed.
        val_every: validation period in iterations; val_limit: images per validation set (None = all).
        log_every: period of the loss/lr/throughput log lines.
        proxy: True for scaled-down recipes (their numbers never sit beside the paper's).
        width_divisor, depth_reduction: how a proxy shrinks the network.
    """

    name: str
    task: str = field(metadata=vocabulary(TASK_NAMES))
    preset: str = field(metadata=vocabulary(PRESETS))
    loss: str = field(metadata=vocabulary(LOSSES))
    loss_weight: float
    eta_min: float
    betas: tuple[float, float]
    seed: int
    val_every: int
    augment: str = field(default="dihedral", metadata=vocabulary(AUGMENTATIONS))
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_iters: int = 0
    total_iters: int = 400_000
    batch_size: int = 64
    crop: int = 256
    grad_clip: float = 0.01
    val_limit: int | None = None
    log_every: int = 100
    proxy: bool = False
    width_divisor: int = 1
    depth_reduction: int = 0

    def __post_init__(self) -> None:
        def bad(field: str, message: str) -> ValueError:
            return field_error(self, field, message)

        if self.task not in TASKS:
            raise bad("task", f"expected one of {TASK_NAMES}")
        if self.augment not in AUGMENTATIONS:
            raise bad("augment", f"expected one of {AUGMENTATIONS}")
        if self.loss not in LOSSES:
            raise bad("loss", f"expected one of {tuple(LOSSES)}")
        for name in ("total_iters", "batch_size", "crop", "val_every", "log_every", "width_divisor"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise bad(name, "expected a positive integer")
        # val_limit=0 would score no image: every validation (and the run's final metrics) would be empty
        if self.val_limit is not None and (not isinstance(self.val_limit, int) or isinstance(self.val_limit, bool)
                                           or self.val_limit < 1):
            raise bad("val_limit", "expected None (every image) or a positive number of images per set")
        if not 0 <= self.warmup_iters < self.total_iters:
            raise bad("warmup_iters", "expected 0 <= warmup_iters < total_iters")
        if not self.lr > 0:  # checked before eta_min, so that --recipe-set lr=-1 is blamed on lr
            raise bad("lr", "expected a positive learning rate")
        if not 0 <= self.eta_min <= self.lr:
            raise bad("eta_min", "expected 0 <= eta_min <= lr")
        if self.grad_clip <= 0:
            raise bad("grad_clip", "expected a positive norm")

    @property
    def kind(self) -> str:
        """``proxy`` for scaled-down recipes, else ``paper`` (one of :data:`hinet.tasks.RECIPE_KINDS`)."""
        return "proxy" if self.proxy else "paper"

    def network(self, cfg: NetworkConfig) -> NetworkConfig:
        """The network this recipe trains for a given (paper-scale) one: shrunk for proxies
        (:func:`hinet.models.proxy_network`)."""
        return proxy_network(cfg, self.width_divisor, self.depth_reduction)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out


RECIPES: dict[str, Recipe] = {
    # options/train/SIDD/HINet.yml: L1 loss, betas (0.9, 0.999), 2e-4 -> 1e-6, seed 100, val every 100k
    "sidd": Recipe("sidd", "denoise", "sidd-1x", loss="l1", loss_weight=1.0, eta_min=1e-6,
                   betas=(0.9, 0.999), seed=100, val_every=100_000, augment="sidd"),
    # options/train/GoPro/HINet.yml: PSNR loss 0.5, betas (0.9, 0.99), 2e-4 -> 1e-7, seed 10
    "gopro": Recipe("gopro", "deblur", "gopro", loss="psnr", loss_weight=0.5, eta_min=1e-7,
                    betas=(0.9, 0.99), seed=10, val_every=50_000),
    # options/train/Rain13k/HINet.yml: as GoPro plus a 10k-iteration linear warm-up (active despite
    # the YAML comment), validation every 20k on the five test sets
    "rain13k": Recipe("rain13k", "derain", "rain13k", loss="psnr", loss_weight=0.5, eta_min=1e-7,
                      betas=(0.9, 0.99), seed=10, val_every=20_000, warmup_iters=10_000),
}


PROXY_VAL_IMAGES = 128  # validation images per set of a proxy recipe
PROXY_VAL_LOOKS = 2  # validations per proxy run (half-way and last)


PROXY_ITERS = 240  # optimiser steps of a proxy recipe


def with_iters(r: Recipe, iters: int) -> Recipe:
    """The recipe shortened (or lengthened) to ``iters`` steps with the same schedule shape: the warm-up and the
    validation period keep their share of the run (a proxy keeps its :data:`PROXY_VAL_LOOKS` looks). The one way
    to change a recipe's length: the proxies, ``--iters`` and the tuning trials all use it."""
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise UserError(f"--iters {iters}: expected a positive number of training steps")
    warmup = min(round(r.warmup_iters * iters / r.total_iters), iters - 1)
    return replace(r, total_iters=iters, warmup_iters=warmup, val_every=max(1, r.val_every * iters // r.total_iters))


def proxy(recipe: Recipe) -> Recipe:
    """CPU-sized version of a paper recipe: the same loss, betas, augmentation and schedule shape, over
    :data:`PROXY_ITERS` steps of batch 8 on 64x64 crops at lr 1e-3 (the floor keeps its ratio to the lr), the
    network at width / 4 and depth - 2, validated :data:`PROXY_VAL_LOOKS` times on :data:`PROXY_VAL_IMAGES`
    images per set.

    The sizes were chosen by a measurement of variance, power and cost, never of which variant wins
    (``python -m studies.proxy_power``; its figures are in results/tables/proxy_power.md and the README).
    """
    looks = replace(recipe, val_every=recipe.total_iters // PROXY_VAL_LOOKS)
    scaled_recipe = with_iters(looks, PROXY_ITERS)
    return replace(scaled_recipe, name=proxy_name(recipe.name), batch_size=8, crop=64, lr=1e-3,
                   eta_min=recipe.eta_min / recipe.lr * 1e-3, val_limit=PROXY_VAL_IMAGES, log_every=20, proxy=True,
                   width_divisor=4, depth_reduction=2)


def proxy_name(paper: str) -> str:
    """``sidd`` -> ``sidd-proxy``: the name of a paper recipe's proxy."""
    return f"{paper}-proxy"


def paper_name(name: str) -> str:
    """``sidd-proxy`` -> ``sidd`` (a paper recipe's name is its own)."""
    return name.removesuffix("-proxy")


for _name in list(RECIPES):
    RECIPES[proxy_name(_name)] = proxy(RECIPES[_name])


def recipe(name: str) -> Recipe:
    """Look up a recipe by name; unknown names list the valid ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {sorted(RECIPES)}")
    return RECIPES[name]


def lr_at(recipe: Recipe, step: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based), as the official loop sets it; a pure function.

    The official loop (megvii-model/HINet ``basicsr/train.py`` and ``BaseModel.update_learning_rate``) runs
    ``current_iter = step + 1``: torch's ``CosineAnnealingLR(T_max=total_iters, eta_min)`` steps before every
    optimiser step but the first (its ``last_epoch`` is ``step``), then, while ``current_iter < warmup``,
    the warm-up overwrites the lr with ``lr * current_iter / warmup``. Without warm-up this is the cosine's
    closed form ``eta_min + (lr - eta_min) (1 + cos(pi step / T)) / 2``. With one, torch's recursive
    update ``eta_min + (prev - eta_min) (1 + cos(pi e / T)) / (1 + cos(pi (e - 1) / T))`` continues from
    the last warm-up value ``lr (W - 1) / W`` (at ``e = W - 2``), so the cosine after warm-up is that value's
    curve, not the closed form (Rain13k: 0.144% above it; no jump at the end of the warm-up). Steps past
    ``total_iters`` keep the final value ``eta_min``.
    """
    warmup, total = recipe.warmup_iters, recipe.total_iters
    if step + 1 < warmup:
        return recipe.lr * (step + 1) / warmup
    cosine = 1 + math.cos(math.pi * min(step, total) / total)
    if warmup < 2:  # the official loop has no warm-up step when warmup_iter <= 1
        return recipe.eta_min + (recipe.lr - recipe.eta_min) * cosine / 2
    anchor_lr, anchor = recipe.lr * (warmup - 1) / warmup, warmup - 2
    return recipe.eta_min + (anchor_lr - recipe.eta_min) * cosine / (1 + math.cos(math.pi * anchor / total))
