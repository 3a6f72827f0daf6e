"""hinet.evaluate: the official tile grid, tiled/TTA/ensemble inference, protocol scoring and evaluate()."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import scipy.io
import torch
from torch import nn

from hinet import metrics
from hinet.data import SIDDBenchmark, SIDDValidation, read_image, synthetic_test_sets
from hinet.evaluate import PROTOCOLS, evaluate, grid_origins, predict, predict_tiled, score


def identity(x: torch.Tensor) -> list[torch.Tensor]:
    return [x]


def affine(x: torch.Tensor) -> list[torch.Tensor]:
    return [x * 0.5 + 0.1]


def conv1x1(seed: int = 0) -> nn.Module:
    """A pointwise network returning the list of stage outputs, like HINet."""

    class Pointwise(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(3, 3, kernel_size=1)

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [x, self.conv(x)]  # the last entry is the final prediction

    return Pointwise().eval()


# ------------------------------------------------------------------------------------------ tile grid


@pytest.mark.parametrize(("length", "tile", "expected"), [
    (720, 256, [0, 232, 464]),  # official grids(): 3 rows at stride 232
    (1280, 256, [0, 256, 512, 768, 1024]),  # 5 columns at stride 256
    (200, 256, [0]),  # shorter than a tile: taken whole
    (256, 256, [0]),
    (257, 256, [0, 1]),
    (512, 256, [0, 256]),
    (300, 256, [0, 44]),
    (520, 256, [0, 132, 264]),
])
def test_grid_origins_official_examples(length: int, tile: int, expected: list[int]) -> None:
    assert grid_origins(length, tile) == expected


@pytest.mark.parametrize("tile", [16, 64, 256])
def test_grid_origins_cover_every_pixel_with_ceil_count_tiles(tile: int) -> None:
    for length in range(tile + 1, 6 * tile, 7):
        starts = grid_origins(length, tile)
        assert len(starts) == math.ceil(length / tile), length
        assert starts[0] == 0 and starts[-1] == length - tile
        assert all(b > a for a, b in zip(starts, starts[1:]))
        covered = np.zeros(length, dtype=bool)
        for s in starts:
            covered[s:s + tile] = True
        assert covered.all(), length


# ------------------------------------------------------------------------------------------ inference


def test_identity_is_reproduced_exactly_by_tiling_and_tta() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 300, 520)  # 2 x 3 overlapping 256-tiles
    for tiled in (False, True):
        for tta in (False, True):
            y = predict([identity], x, tiled=tiled, tile=256, tta=tta)
            assert y.dtype == x.dtype
            assert torch.equal(y, x), (tiled, tta)
    assert torch.equal(predict([identity], x, tiled=True, tile=100), x)  # up to 3 tiles overlap


def test_overlaps_are_averaged() -> None:
    """Tile k of the batch predicts x + k; each pixel gets the mean k of the tiles that cover it."""
    x = torch.rand(1, 3, 300, 520)

    def by_tile(t: torch.Tensor) -> list[torch.Tensor]:
        return [t + torch.arange(t.shape[0], dtype=t.dtype).view(-1, 1, 1, 1)]

    rows, cols = grid_origins(300, 256), grid_origins(520, 256)
    total, count = np.zeros((300, 520)), np.zeros((300, 520))
    for k, (i, j) in enumerate((i, j) for i in rows for j in cols):
        total[i:i + 256, j:j + 256] += k
        count[i:i + 256, j:j + 256] += 1
    expected = x + torch.from_numpy(total / count).float()
    torch.testing.assert_close(predict_tiled(by_tile, x, 256), expected, rtol=0, atol=1e-6)
    assert count.max() == 4 and count.min() == 1  # the example does exercise overlaps


@pytest.mark.parametrize("model", [affine, conv1x1()])
def test_pointwise_network_tiled_equals_full_and_tta_equals_plain(model) -> None:
    torch.manual_seed(1)
    x = torch.rand(2, 3, 150, 260)  # 2 x 3 overlapping 128-tiles
    with torch.no_grad():
        full = predict([model], x)
        torch.testing.assert_close(full, model(x)[-1], rtol=0, atol=0)
        torch.testing.assert_close(predict([model], x, tiled=True, tile=128), full, rtol=0, atol=1e-6)
        torch.testing.assert_close(predict([model], x, tta=True), full, rtol=0, atol=1e-6)
        torch.testing.assert_close(predict([model], x, tiled=True, tile=128, tta=True), full, rtol=0, atol=1e-6)


def test_ensemble_is_the_mean_of_the_models() -> None:
    x = torch.rand(2, 3, 40, 56)
    conv = conv1x1(seed=3)
    with torch.no_grad():
        expected = (affine(x)[-1] + conv(x)[-1]) / 2
        torch.testing.assert_close(predict([affine, conv], x), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(predict([affine, conv], x, tta=True), expected, rtol=0, atol=1e-6)


# -------------------------------------------------------------------------------------------- scoring

def _direct(p: torch.Tensor, t: torch.Tensor, *, rounded: bool = False, clamped: bool = False, y: bool = False,
            round_y: bool = False, variant: str = "official") -> dict[str, torch.Tensor]:
    """PSNR (peak 1) and SSIM written with hinet.metrics directly: what a protocol's options mean."""
    if rounded:
        p, t = metrics.quantize(p), metrics.quantize(t)
    elif clamped:
        p = p.clamp(0, 1)
    return {"psnr": metrics.psnr(p, t, y_channel=y, round_y=round_y),
            "ssim": metrics.ssim(p, t, y_channel=y, round_y=round_y, variant=variant)}


