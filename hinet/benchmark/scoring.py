"""Scoring a :class:`~hinet.benchmark.specs.Method` on a benchmark's test sets: loading checkpoints, opening
the real or synthetic sets, choosing protocols, evaluating (one pass per inference mode), averaging set
means, and looking up the published numbers to print beside them.
"""

from __future__ import annotations

import argparse
import pickle
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..checkpoint import load
from ..data import open_test_sets, synthetic_test_sets
from ..errors import UserError
from ..evaluate import PROTOCOLS, Protocol, SetResult, default_protocols, evaluate, with_tlc
from ..models import network, network_to_dict
from ..published import load_published
from ..tasks import slug, synthetic_name
from .specs import DEGRADED_INPUT, Benchmark, Method, Reference, degraded_input


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else is parsed by torch (RuntimeError if invalid)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_method(weights: Sequence[Path], name: str | None, model: str | None = None) -> Method:
    """Load checkpoints (eval mode, CPU) into a :class:`Method`; no weights -> the degraded input. ``model`` names
    the network the weights are for (:func:`hinet.models.network`); absent, each checkpoint says it."""
    if not weights:
        if model is not None:
            raise UserError(f"--model {model}: give the network's --weights (a checkpoint)")
        return Method(name or DEGRADED_INPUT, [degraded_input], [], [])
    config = network(model) if model is not None else None
    models = []
    for path in weights:
        try:
            models.append(load(path, config=config))
        except (pickle.UnpicklingError, EOFError, RuntimeError) as err:  # torch.load on a non-checkpoint file
            raise ValueError(f"{path}: cannot be read as a torch checkpoint: {err}") from err
    stems = [Path(p).stem for p in weights]
    default = stems[0] if len(stems) == 1 else f"ensemble({'+'.join(stems)})"
    return Method(name or default, models, [str(Path(p).resolve()) for p in weights],
                  [network_to_dict(m.cfg) for m in models])


def open_sets(bench: Benchmark, args: argparse.Namespace) -> dict[str, Dataset]:
    """Real test sets below ``--data``, else the synthetic stand-ins (names end in ' (synthetic)')."""
    if args.data is not None:
        return open_test_sets(bench.task, args.data)
    kw = {k: v for k, v in (("size", args.synthetic_size), ("count", args.synthetic_count)) if v is not None}
    return synthetic_test_sets(bench.task, **kw)


def selected_protocols(bench: Benchmark, names: Sequence[str] | None, exact_ssim: bool = False,
                       tlc: tuple[int, int] | None = None) -> list[Protocol]:
    """The protocols to score; ``exact_ssim`` switches RGB 3-D SSIM to the official float32 arithmetic.

    ``tlc=(base_size, train_size)`` turns on the test-time local converter (:mod:`hinet.tlc`) in every
    protocol. Without explicit ``names`` a tiled default protocol is replaced by its full-image
    counterpart first (``deblur/official`` -> ``deblur/full``), as the official HINetLocal test configs
    run whole images without grids; an explicitly named tiled protocol keeps its grid and is labelled so.
    """
    protos = [PROTOCOLS[bench.task][n] for n in names] if names else default_protocols(bench.task)
    if tlc is not None and not names:
        protos = list(dict.fromkeys(PROTOCOLS[bench.task]["full"] if p.tiled else p for p in protos))
    if exact_ssim:
        protos = [replace(p, ssim_arithmetic="reference") if p.ssim == "official" and not p.y_channel else p
                  for p in protos]
    if tlc is not None:
        protos = [with_tlc(p, *tlc) for p in protos]
    return protos


def evaluate_protocols(method: Method, datasets: dict[str, Dataset], protocols: Sequence[Protocol], *,
                       tta: bool, limit: int | None, device: torch.device, batch_size: int, workers: int,
                       progress: bool, save_dir: Path | None, perceptual: bool = False) -> list[SetResult]:
    """:func:`hinet.evaluate.evaluate` once per inference mode; results ordered by (set, protocol) as given.

    With several inference modes the saved prediction folders are ``<method>__tiled256`` /
    ``<method>__full-image`` so that the passes do not overwrite each other.
    """
    groups: dict[tuple, list[Protocol]] = {}
    for p in protocols:
        groups.setdefault(p.mode, []).append(p)
    results: list[SetResult] = []
    for (tiled, tile, tlc), group in groups.items():
        label = slug(method.name)
        if len(groups) > 1:
            label += f"__tiled{tile}" if tiled else "__full-image"
            label += f"__tlc{tlc[0]}-{tlc[1]}" if tlc is not None else ""
        for ds in datasets.values():
            if workers and hasattr(ds, "load"):
                ds.load()  # SIDD: load the .mat arrays once before the workers fork
        results += evaluate(method.models, datasets, group, tta=tta, limit=limit, device=device,
                            batch_size=batch_size, progress=progress, save_dir=save_dir, label=label,
                            workers=workers, perceptual=perceptual)
    set_order = {name: i for i, name in enumerate(datasets)}
    proto_order = {p.name: i for i, p in enumerate(protocols)}
    return sorted(results, key=lambda r: (set_order[r.dataset], proto_order[r.protocol]))


def average_rows(rows: Sequence[SetResult], name: str) -> list[SetResult]:
    """Per protocol, the mean over test sets of the set means (how Table 3's "Average" is formed)."""
    out = []
    for proto in dict.fromkeys(r.protocol for r in rows):
        group = [r for r in rows if r.protocol == proto]
        keys = [k for k in group[0].metrics if all(k in r.metrics for r in group)]
        synthetic = any(r.synthetic for r in group)
        label = synthetic_name(name) if synthetic else name
        means = {k: sum(r.metrics[k] for r in group) / len(group) for k in keys}
        out.append(SetResult(label, proto, group[0].description, sum(r.count for r in group), means, {}, [],
                             synthetic, [], sum(r.total for r in group),
                             derived=f"mean of the {len(group)} set means"))
    return out


def published_references(bench: Benchmark, rows: Sequence[SetResult], extra: Sequence[str] = ()
                         ) -> dict[str, list[Reference]]:
    """test set -> the published numbers of :attr:`Benchmark.references` (real data only), plus the
    ``extra`` methods where results/published has them (e.g. ``HINet-Local`` beside a TLC evaluation).

    Raises ValueError when ``results/published`` lacks a number the benchmark is meant to show.
    """
    published = load_published()
    out: dict[str, list[Reference]] = {}
    for dataset in dict.fromkeys(r.dataset for r in rows):
        refs = []
        for method in (*bench.references.get(dataset, ()), *extra):
            sel = published[(published["dataset"] == dataset) & (published["method"] == method)
                            & published["metric"].isin(["psnr", "ssim"])]
            if sel.empty and method in extra:
                continue
            if sel.empty:
                raise ValueError(f"results/published has no psnr/ssim of {method!r} on {dataset!r}")
            refs.append(Reference(dataset, method, dict(zip(sel["metric"], sel["value"].astype(float))),
                                  "; ".join(dict.fromkeys(sel["source"]))))
        out[dataset] = refs
    return out
