"""Opt-in fast paths for inference and training steps. The defaults elsewhere never change.

What each switch does and why it can help; how much it helps depends on the machine, so the measured gains
(each with its CPU) are in the README's "Speed" section, and ``nox -s bench`` re-measures. State
:func:`hinet.hardware.describe` with every figure, the reduced-precision ones above all:

* convolutions (oneDNN) take most of the forward, so fp32 eager switches can only remove the rest;
  ``compile`` and a reduced precision also speed up the convolutions themselves.
* ``channels_last``: NHWC activations; oneDNN convolutions skip their NCHW <-> blocked reorders.
* ``fused_norm``: :class:`hinet.blocks.PartialNorm` with ``fused=True``: one scale/shift over all channels
  instead of slice + instance norm + concatenate (no half-size copies); with channels_last it also avoids
  the reference path's layout copies.
* ``inplace_act``: HINet's LeakyReLUs overwrite their input (no input of theirs is used again, and autograd
  accepts it for a positive slope): one activation-sized buffer less each, in training also fewer buffers
  kept for backward.
* ``torch.inference_mode`` in the runner (also what ``hinet.evaluate`` uses, so it is in the baseline too).
* ``compile``: ``torch.compile`` (inductor); for inference with ``freezing`` (constant, pre-packed oneDNN
  weights; pointwise ops fused into the convolutions). Compilation runs once per input shape with an empty
  cache (a C++ compiler is needed), so it pays off only for many images of one shape. Off by default for
  training steps, where it gave nothing over the eager switches at proxy scale.
* ``dtype``: autocast to bfloat16 (CPU with AVX512-BF16/AMX, or CUDA) or float16 (CUDA only); outputs come
  back as float32. Not bit-equal: tests require >= 45 dB PSNR against the fp32 output. bf16 autocast needs
  native bf16 (see :mod:`hinet.hardware`); on other CPUs it is slower than fp32, so ``precision_policy``
  (:func:`hinet.hardware.resolve_precision`) decides: ``"warn"`` (default) runs fp32 there with one
  warning, ``"error"`` refuses, ``"force"`` runs the requested dtype anyway. The effective dtype is
  ``InferenceRunner.dtype`` (None = fp32); records must state that one and :func:`hinet.hardware.describe`.
* Not used, because they gave nothing or cost time: TorchScript freeze/``optimize_for_inference``,
  disabling oneDNN, fused/foreach Adam and foreach clipping, thread changes (torch already runs one
  intra-op thread per core). Process-wide, glibc's allocator returns large freed blocks to the OS, so the
  next allocation page-faults; ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` (or jemalloc) remove
  that for every path alike, so it is left to the user.

The fp32 switches give the same numbers as the eager model up to float rounding (tests: <= 1e-4 max abs).

Images everywhere are NCHW float RGB in [0, 1] (the network's input space); outputs are the list of stage
outputs, each (N, 3, H, W), not clamped, the last one final.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
from torch import nn

from .blocks import PartialNorm
from .errors import UserError
from .hardware import PrecisionUnavailableError, precision_dtype, resolve_precision

__all__ = [
    "FastPathUnavailableError",
    "InferenceRunner",
    "fast_train_setup",
    "optimize_for_inference",
    "set_fused_norm",
    "set_inplace_activations",
]

class FastPathUnavailableError(UserError, RuntimeError):
    """A requested fast path (``compile``, a reduced ``dtype``) cannot run on this platform."""


def set_fused_norm(model: nn.Module, fused: bool = True) -> int:
    """Set ``fused`` on every instance-kind :class:`PartialNorm` of ``model`` (in place).

    Batch-norm PartialNorms have no fused form and are left as they are. Returns how many were switched.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, PartialNorm) and module.kind == "instance":
            module.fused = bool(fused)
            count += 1
    return count