# What each protocol must compute (the official HINet scoring code and MPRNet's MATLAB scripts).
_EXPECTED = {
    "denoise/official": lambda p, t: {"psnr": metrics.psnr(p, t, peak="auto")},
    "denoise/clamped": lambda p, t: _direct(p, t, clamped=True),
    "denoise/matlab": lambda p, t: _direct(p, t, clamped=True),
    "deblur/official": lambda p, t: _direct(p, t, rounded=True),
    "deblur/full": lambda p, t: _direct(p, t, rounded=True),
    "deblur/matlab": lambda p, t: _direct(p, t, rounded=True),
    "derain/official": lambda p, t: _direct(p, t, rounded=True, y=True),
    "derain/full": lambda p, t: _direct(p, t, rounded=True, y=True),
    "derain/matlab": lambda p, t: _direct(p, t, rounded=True, y=True, round_y=True, variant="matlab"),
}


@pytest.mark.parametrize("name", sorted(_EXPECTED))
def test_score_equals_the_metrics_under_each_protocol(name: str) -> None:
    task, variant = name.split("/")
    proto = PROTOCOLS[task][variant]
    torch.manual_seed(2)
    target = torch.rand(2, 3, 24, 32)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(-0.02, 0.98)  # a few values outside [0, 1]
    got, expected = score(pred, target, proto), _EXPECTED[name](pred, target)
    assert set(got) == set(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-12)
    assert set(PROTOCOLS[task]) == {n.split("/")[1] for n in _EXPECTED if n.startswith(task + "/")}


def test_one_scoring_api_and_the_y_rounding_comes_from_the_protocol_alone() -> None:
    # hinet.metrics once had its own score() whose round_y default (on for matlab SSIM on Y) disagreed
    # with a Protocol's y_round (off unless set): the same pair differed by ~1e-3 SSIM. One API remains.
    assert not hasattr(metrics, "score")
    torch.manual_seed(5)
    target = nn.functional.interpolate(torch.rand(2, 3, 4, 4), size=(32, 32), mode="bilinear")  # smooth, synthetic
    pred = (target + 0.01 * torch.randn_like(target)).clamp(0, 1)
    matlab = PROTOCOLS["derain"]["matlab"]
    assert matlab.y_channel and matlab.y_round and matlab.ssim == "matlab"
    rounded, unrounded = (score(pred, target, replace(matlab, y_round=r))["ssim"] for r in (True, False))
    torch.testing.assert_close(rounded, _direct(pred, target, rounded=True, y=True, round_y=True,
                                                variant="matlab")["ssim"], rtol=0, atol=1e-12)
    assert (rounded - unrounded).abs().min() > 2e-4  # the rounding is applied, and only when asked for
    for protos in PROTOCOLS.values():
        for proto in protos.values():
            assert proto.y_round <= proto.y_channel, proto.name  # Y rounding only where Y is scored


def test_sidd_official_peak_heuristic_adds_48_db_to_a_block_exceeding_one() -> None:
    torch.manual_seed(3)
    target = torch.rand(2, 3, 32, 32) * 0.8 + 0.1
    pred = target + 0.01 * torch.randn_like(target)
    pred[0, 0, 5, 5] = 1.02  # one pixel above 1.0 in block 0 only
    official = score(pred, target, PROTOCOLS["denoise"]["official"])["psnr"]
    clamped = score(pred, target, PROTOCOLS["denoise"]["clamped"])["psnr"]
    peak1 = metrics.psnr(pred, target, peak=1.0, check_range=False)  # the same unclamped output, peak 1
    assert official[0] - peak1[0] == pytest.approx(20 * math.log10(255), abs=1e-9)
    assert 47.0 < official[0] - clamped[0] < 48.2  # clamping the one pixel also lowers the error a little
    assert official[1] == pytest.approx(float(clamped[1]), abs=1e-9)


