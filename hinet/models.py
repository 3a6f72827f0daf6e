"""Every network the suite trains, scores and times, behind one interface.

A network is named by its config: :class:`hinet.config.HINetConfig`, :class:`hinet.mprnet.MPRNetConfig`,
:class:`hinet.nafnet.NAFNetConfig`, or :class:`Factory`, a user's own network given as ``package.module:callable``.
:func:`build_network` makes the module; every module it returns takes ``(N, C, H, W)`` images in [0, 1] and returns
the list of stage outputs with the final image last (a factory's bare tensor becomes a one-element list).
:func:`network_to_dict`/:func:`network_from_dict` store a config with its ``arch``; :func:`proxy_network` is each
architecture's rule for a proxy recipe's smaller network.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from dataclasses import dataclass, replace
from typing import Any, Union

import torch
from torch import nn

from .arch import HINet, reset_seeded
from .config import PRESETS as HINET_PRESETS
from .config import HINetConfig, field_error, scaled
from .errors import UserError
from .fields import check_stored
from .mprnet import MPRNET_PRESETS, MPRNet, MPRNetConfig
from .nafnet import NAFNET_PRESETS, NAFNet, NAFNetConfig

_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


class ModelError(UserError, ValueError):
    """A network cannot be built or cannot do what is asked of it (one line naming the network)."""


@dataclass(frozen=True)
class Factory:
    """A user's network: ``factory`` is ``package.module:callable``, an importable callable taking no arguments
    that returns an ``nn.Module`` mapping ``(N, 3, H, W)`` RGB in [0, 1] to a tensor of that shape, or to a list of
    stage outputs with the final image last. Its size is its own: proxy recipes do not shrink it."""

    factory: str

    def __post_init__(self) -> None:
        if not isinstance(self.factory, str) or not _FACTORY.match(self.factory):
            raise field_error(self, "factory", "expected package.module:callable (an importable callable)")

    @property
    def in_channels(self) -> int:
        return 3


NetworkConfig = Union[HINetConfig, MPRNetConfig, NAFNetConfig, Factory]  # noqa: UP007 (used at run time)
ARCHS: dict[str, type] = {"hinet": HINetConfig, "mprnet": MPRNetConfig, "nafnet": NAFNetConfig, "factory": Factory}
#: Every named network: HINet's presets (``sidd-1x``, ...), MPRNet's (``mprnet-sidd``, ...) and NAFNet's.
NETWORKS: dict[str, NetworkConfig] = {**HINET_PRESETS, **MPRNET_PRESETS, **NAFNET_PRESETS}


def arch_of(cfg: NetworkConfig) -> str:
    """``hinet``, ``mprnet``, ``nafnet`` or ``factory``."""
    for name, kind in ARCHS.items():
        if isinstance(cfg, kind):
            return name
    kinds = [k.__name__ for k in ARCHS.values()]
    raise TypeError(f"not a network config: {type(cfg).__name__}; expected one of {kinds}")


def network(name: str) -> NetworkConfig:
    """A named network (:data:`NETWORKS`) or ``package.module:callable``; anything else is one line listing both."""
    if name in NETWORKS:
        return NETWORKS[name]
    if _FACTORY.match(name):
        return Factory(name)
    raise ModelError(f"--model {name!r}: expected a network name ({', '.join(NETWORKS)}) or package.module:callable")


class FactoryNetwork(nn.Module):
    """A user's module with the suite's output convention: the list of stage outputs, final last."""

    def __init__(self, cfg: Factory, module: nn.Module):
        super().__init__()
        self.cfg, self.net = cfg, module

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        out = self.net(image)
        stages = list(out) if isinstance(out, (list, tuple)) else [out]
        if not stages or not all(torch.is_tensor(s) and s.shape == image.shape for s in stages):
            shapes = [tuple(s.shape) if torch.is_tensor(s) else type(s).__name__ for s in stages]
            raise ModelError(f"--model {self.cfg.factory}: returned {shapes} for an input of shape "
                             f"{tuple(image.shape)}; expected a tensor of that shape or a list of them, final last")
        return stages


def _load_factory(cfg: Factory) -> nn.Module:
    module_name, _, attr = cfg.factory.partition(":")
    try:
        make = getattr(importlib.import_module(module_name), attr)
    except ImportError as err:
        raise ModelError(f"--model {cfg.factory}: cannot import {module_name} ({err}); is it on PYTHONPATH?") from None
    except AttributeError:
        raise ModelError(f"--model {cfg.factory}: module {module_name} has no {attr!r}") from None
    module = make()
    if not isinstance(module, nn.Module):
        raise ModelError(f"--model {cfg.factory}: returned {type(module).__name__}; expected a torch.nn.Module")
    return FactoryNetwork(cfg, module)


def build_network(cfg: NetworkConfig) -> nn.Module:
    """The module of ``cfg`` with its default initial weights (see :func:`reset_network`)."""
    if isinstance(cfg, HINetConfig):
        return HINet(cfg)
    if isinstance(cfg, MPRNetConfig):
        return MPRNet(cfg)
    if isinstance(cfg, NAFNetConfig):
        return NAFNet(cfg)
    if isinstance(cfg, Factory):
        return _load_factory(cfg)
    arch_of(cfg)  # raises naming the type
    raise AssertionError


def reset_network(model: nn.Module, seed: int) -> nn.Module:
    """Per-module seeded initial weights (:func:`hinet.arch.reset_seeded`): a module of the same name and shape
    starts alike in every variant; for a user's network too (every sub-module with ``reset_parameters``)."""
    return reset_seeded(model, seed)