def set_inplace_activations(model: nn.Module, inplace: bool = True) -> int:
    """Set ``inplace`` on every ``nn.LeakyReLU`` of ``model`` (in place); returns how many.

    Safe for HINet, whose activations never take a tensor that is used again; not for arbitrary modules.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, nn.LeakyReLU):
            module.inplace = bool(inplace)
            count += 1
    return count


def _resolve_dtype(dtype: torch.dtype | str | None, device: torch.device,
                   policy: str = "warn") -> torch.dtype | None:
    """The autocast dtype to run (None: fp32) for a requested one, by :func:`hinet.hardware.resolve_precision`."""
    try:
        return precision_dtype(resolve_precision(dtype, device, policy))
    except PrecisionUnavailableError as err:
        raise FastPathUnavailableError(str(err)) from err


def _check_compiler(device: torch.device) -> None:
    """Inductor on CPU builds C++ kernels; fail early and by name when no compiler is on PATH."""
    if device.type != "cpu":
        return
    from torch._inductor import config as inductor_config  # heavy: inductor loads only for compile=True

    candidates = inductor_config.cpp.cxx
    names = [c for c in (candidates if isinstance(candidates, tuple) else (candidates,)) if c]
    if not any(shutil.which(c) for c in names):
        raise FastPathUnavailableError(
            f"compile=True: torch.compile (inductor) on CPU needs a C++ compiler, none of {names} is on PATH; "
            "install one (e.g. g++) or pass compile=False")


def _compile_errors() -> tuple[type[BaseException], ...]:
    from torch._dynamo.exc import BackendCompilerFailed  # heavy: as in _check_compiler
    from torch._inductor.exc import CppCompileError, InductorError  # heavy: as in _check_compiler

    return (BackendCompilerFailed, CppCompileError, InductorError)


class InferenceRunner:
    """Callable ``runner(images) -> list of stage outputs`` (float32, contiguous NCHW) for a prepared model.

    Built by :func:`optimize_for_inference`; drop-in for the model wherever a ``Model`` callable is expected
    (``hinet.evaluate.predict``/``predict_tiled``/``evaluate``). Inputs: (N, C, H, W) float RGB in [0, 1]; they
    are moved to the model's device.
    """

    def __init__(self, model: nn.Module, fn: Callable[[torch.Tensor], Sequence[torch.Tensor]], *,
                 channels_last: bool, dtype: torch.dtype | None, compiled: bool):
        self.model, self._fn = model, fn
        self.channels_last, self.dtype, self.compiled = channels_last, dtype, compiled
        self.device = next(model.parameters()).device

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"expected a float NCHW image batch in [0, 1], got {shape}")
        x = images.to(self.device, torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None else nullcontext()
        with torch.inference_mode(), autocast:
            try:
                outputs = self._fn(x)
            except _compile_errors() as err:
                raise FastPathUnavailableError(
                    f"compile=True: torch.compile failed on this platform ({type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}); pass compile=False") from err
        return [out.float().contiguous() for out in outputs]

    def __repr__(self) -> str:
        return (f"InferenceRunner(channels_last={self.channels_last}, dtype={self.dtype}, compiled={self.compiled}, "
                f"device={self.device})")


def optimize_for_inference(model: nn.Module, *, channels_last: bool = True, fused_norm: bool = True,
                           inplace_act: bool = True, compile: bool = False, dtype: torch.dtype | str | None = None,
                           precision_policy: str = "warn", inplace: bool = False) -> InferenceRunner:
    """Wrap a HINet (or any module returning a list of NCHW tensors) for fast inference.

    Args:
        model: the network, on the device to run on. Copied first unless ``inplace`` (the copy is put in
            eval mode, switched to fused norms and channels_last; the original is untouched).
        channels_last: run with NHWC memory format.
        fused_norm: switch every instance :class:`PartialNorm` to its fused form (same numbers up to rounding).
        inplace_act: in-place LeakyReLUs (:func:`set_inplace_activations`; HINet-safe, exact).
        compile: ``torch.compile`` the model (inductor; on CPU with weight freezing). Compilation happens at
            the first call of each input shape. Raises :class:`FastPathUnavailableError` naming the option
            when no C++ compiler is found (CPU) or when inductor fails.
        dtype: None/``"fp32"`` (default), ``torch.bfloat16``/``"bf16"`` (CPU or CUDA) or
            ``torch.float16``/``"fp16"`` (CUDA only) autocast.
        precision_policy: where ``dtype`` would be slower than fp32 on this device
            (:func:`hinet.hardware.reduced_precision_ok`): ``"warn"`` runs fp32 with one warning, ``"error"``
            raises :class:`FastPathUnavailableError`, ``"force"`` runs ``dtype`` anyway. fp16 on a CPU is
            always refused. The dtype that runs is the runner's ``dtype``.
        inplace: prepare ``model`` itself instead of a copy.

    Returns:
        an :class:`InferenceRunner`; ``runner(images)`` gives the stage outputs as float32 tensors.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"optimize_for_inference expects an nn.Module, got {type(model).__name__}")
    try:
        device = next(model.parameters()).device
    except StopIteration:
        raise ValueError("optimize_for_inference: the model has no parameters") from None
    amp = _resolve_dtype(dtype, device, precision_policy)
    if compile:
        _check_compiler(device)
    net = model if inplace else copy.deepcopy(model)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    if fused_norm:
        set_fused_norm(net, True)
    if inplace_act:
        set_inplace_activations(net, True)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    fn: Callable = net
    if compile:
        # freezing: inference-only graph with constant weights (pre-packed oneDNN convolutions); a CPU win,
        # harmless on CUDA. dynamic=False: one specialised graph per input shape.
        fn = torch.compile(net, dynamic=False, options={"freezing": True})
    return InferenceRunner(net, fn, channels_last=channels_last, dtype=amp, compiled=compile)


# ------------------------------------------------------------------------------------------------- training
def fast_train_setup(model: nn.Module, *, channels_last: bool = True, fused_norm: bool = True,
                     inplace_act: bool = True, compile: bool = False) -> nn.Module:
    """Prepare ``model`` (in place: the optimiser must see its parameters) for fast training steps.

    Switches as in :func:`optimize_for_inference` (fused norm, in-place activations, channels_last; all exact
    up to float rounding, gradients included). Returns the module to call in the step: ``model`` itself, or
    its ``torch.compile`` wrapper (sharing the parameters). The step is :class:`hinet.step.TrainStep` (the
    one ``hinet.train`` runs), built with ``channels_last=`` the same value so that its batches are made
    NHWC too, and with a precision the caller has resolved for the device
    (:func:`hinet.hardware.resolve_precision`).
    """
    device = next(model.parameters()).device
    if fused_norm:
        set_fused_norm(model, True)
    if inplace_act:
        set_inplace_activations(model, True)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        _check_compiler(device)
        return torch.compile(model, dynamic=False)
    return model
