"""Training recipes as code: the official ones (megvii-model/HINet ``options/train/{SIDD,GoPro,Rain13k}/HINet.yml``
with ``basicsr/train.py`` and ``basicsr/models/image_restoration_model.py``) and CPU-sized proxies.

A recipe fixes everything but the network: optimiser, schedule, loss, data, batch and crop, and the
evaluation protocol of its validation. ``proxy(recipe)`` keeps the recipe's kind (loss, betas, warm-up
shape, augmentation) and shrinks iterations, batch, crop, and the network (width / 4, depth - 2), so
that an ablation grid finishes on a laptop CPU. Proxy results are labelled "proxy" everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .config import HINetConfig, field_error, scaled
from .losses import LOSSES
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
    task: str
    preset: str
    loss: str
    loss_weight: float
    eta_min: float
    betas: tuple[float, float]
    seed: int
    val_every: int
    augment: str = "dihedral"
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

    def network(self, cfg: HINetConfig) -> HINetConfig:
        """The network this recipe trains for a given (paper-scale) config: shrunk for proxies."""
        if self.width_divisor == 1 and self.depth_reduction == 0:
            return cfg
        width = max(2, cfg.width // self.width_divisor)
        width += width % 2  # half normalisation needs an even width
        return scaled(cfg, width=width, depth=max(1, cfg.depth - self.depth_reduction))

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


def proxy(recipe: Recipe, **overrides) -> Recipe:
    """CPU-sized version of a paper recipe (same loss, betas, augmentation and schedule shape).

    240 iterations of batch 8 on 64x64 crops, lr 1e-3, width / 4, depth - 2; validation on
    :data:`PROXY_VAL_IMAGES` (128) images per set, :data:`PROXY_VAL_LOOKS` (2) times a run. Chosen by measurement
    (``python -m studies.proxy_power``, results/tables/proxy_power.md; synthetic denoising, the components
    family, 4 seeds x 64 images, per-image clamped PSNR, crossed seed x image variance components), on variance,
    power and cost only, never on which variant wins:

    * images: the paired differences ``variant - full`` vary more between test images (SD 0.56-0.97 dB for
      no_csff, no_hin, single_stage; 0.03 for no_sam) than between seeds (SD 0.06-0.28 dB), so 8 images left the
      image term dominant. With 8 seeds (what 15 minutes buy where a step takes ~140 ms, as on the AVX-512
      machine whose records the study timed) 128 images minimise the largest MDE: 0.37 dB, against 0.40 with
      64 images (9 seeds) and 1.13 with 8 images (10 seeds); the old default (3 seeds x 8 images) had 1.17.
      On the 2-core AVX2 machines developers and CI have, a step takes ~0.35 s and a run ~105 s, so the default
      grid (``ablations/run.py`` DEFAULT_SEEDS) has 3 seeds (MDE ~0.8 dB by the study's variance components);
      128 images stay the better use of validation time there too.
    * two validations instead of four pay for the images; the half-way look keeps the check that the ranking
      has settled (in the pilot the resolvable differences kept their order from step 160-200 of 240 on).
    * 240 iterations kept: a 480-iteration pilot of no_csff - full (the largest MDE at 240; 4 seeds) had a seed
      SD of 0.16 dB (0.28 at 240) and about the same image SD (0.86 vs 0.81), so a 480-iteration grid (4 seeds
      in the budget) would reach 0.34 dB on that comparison against 0.37 at 240: no real gain, and the other
      comparisons were not measured at 480. From step 160 of 240 on the differences keep their final signs,
      except single_stage - full (within +-0.04 dB of zero), which flips at step 200.
    * the target of 0.1 dB for every comparison is out of reach in 15 minutes: the image term alone needs
      about 1000-2000 images, the seed term about 90 seeds (~5 idle 2-core hours; results/tables/proxy_power.md).
    """
    total = overrides.pop("total_iters", 240)
    warmup = round(recipe.warmup_iters / recipe.total_iters * total)
    base = dict(name=proxy_name(recipe.name), total_iters=total, warmup_iters=warmup, batch_size=8, crop=64,
                lr=1e-3, eta_min=recipe.eta_min / recipe.lr * 1e-3, val_every=max(1, total // PROXY_VAL_LOOKS),
                val_limit=PROXY_VAL_IMAGES, log_every=20, proxy=True, width_divisor=4, depth_reduction=2)
    return replace(recipe, **{**base, **overrides})


def proxy_name(paper_name: str) -> str:
    """The name of a paper recipe's proxy: ``sidd`` -> ``sidd-proxy``."""
    return f"{paper_name}-proxy"


def paper_name(recipe_name: str) -> str:
    """The paper recipe a recipe name stands for: ``sidd-proxy`` -> ``sidd``; a paper name is returned as is."""
    return recipe_name.removesuffix("-proxy")


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
    import math

    warmup, total = recipe.warmup_iters, recipe.total_iters
    if step + 1 < warmup:
        return recipe.lr * (step + 1) / warmup
    cosine = 1 + math.cos(math.pi * min(step, total) / total)
    if warmup < 2:  # the official loop has no warm-up step when warmup_iter <= 1
        return recipe.eta_min + (recipe.lr - recipe.eta_min) * cosine / 2
    anchor_lr, anchor = recipe.lr * (warmup - 1) / warmup, warmup - 2
    return recipe.eta_min + (anchor_lr - recipe.eta_min) * cosine / (1 + math.cos(math.pi * anchor / total))