def network_to_dict(cfg: NetworkConfig) -> dict[str, Any]:
    """Plain JSON: ``{"arch": ..., <every field>}`` (tuples as lists)."""
    fields = cfg.to_dict() if isinstance(cfg, HINetConfig) else dataclasses.asdict(cfg)
    return {"arch": arch_of(cfg), **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}}


def network_from_dict(data: Any, where: str = "model") -> NetworkConfig:
    """Inverse of :func:`network_to_dict`, every field checked by its declared type; errors name ``where``."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
    arch = data.get("arch")
    if arch not in ARCHS:
        raise ValueError(f"{where}.arch={arch!r}: expected one of {list(ARCHS)}")
    kind = ARCHS[arch]
    body = {k: v for k, v in data.items() if k != "arch"}
    missing = [f.name for f in dataclasses.fields(kind) if f.name not in body]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}; a spec file states every field")
    values = check_stored(kind, body, where)
    try:
        return kind(**values)
    except ValueError as err:  # the config's own validation: "<Config>.<field>=<value>: ..."
        raise ValueError(f"{where}: {err}") from None


def proxy_network(cfg: NetworkConfig, width_divisor: int, depth_reduction: int) -> NetworkConfig:
    """The network a proxy recipe trains: widths divided by ``width_divisor`` (HINet: even, at least 2) and
    ``depth_reduction`` fewer down-samplings, the deepest ones (HINet levels; NAFNet levels with their blocks).
    MPRNet's three-level U-Nets keep their depth (only the widths shrink); a user's network keeps its size."""
    if width_divisor == 1 and depth_reduction == 0 or isinstance(cfg, Factory):
        return cfg
    if isinstance(cfg, HINetConfig):
        width = max(2, cfg.width // width_divisor)
        width += width % 2  # half normalisation needs an even width
        return scaled(cfg, width=width, depth=max(1, cfg.depth - depth_reduction))
    if isinstance(cfg, MPRNetConfig):
        return replace(cfg, n_feat=max(cfg.reduction, cfg.n_feat // width_divisor),
                       scale_unetfeats=cfg.scale_unetfeats // width_divisor,
                       scale_orsnetfeats=cfg.scale_orsnetfeats // width_divisor)
    levels = max(1, len(cfg.enc_blocks) - depth_reduction)
    return replace(cfg, width=max(1, cfg.width // width_divisor), enc_blocks=cfg.enc_blocks[:levels],
                   dec_blocks=cfg.dec_blocks[len(cfg.dec_blocks) - levels:])