# ------------------------------------------------------------------------------------------- evaluate


def test_evaluate_scores_like_predict_and_score(tmp_path) -> None:
    sets = synthetic_test_sets("deblur", size=40, count=3)  # dead leaves, then natural photographs
    model = conv1x1(seed=4)
    protos = [PROTOCOLS["deblur"]["full"], PROTOCOLS["deblur"]["matlab"]]
    results = evaluate(model, sets, protos, limit=2, progress=False, batch_size=2)
    assert [(r.dataset, r.protocol) for r in results] == [(s, p.name) for s in sets for p in protos]
    photos = results[-1]  # limit applies to each set; the photographs' crops share their photograph's scene
    assert photos.count == 2 and photos.scenes == ["chelsea", "motorcycle_left"]
    results = results[:2]
    (degraded, clean) = (torch.stack([sets["GoPro (synthetic)"][i][k] for i in range(2)]) for k in (0, 1))
    with torch.no_grad():
        expected = score(model(degraded)[-1], clean, protos[0])
    for r in results:
        assert r.count == 2 and r.synthetic and r.dataset == "GoPro (synthetic)"
        assert r.metrics["psnr"] == pytest.approx(float(expected["psnr"].mean()), abs=1e-9)
        assert r.metrics["ssim"] == pytest.approx(float(expected["ssim"].mean()), abs=1e-9)
        assert r.names == [sets["GoPro (synthetic)"][i][2] for i in range(2)]
        assert r.scenes == [sets["GoPro (synthetic)"].scene(i) for i in range(2)]


def test_evaluate_collects_each_datasets_scenes_and_falls_back_to_the_names(tmp_path) -> None:
    blocks = np.random.default_rng(0).integers(0, 256, (2, 2, 256, 256, 3), dtype=np.uint8)
    for key in ("ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"):
        scipy.io.savemat(tmp_path / f"{key}.mat", {key: blocks})

    class NoScenes(torch.utils.data.Dataset):  # a dataset without .scene(): every image its own scene
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int):
            x = torch.full((3, 8, 8), 0.1 * (i + 1))
            return x, x, f"img{i}"

    sets = {"SIDD": SIDDValidation(tmp_path), "plain": NoScenes()}
    results = evaluate(identity, sets, [PROTOCOLS["denoise"]["clamped"]], limit=3, progress=False)
    assert [r.scenes for r in results] == [["0000", "0000", "0001"], ["img0", "img1"]]
    assert "scenes" not in results[0].summary()


def test_evaluate_rejects_mixed_inference_modes() -> None:
    sets = synthetic_test_sets("deblur", size=32, count=1)
    with pytest.raises(ValueError, match="different inference modes"):
        evaluate(identity, sets, [PROTOCOLS["deblur"]["official"], PROTOCOLS["deblur"]["full"]], progress=False)


def test_evaluate_save_dir_writes_input_target_and_label_pngs(tmp_path) -> None:
    sets = synthetic_test_sets("denoise", size=32, count=2)
    evaluate(affine, sets, [PROTOCOLS["denoise"]["clamped"]], progress=False, save_dir=tmp_path, label="affine")
    ds = sets["SIDD (synthetic)"]
    for i in range(2):
        noisy, clean, name = ds[i]
        stem = f"SIDD (synthetic)__{name}.png"
        for folder, img in (("input", noisy), ("target", clean), ("affine", affine(noisy[None])[0][0])):
            saved = read_image(tmp_path / folder / stem)
            torch.testing.assert_close(saved, metrics.quantize(img.clamp(0, 1)), rtol=0, atol=1e-6)


def test_evaluate_on_a_set_without_ground_truth_raises(tmp_path) -> None:
    blocks = np.random.default_rng(0).integers(0, 256, (1, 1, 256, 256, 3), dtype=np.uint8)
    scipy.io.savemat(tmp_path / "BenchmarkNoisyBlocksSrgb.mat", {"BenchmarkNoisyBlocksSrgb": blocks})
    sets = {"SIDD-benchmark": SIDDBenchmark(tmp_path)}
    with pytest.raises(ValueError, match="no ground truth"):
        evaluate(identity, sets, [PROTOCOLS["denoise"]["official"]], progress=False)


def test_reference_ssim_arithmetic_protocol_is_close_to_fast():
    from dataclasses import replace

    from hinet.evaluate import PROTOCOLS, score

    torch.manual_seed(0)
    target = torch.rand(2, 3, 24, 24)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    fast = score(pred, target, PROTOCOLS["deblur"]["full"])["ssim"]
    exact = score(pred, target, replace(PROTOCOLS["deblur"]["full"], ssim_arithmetic="reference"))["ssim"]
    assert torch.allclose(fast, exact, atol=1e-4) and not torch.equal(fast, exact)
