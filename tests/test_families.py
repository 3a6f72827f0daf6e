"""Every ablation family names its reference, the reference builds the base network, and no two variants of a
family build the same network (same module tree, same initial weights, same output)."""

from __future__ import annotations

import itertools

import pytest
import torch

from ablations import FAMILIES
from hinet.models import build_network
from hinet.recipes import recipe
from hinet.tasks import TASKS


def _proxy_network(fam, cfg):
    """The network the default grid trains for ``cfg`` (the proxy recipe's scaled-down config)."""
    return recipe(f"{TASKS[fam.TASK].dataset}-proxy").network(cfg)


def _output(cfg) -> torch.Tensor:
    model = build_network(cfg).train()  # batch statistics: batch norm differs from no norm in train mode
    model.reset_parameters(0)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # sides: multiples of 8 (MPRNet)
    with torch.no_grad():
        return model(x)[-1]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_names_a_reference_that_builds_the_base(name):
    fam = FAMILIES[name]
    if hasattr(fam, "evaluations"):  # a family of test-time treatments of one network
        labels = [e.split("=", 1)[0] for e in fam.evaluations(64)]
        assert fam.REFERENCE in labels and len(set(labels)) == len(labels)
        assert list(fam.VARIANTS.values()) == [fam.BASE]
        return
    assert fam.REFERENCE in fam.VARIANTS
    for net in (lambda cfg: cfg, lambda cfg: _proxy_network(fam, cfg)):  # paper scale, then what the grid trains
        ref, base = build_network(net(fam.VARIANTS[fam.REFERENCE])), build_network(net(fam.BASE))
        assert {k: v.shape for k, v in ref.state_dict().items()} == {k: v.shape for k, v in base.state_dict().items()}
    reference, base = (_proxy_network(fam, c) for c in (fam.VARIANTS[fam.REFERENCE], fam.BASE))
    assert torch.equal(_output(reference), _output(base))


@pytest.mark.parametrize("name", sorted(n for n, f in FAMILIES.items() if len(f.VARIANTS) > 1))
def test_no_two_variants_build_the_same_network(name):
    fam = FAMILIES[name]
    outputs = {v: _output(_proxy_network(fam, cfg)) for v, cfg in fam.VARIANTS.items()}
    for (a, oa), (b, ob) in itertools.combinations(outputs.items(), 2):
        same = oa.shape == ob.shape and torch.allclose(oa, ob, atol=1e-6)
        assert not same, f"{name}: {a} and {b} build the same network at proxy scale"


def test_the_old_duplicates_are_the_same_network():
    """The check above can fail: half instance with ratio 1 is instance, ratio 0 is none (why they were dropped)."""
    from dataclasses import replace

    base = _proxy_network(FAMILIES["normalization"], FAMILIES["normalization"].BASE)
    assert torch.allclose(_output(replace(base, norm_ratio=1.0)), _output(replace(base, norm="instance")), atol=1e-6)
    assert torch.allclose(_output(replace(base, norm_ratio=0.0)), _output(replace(base, norm="none")), atol=1e-6)
