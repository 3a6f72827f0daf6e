"""Evaluation protocols as data, tiled / full-image inference, test-time augmentation and ensembles.

Each published table was scored its own way (megvii-model/HINet ``basicsr/test.py``, ``basicsr/metrics/
psnr_ssim.py`` and the test YAMLs; MPRNet's MATLAB ``evaluate_*.m`` scripts); a :class:`Protocol` records
every choice so that a number always travels with the protocol that produced it:

* denoise/official: HINet's SIDD path: raw float output (no clamp, no rounding) against GT/255, RGB
  PSNR with the official peak heuristic (peak 1 if the output's max <= 1, else 255). No SSIM.
* denoise/clamped: the same with the output clamped to [0, 1] and peak 1, plus the 3-D SSIM.
* deblur/official: 256x256 tiles on the official adaptive-stride grid with overlap averaging, clamp,
  round to uint8, RGB PSNR and 3-D Gaussian SSIM. deblur/full: the same on the whole (padded) image.
* derain/official: tiled like deblur, uint8, Y-channel (BT.601, unrounded) PSNR and 2-D SSIM.
* */matlab: how MPRNet's MATLAB scripts score the same task (full image; Y rounded to uint8 and
  'valid' SSIM for deraining), for comparing with papers that report that way.

Any protocol can also run the network with the Test-time Local Converter (``hinet.tlc``, Chu et al.
ECCV 2022): ``with_tlc(protocol, 384, 256)`` gives e.g. ``deblur/full+tlc384-256``, whose instance norms
take windowed statistics; the name and :meth:`Protocol.describe` say so, so a TLC number is never
mistaken for a plain one. The TLC paper's HINet-Local numbers use ``deblur/full`` + TLC base 384.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from . import metrics
from .data.io import write_image
from .data.patches import dihedral, dihedral_inverse
from .perceptual import lpips_distance, lpips_model
from .tasks import TASKS
from .tlc import to_local

Model = Callable[[torch.Tensor], Sequence[torch.Tensor]]


@dataclass(frozen=True)
class Protocol:
    """How predictions are made and scored.

    Args:
        name: ``<task>/<variant>``, e.g. ``deblur/official``; printed beside every number.
        tiled: official ``grids`` inference on ``tile`` x ``tile`` crops (else the whole image, padded).
        quantize: clamp to [0, 1] and round to 8-bit levels before scoring (the official ``use_image``).
        clamp: clamp to [0, 1] without rounding (implied by ``quantize``).
        y_channel: score BT.601 Y instead of RGB; ``y_round`` rounds Y to uint8 as MATLAB's rgb2ycbcr.
        ssim: ``official`` (3-D Gaussian on RGB / 2-D replicate-border on Y), ``matlab`` ('valid'
            filtering, Wang's SSIM_index) or None (not reported).
        peak: PSNR peak, 1.0, or ``auto`` for the official heuristic.
        ssim_arithmetic: ``fast`` (batched, float32 with centring; within 1.5e-4 of the official values,
            1e-5 except on near-identical images) or ``reference`` (the official float32 Conv3d, RGB only;
            reproduces the official numbers to 1e-7, many times slower). See ``hinet.metrics.ssim``.
        tlc: ``(base_size, train_size)``: run the model(s) converted by ``hinet.tlc.to_local`` (instance norm
            over a window of ``base_size`` input pixels, calibrated at ``train_size``), or None (whole-map
            statistics, the plain network). Make TLC protocols with :func:`with_tlc`. Composes with TTA,
            ensembles and tiling (with 256 tiles and base 384 every window covers its tile: no change).
    """

    name: str
    tiled: bool = False
    tile: int = 256
    quantize: bool = False
    clamp: bool = False
    y_channel: bool = False
    y_round: bool = False
    ssim: str | None = "official"
    peak: float | str = 1.0
    ssim_arithmetic: str = "fast"
    tlc: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.tlc is not None and (
                not isinstance(self.tlc, tuple) or len(self.tlc) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in self.tlc)):
            raise ValueError(f"Protocol {self.name!r}: tlc={self.tlc!r}: expected None or a (base_size, train_size) "
                             "tuple of positive integers")

    @property
    def inference(self) -> tuple:
        """(tiled, tile): how images are cut for the network (kept a pair for existing callers)."""
        return (self.tiled, self.tile)

    @property
    def mode(self) -> tuple:
        """(tiled, tile, tlc): everything that changes the prediction; one :func:`evaluate` call runs one mode."""
        return (self.tiled, self.tile, self.tlc)

    def describe(self) -> str:
        """Short protocol label, e.g. ``deblur/official [tiled256, uint8, RGB, ssim=official]``."""
        parts = [f"tiled{self.tile}" if self.tiled else "full-image",
                 "uint8" if self.quantize else ("float, clamped" if self.clamp else "float, unclamped"),
                 ("Y (rounded)" if self.y_round else "Y") if self.y_channel else "RGB",
                 f"peak={self.peak}", f"ssim={self.ssim}" + ("/reference" if self.ssim_arithmetic == "reference"
                                                                 else "")]
        if self.tlc is not None:
            parts.insert(1, f"TLC base {self.tlc[0]}/train {self.tlc[1]}")
        return f"{self.name} [{', '.join(parts)}]"


_TLC_SUFFIX = re.compile(r"\+tlc\d+-\d+$")


def with_tlc(proto: Protocol, base_size: int | None = 384, train_size: int = 256) -> Protocol:
    """``proto`` run with TLC (``hinet.tlc.to_local(model, base_size, train_size)``), renamed
    ``<name>+tlc<base_size>-<train_size>`` (e.g. ``deblur/full+tlc384-256``); ``base_size=None`` gives the
    plain protocol back (suffix removed). Sizes are positive ints, in input pixels."""
    base_name = _TLC_SUFFIX.sub("", proto.name)
    if base_size is None:
        return replace(proto, name=base_name, tlc=None)
    for field, value in (("base_size", base_size), ("train_size", train_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"with_tlc {field}={value!r}: expected a positive integer (pixels)")
    return replace(proto, name=f"{base_name}+tlc{base_size}-{train_size}", tlc=(base_size, train_size))


def parse_protocol(text: str) -> Protocol:
    """A protocol from its name with optional modifiers: ``<task>/<name>[@<tile>][+tlc<base>-<train>]``,
    e.g. ``deblur/official@64`` (the official grid with 64-pixel tiles) or ``deblur/full+tlc96-64``."""
    m = re.fullmatch(r"(\w+)/(\w+)(?:@(\d+))?(?:\+tlc(\d+)-(\d+))?", text.strip())
    if not m:
        raise ValueError(f"protocol {text!r}: expected <task>/<name>[@<tile>][+tlc<base>-<train>]")
    proto = protocol(m[1], m[2])
    if m[3] is not None:
        if not proto.tiled:
            raise ValueError(f"protocol {text!r}: @<tile> applies to tiled protocols only")
        proto = replace(proto, tile=int(m[3]), name=f"{proto.name}@{int(m[3])}")
    if m[4] is not None:
        proto = with_tlc(proto, int(m[4]), int(m[5]))
    return proto


_TILED = dict(tiled=True, quantize=True)
PROTOCOLS: dict[str, dict[str, Protocol]] = {
    "denoise": {
        "official": Protocol("denoise/official", ssim=None, peak="auto"),
        "clamped": Protocol("denoise/clamped", clamp=True),
        "matlab": Protocol("denoise/matlab", clamp=True),  # MPRNet: clamp, MATLAB psnr/ssim on single
    },
    "deblur": {
        "official": Protocol("deblur/official", **_TILED),
        "full": Protocol("deblur/full", quantize=True),
        "matlab": Protocol("deblur/matlab", quantize=True),  # MATLAB ssim on RGB = the 3-D variant
    },
    "derain": {
        "official": Protocol("derain/official", y_channel=True, **_TILED),
        "full": Protocol("derain/full", quantize=True, y_channel=True),
        "matlab": Protocol("derain/matlab", quantize=True, y_channel=True, y_round=True, ssim="matlab"),
    },
}
# What each benchmark command reports by default: the protocol of the paper's numbers first (the task table).
DEFAULT_PROTOCOLS = {name: t.protocols for name, t in TASKS.items()}


def default_protocols(task: str) -> list[Protocol]:
    """The protocols a task is scored under by default (the paper's first), as :data:`DEFAULT_PROTOCOLS`."""
    if task not in DEFAULT_PROTOCOLS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(DEFAULT_PROTOCOLS)}")
    return [PROTOCOLS[task][name] for name in DEFAULT_PROTOCOLS[task]]


def protocol(task: str, name: str) -> Protocol:
    """Look up ``PROTOCOLS[task][name]`` with an error listing the valid names."""
    if task not in PROTOCOLS or name not in PROTOCOLS[task]:
        valid = sorted(PROTOCOLS.get(task, {}))
        raise ValueError(f"unknown protocol {name!r} for task {task!r}; expected one of {valid}")
    return PROTOCOLS[task][name]


def grid_origins(length: int, tile: int) -> list[int]:
    """Tile offsets along one side, as the official ``grids``: ceil(L/tile) tiles at an adaptive stride
    ceil((L - tile)/(n - 1)), the last one snapped to the border. 720 -> [0, 232, 464]."""
    if length <= tile:
        return [0]
    n = math.ceil(length / tile)
    stride = math.ceil((length - tile) / (n - 1) - 1e-8)
    starts, pos = [], 0
    while True:
        if pos + tile >= length:
            starts.append(length - tile)
            return starts
        starts.append(pos)
        pos += stride


def _final(model: Model, x: torch.Tensor) -> torch.Tensor:
    return model(x)[-1]


def predict_tiled(model: Model, image: torch.Tensor, tile: int, batch: int = 16) -> torch.Tensor:
    """Official grid inference on (1, C, H, W): overlapping tiles, predictions averaged where they overlap.
    Sides shorter than ``tile`` are taken whole. Overlaps are summed in float64, so averaging k equal
    predictions returns them exactly; the result has the prediction's dtype."""
    _, c, h, w = image.shape
    th, tw = min(tile, h), min(tile, w)
    boxes = [(i, j) for i in grid_origins(h, th) for j in grid_origins(w, tw)]
    out = image.new_zeros(1, c, h, w, dtype=torch.float64)
    count = image.new_zeros(1, 1, h, w, dtype=torch.float64)
    dtype = image.dtype
    for start in range(0, len(boxes), batch):
        chunk = boxes[start:start + batch]
        tiles = torch.cat([image[..., i:i + th, j:j + tw] for i, j in chunk])  # (n, C, th, tw)
        preds = _final(model, tiles)
        dtype = preds.dtype
        for (i, j), pred in zip(chunk, preds):
            out[..., i:i + th, j:j + tw] += pred
            count[..., i:i + th, j:j + tw] += 1
    return (out / count).to(dtype)


def predict(models: Sequence[Model], images: torch.Tensor, *, tiled: bool = False, tile: int = 256,
            tta: bool = False) -> torch.Tensor:
    """Final-stage prediction for a batch (N, C, H, W) of RGB [0, 1] images, unclamped.

    ``tta`` averages the 8 dihedral transforms (each inverted back); several ``models`` are an
    ensemble whose predictions are averaged (summed in float64, so that averaging equal predictions is
    exact; returned in the prediction's dtype). Tiled inference runs image by image.
    """
    transforms = range(8) if tta else (0,)
    total, dtype = None, images.dtype
    for model in models:
        for k in transforms:
            x = dihedral(images, k)
            if tiled:
                y = torch.cat([predict_tiled(model, x[n:n + 1], tile) for n in range(x.shape[0])])
            else:
                y = _final(model, x)
            y = dihedral_inverse(y, k)
            dtype = y.dtype
            total = y.double() if total is None else total + y
    return (total / (len(models) * len(transforms))).to(dtype)


def score(pred: torch.Tensor, target: torch.Tensor, proto: Protocol) -> dict[str, torch.Tensor]:
    """Per-image metrics (N,) of a prediction under a protocol; inputs RGB NCHW, target in [0, 1].

    The target must lie in [0, 1] (checked before quantizing, which would clamp a 0..255 float image to white);
    pred is clamped by the protocol, or scored unclamped by the official SIDD path (``peak="auto"``).
    """
    metrics.require_unit_range("target", target)
    if proto.quantize:
        pred, target = metrics.quantize(pred), metrics.quantize(target)
    elif proto.clamp:
        pred = pred.clamp(0, 1)
    y = dict(y_channel=proto.y_channel, round_y=proto.y_round)
    out = {"psnr": metrics.psnr(pred, target, peak=proto.peak, auto_scale=255.0 if proto.quantize else 1.0, **y)}
    if proto.ssim is not None:
        out["ssim"] = metrics.ssim(pred, target, variant=proto.ssim, arithmetic=proto.ssim_arithmetic, **y)
    return out


@dataclass
class SetResult:
    """Mean metrics of one test set under one protocol, with the per-image values: the one result row of the suite
    (the trainer's validations and the benchmark commands' tables both report these).

    ``names[i]`` and ``scenes[i]`` are the item name and scene of the image scored in ``per_image[metric][i]``;
    the scene is the dataset's ``scene(index)`` (images of one scene share content), the name itself for a
    dataset without one. ``count`` images were scored of the set's ``total`` (fewer with a limit). An aggregate
    row (e.g. Rain13k's Average) has no per-image values and says in ``derived`` how it was formed.
    """

    dataset: str
    protocol: str
    description: str
    count: int
    metrics: dict[str, float]
    per_image: dict[str, list[float]]
    names: list[str]
    synthetic: bool
    scenes: list[str]
    total: int
    derived: str | None = None

    def summary(self) -> dict:
        out = asdict(self)
        del out["per_image"], out["names"], out["scenes"]
        return out


def _safe(name: str) -> str:
    return name.replace("/", "__").replace("\\", "__")


def evaluate(models: Model | Sequence[Model], datasets: dict[str, Dataset], protocols: Iterable[Protocol], *,
             tta: bool = False, limit: int | None = None, device: str | torch.device = "cpu",
             batch_size: int = 1, progress: bool = True, save_dir: str | Path | None = None,
             label: str = "output", workers: int = 0, perceptual: bool = False,
             save_limit: int | None = None) -> list[SetResult]:
    """Run every dataset through the model(s) once and score it under each protocol.

    All protocols must share one inference mode (:attr:`Protocol.mode`: tiled or not, tile size, TLC
    setting). With TLC on, each model is replaced by a converted copy (``hinet.tlc.to_local``; the models
    passed in are not changed; they must be ``nn.Module`` or ``hinet.fast.InferenceRunner``, else a
    ValueError). ``limit`` takes the first N images of
    each set. ``save_dir`` writes ``<save_dir>/{input,target,<label>}/<set>__<name>.png`` (clamped,
    8-bit) for side-by-side viewing, for the first ``save_limit`` images of the first set only when
    ``save_limit`` is given (all images of every set otherwise). ``perceptual`` adds LPIPS (AlexNet,
    ``hinet.perceptual``) of the clamped prediction to every protocol's metrics (lower is better).
    """
    models = [models] if callable(models) and not isinstance(models, Sequence) else list(models)
    protocols = list(protocols)
    if not protocols:
        raise ValueError("evaluate: no protocol given")
    if len({p.mode for p in protocols}) != 1:
        raise ValueError(f"protocols {[p.name for p in protocols]} use different inference modes "
                         f"(tiled, tile, tlc) {[p.mode for p in protocols]}; evaluate apart")
    tiled, tile, tlc = protocols[0].mode
    lpips_net = None
    if perceptual:
        lpips_net = lpips_model(device)
    for m in models:
        if isinstance(m, torch.nn.Module):
            m.eval().to(device)
    if tlc is not None:
        models = [to_local(m, *tlc) for m in models]
    results = []
    for set_name, dataset in datasets.items():
        if limit is not None:
            dataset = Subset(dataset, range(min(limit, len(dataset))))
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                            collate_fn=lambda items: items)
        per: dict[str, dict[str, list[float]]] = {p.name: {} for p in protocols}
        names: list[str] = []
        with torch.inference_mode():
            for items in tqdm(loader, desc=set_name, disable=not progress, leave=False, unit="batch"):
                if any(c is None for _, c, _ in items):
                    raise ValueError(f"{set_name}: has no ground truth; cannot be scored")
                sizes = {tuple(d.shape) for d, _, _ in items}
                groups = [items] if len(sizes) == 1 else [[it] for it in items]
                for group in groups:
                    degraded = torch.stack([d for d, _, _ in group]).to(device)
                    clean = torch.stack([c for _, c, _ in group]).to(device)
                    pred = predict(models, degraded, tiled=tiled, tile=tile, tta=tta).float()
                    for p in protocols:
                        for key, values in score(pred, clean, p).items():
                            per[p.name].setdefault(key, []).extend(values.double().cpu().tolist())
                    if lpips_net is not None:
                        distances = lpips_distance(pred.clamp(0, 1), clean, lpips_net).double().cpu().tolist()
                        for p in protocols:
                            per[p.name].setdefault("lpips", []).extend(distances)
                    names.extend(n for _, _, n in group)
                    if save_dir is not None:
                        first = set_name == next(iter(datasets))
                        for k, ((d, c, n), y) in enumerate(zip(group, pred.cpu())):
                            if save_limit is not None and (not first or len(names) - len(group) + k >= save_limit):
                                continue
                            stem = f"{_safe(set_name)}__{_safe(n)}.png"
                            for folder, img in (("input", d), ("target", c), (label, y)):
                                (Path(save_dir) / folder).mkdir(parents=True, exist_ok=True)  # write_image does not
                                write_image(Path(save_dir) / folder / stem, img.clamp(0, 1))
        synthetic = bool(getattr(datasets[set_name], "synthetic", False))
        scene = getattr(datasets[set_name], "scene", None)  # items are read in index order 0, 1, ...
        scenes = [scene(i) for i in range(len(names))] if scene is not None else list(names)
        for p in protocols:
            means = {k: float(torch.tensor(v, dtype=torch.float64).mean()) for k, v in per[p.name].items()}
            results.append(SetResult(set_name, p.name, p.describe(), len(names), means, per[p.name], names,
                                     synthetic, scenes, len(datasets[set_name])))
    return results
