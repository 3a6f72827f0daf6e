"""Every network through the same training: the registry (hinet.models), run specs of every arch, the methods
family, a user's own network from outside the project (trained at proxy scale, saved, scored), and the claims."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

import hinet
from ablations import FAMILIES
from ablations.run import plan
from hinet.build import build_training
from hinet.models import (
    NETWORKS,
    Factory,
    ModelError,
    build_network,
    network,
    network_from_dict,
    network_to_dict,
    proxy_network,
)
from hinet.recipes import recipe
from hinet.spec import RunSpec
from hinet.tlc import NoInstanceNormError, to_local

ROOT = Path(__file__).resolve().parents[1]

# The worked example of the README: a network defined outside the project, in 30 lines or fewer.
USER_NET = '''
"""A small residual denoiser defined outside the suite: three 3x3 convolutions with ReLUs."""
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


def build() -> nn.Module:
    return TinyNet()


def broken() -> nn.Module:
    return nn.Conv2d(3, 4, 1)  # four channels out: not an image
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / "tinynet.py").write_text(textwrap.dedent(USER_NET))
    monkeypatch.syspath_prepend(str(folder))
    return folder


SMALL = {  # one small network per arch, proxy-sized for the tests
    "hinet": replace(NETWORKS["sidd-1x"], width=4, depth=2),
    "mprnet": replace(NETWORKS["mprnet-sidd"], n_feat=4, scale_unetfeats=2, scale_orsnetfeats=2, num_cab=1),
    "nafnet": replace(NETWORKS["nafnet-sidd-width64"], width=4, middle_blocks=1, enc_blocks=(1, 1), dec_blocks=(1, 1)),
}


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_every_arch_round_trips_through_a_spec_and_trains_a_step(arch):
    r = recipe("sidd-proxy")
    spec = RunSpec(replace(r, batch_size=2, crop=16), SMALL[arch], seed=3)
    stored = json.loads(json.dumps(spec.to_dict()))
    assert stored["model"]["arch"] == arch and RunSpec.from_dict(stored) == spec
    parts = build_training(spec)
    loss = parts.step([(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))])
    assert torch.isfinite(loss)
    out = parts.model(torch.rand(1, 3, 16, 24))
    assert isinstance(out, list) and out[-1].shape == (1, 3, 16, 24)  # final image last, input's shape


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_per_module_seeding_gives_every_arch_the_same_weights_for_the_same_seed(arch):
    r = recipe("sidd-proxy")
    a, b, c = (build_training(RunSpec(r, SMALL[arch], seed=s)).model for s in (1, 1, 2))
    same = [torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values())]
    other = [torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values())
             if x.dtype.is_floating_point and x.numel() > 4]
    assert all(same) and not all(other)


def test_proxy_rules_shrink_each_arch_by_its_own_rule():
    assert proxy_network(NETWORKS["sidd-1x"], 4, 2) == replace(NETWORKS["sidd-1x"], width=16, depth=3)
    m = proxy_network(NETWORKS["mprnet-sidd"], 4, 2)
    assert (m.n_feat, m.scale_unetfeats, m.scale_orsnetfeats, m.num_cab) == (20, 12, 8, 8)  # depth is fixed
    n = proxy_network(NETWORKS["nafnet-sidd-width64"], 4, 2)
    assert (n.width, n.enc_blocks, n.dec_blocks, n.middle_blocks) == (16, (2, 2), (2, 2), 12)  # the deepest go
    assert proxy_network(Factory("a.b:c"), 4, 2) == Factory("a.b:c")  # a user's network keeps its size


@pytest.mark.parametrize("bad, message", [
    ({"arch": "resnet", "width": 4}, r"model\.arch='resnet': expected one of"),
    ({"arch": "mprnet", "n_feat": 4}, r"model: missing field\(s\)"),
    ({**network_to_dict(NETWORKS["mprnet-sidd"]), "n_feat": 0}, r"model: MPRNetConfig\.n_feat=0"),
    ({"arch": "factory", "factory": "not a path"}, r"Factory\.factory='not a path'"),
])
def test_stored_network_errors_name_the_field(bad, message):
    with pytest.raises(ValueError, match=message):
        network_from_dict(bad, "model")


def test_network_names_and_factories_resolve_and_bad_ones_are_one_line(user_module):
    assert network("mprnet-sidd") is NETWORKS["mprnet-sidd"]
    assert network("tinynet:build") == Factory("tinynet:build")
    for name, message in (("resnet50", "expected a network name"), ("tinynet:nothing", "has no 'nothing'"),
                          ("no_such_module:build", "cannot import no_such_module")):
        with pytest.raises(ModelError, match=message) as err:
            build_network(network(name))
        assert "\n" not in str(err.value)
    broken = build_network(Factory("tinynet:broken"))
    with pytest.raises(ModelError, match=r"returned \[\(1, 4, 8, 8\)\] for an input of shape \(1, 3, 8, 8\)"):
        broken(torch.rand(1, 3, 8, 8))


def test_the_fast_switches_are_refused_for_a_users_network(user_module):
    r = recipe("sidd-proxy")
    with pytest.raises(ModelError, match="fused_norm/inplace_act are HINet's fast paths"):
        build_training(RunSpec(r, Factory("tinynet:build"), 0, inplace_act=True))


def test_tlc_needs_instance_normalisation(user_module):
    for cfg in (SMALL["mprnet"], SMALL["nafnet"], Factory("tinynet:build")):
        with pytest.raises(NoInstanceNormError):
            to_local(build_network(cfg))


def test_the_methods_family_plans_every_network_with_hinet_as_reference(tmp_path, user_module):
    fam = FAMILIES["methods"]
    assert fam.REFERENCE == "hinet_1x" and fam.VARIANTS["hinet_1x"] == NETWORKS["sidd-1x"]
    runs = plan("methods", "sidd", "proxy", [0], tmp_path / "runs", tmp_path / "r.jsonl", models=["tinynet:build"])
    specs = {r.spec.variant: r.spec for r in runs}
    assert list(specs) == ["hinet_1x", "hinet_0.5x", "mprnet", "nafnet", "tinynet:build"]
    assert {s.reference for s in specs.values()} == {"hinet_1x"}
    assert len({s.recipe for s in specs.values()}) == 1  # the same recipe for every network
    assert specs["hinet_1x"].fused_norm and not specs["mprnet"].fused_norm and not specs["tinynet:build"].inplace_act
    assert specs["mprnet"].model == proxy_network(NETWORKS["mprnet-sidd"], 4, 2)
    assert runs[-1].run_id == "methods-tinynet-build-sidd-proxy-synthetic-s0"  # a file-name-safe run id
    from hinet.errors import UserError

    with pytest.raises(UserError, match="adds a network to the methods family"):
        plan("components", "sidd", "proxy", [0], tmp_path / "runs", tmp_path / "r.jsonl", models=["tinynet:build"])


def test_a_users_network_trains_at_proxy_scale_and_is_scored(tmp_path, user_module):
    """The README's worked example, as a user types it: train with --model, then score the saved checkpoint."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(user_module), str(ROOT)])}
    run_dir = tmp_path / "run"
    train = subprocess.run(
        [sys.executable, "-m", "hinet.train", "--recipe", "sidd-proxy", "--model", "tinynet:build", "--iters", "4",
         "--recipe-set", "val_limit=2", "--recipe-set", "batch_size=2", "--run-dir", str(run_dir),
         "--no-progress", "--no-tensorboard"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    config = json.loads((run_dir / "config.json").read_text())["spec"]
    assert config["model"] == {"arch": "factory", "factory": "tinynet:build"} and config["variant"] == "tinynet:build"
    records = pd.read_json(run_dir / "records.jsonl", lines=True)
    sizes = dict(zip(records[records["split"] == "model"]["metric"], records[records["split"] == "model"]["value"]))
    assert sizes["params"] == sum(p.numel() for p in build_network(Factory("tinynet:build")).parameters())
    assert sizes["macs"] > 0
    model = hinet.load(run_dir / "model.pth")  # the factory rebuilds the network, our format carries it
    assert model.cfg == Factory("tinynet:build")
    js = tmp_path / "score.json"
    score = subprocess.run(
        [sys.executable, "-m", "benchmarks.sidd", "--weights", str(run_dir / "model.pth"), "--synthetic-size", "32",
         "--synthetic-count", "2", "--no-records", "--json", str(js)], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300)
    assert score.returncode == 0, score.stderr
    summary = json.loads(js.read_text())
    assert summary["method"] == "model" and summary["results"][0]["metrics"]["psnr"] > 0
    # a user's own state_dict (saved from the bare module) is read with --model
    bare = tmp_path / "bare.pth"
    torch.save(build_network(Factory("tinynet:build")).net.state_dict(), bare)
    again = subprocess.run(
        [sys.executable, "-m", "benchmarks.sidd", "--model", "tinynet:build", "--weights", str(bare),
         "--synthetic-size", "32", "--synthetic-count", "2", "--no-records"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr


def test_claims_measure_every_published_claim(tmp_path):
    """benchmarks.claims on small stand-ins of the networks (the real ones take minutes): every claim gets a row,
    MACs fractions are ratios of the counts, speed-ups come with intervals, PSNR gains come from records."""
    from benchmarks.claims import NAFNET, PAIRS, measure, published_claims, write
    from hinet.published import load_published
    from hinet.records import Record

    published = load_published()
    claims = published_claims(published)
    assert {(p.method, q) for _, p, q, _ in claims} >= {("HINet", "speedup"), ("HINet 0.5x", "macs_fraction"),
                                                        ("NAFNet", "macs_fraction"), ("HINet", "psnr_gain_db")}
    small = {p.network: SMALL["hinet"] for p in [*PAIRS.values(), NAFNET]}
    small.update({p.reference_network: SMALL["mprnet"] for p in PAIRS.values()})
    small["nafnet-sidd-width64"], small["sidd-0.5x"] = SMALL["nafnet"], replace(SMALL["hinet"], width=2)
    gain = [Record(run_id=f"e{i}", family="checkpoint_eval", variant=v, dataset="SIDD", split="test",
                   protocol="denoise/official", metric="psnr", value=x, step=None, seed=None, git_commit="abc",
                   git_dirty=False, config_hash="h", device="cpu", torch_version="2", time="2026-12-01T00:00:00+00:00",
                   synthetic=False, recipe="eval") for i, (v, x) in enumerate((("HINet", 39.9), ("MPRNet", 39.7)))]
    records = pd.DataFrame([r.__dict__ for r in gain])
    table = measure(claims, published, size=16, repeats=2, device=torch.device("cpu"), records=records,
                    networks=small)
    macs = table[table["quantity"] == "gmacs"].set_index("claim")["measured"]
    row = table[(table["quantity"] == "macs_fraction") & (table["method"] == "HINet 0.5x")].iloc[0]
    assert row["measured"] == pytest.approx(macs["MACs of sidd-0.5x"] / macs["MACs of mprnet-sidd"])
    speed = table[table["quantity"] == "speedup"]
    assert (speed["measured"] > 0).all() and (speed["measured_low"] <= speed["measured"]).all()
    gains = table[table["quantity"] == "psnr_gain_db"].set_index("claim")["measured"]
    assert gains["abstract: HINet vs MPRNet on SIDD"] == pytest.approx(0.2)  # from the records
    assert pd.isna(gains["README: HINet vs MPRNet on Average"])  # no records: the command is given instead
    assert table["device"].str.contains("capability").all() and table["device"].str.contains("input 1x3x16x16").all()
    csv, md = write(table, tmp_path)
    assert pd.read_csv(csv).columns.tolist()[:8] == ["claim", "method", "reference_method", "task", "quantity",
                                                     "published", "measured", "measured_low"]
    assert "python -m benchmarks.claims" in md.read_text()
