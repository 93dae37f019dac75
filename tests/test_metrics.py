"""PSNR / SSIM against scikit-image, Fréchet distance, KID, statistics files and the FID/KID helper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ganslim.errors import GanslimError
from ganslim.metrics import (
    RunningMean,
    compute_fid_kid,
    extract_features,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    load_statistics,
    mean_psnr_ssim,
    psnr,
    quantize_uint8,
    save_statistics,
    ssim,
)


def image_pairs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(N,3,H,W) float64 pairs in [-1, 1]: noise, and smooth structure with a distorted copy."""
    gen = torch.Generator().manual_seed(0)
    noise_a = torch.rand(2, 3, 32, 40, generator=gen, dtype=torch.float64) * 2 - 1
    noise_b = (noise_a + 0.3 * torch.randn(2, 3, 32, 40, generator=gen, dtype=torch.float64)).clamp(-1, 1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48, dtype=torch.float64),
                            torch.linspace(0, 1, 48, dtype=torch.float64), indexing="ij")
    channels = [torch.sin(6 * xx + 3 * c) * torch.cos(4 * yy) for c in range(3)]
    pattern = torch.stack(channels)[None].repeat(2, 1, 1, 1) * 0.8
    pattern[1] = torch.where(xx > 0.5, pattern[1], -pattern[1])  # a sharp edge
    distorted = 0.7 * pattern + 0.1 + 0.05 * torch.randn(pattern.shape, generator=gen, dtype=torch.float64)
    return {"noise": (noise_a, noise_b), "structure": (pattern, distorted.clamp(-1, 1))}


def skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """skimage's SSIM of [-1, 1] images taken as the same images in [0, 1] (the published convention)."""
    return np.array([
        structural_similarity((x.numpy() + 1) / 2, (y.numpy() + 1) / 2, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=1.0, channel_axis=0)
        for x, y in zip(a, b)
    ])


@pytest.mark.parametrize("case", ["noise", "structure"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_psnr_ssim_match_skimage(case, dtype):
    a, b = image_pairs()[case]
    want_psnr = np.array([peak_signal_noise_ratio(x.numpy(), y.numpy(), data_range=2.0) for x, y in zip(a, b)])
    want_ssim = skimage_ssim(a, b)
    got_psnr = psnr(b.to(dtype), a.to(dtype))
    got_ssim = ssim(b.to(dtype), a.to(dtype))
    assert got_psnr.shape == got_ssim.shape == (2,)
    np.testing.assert_allclose(got_psnr.double().numpy(), want_psnr, atol=1e-4)
    # float64 agrees to rounding; float32 to well within 1e-3.
    np.testing.assert_allclose(got_ssim.double().numpy(), want_ssim, atol=1e-10 if dtype == torch.float64 else 1e-4)
    assert 0.05 < want_ssim.min() and want_ssim.max() < 0.99  # the cases are neither trivial nor unrelated


def test_ssim_options_match_skimage():
    a, b = image_pairs()["structure"]
    a, b = (a + 1) * 127.5, (b + 1) * 127.5  # [0, 255]
    # skimage sizes the window from sigma (radius int(3.5 sigma + 0.5)): 9 taps for sigma 1.
    want = [structural_similarity(x.numpy(), y.numpy(), gaussian_weights=True, sigma=1.0,
                                  use_sample_covariance=False, data_range=255.0, channel_axis=0)
            for x, y in zip(a, b)]
    np.testing.assert_allclose(ssim(a, b, value_range=(0, 255), window=9, sigma=1.0).numpy(), want, atol=1e-10)


def test_ssim_is_the_same_in_any_value_range():
    """[-1, 1] images score as the same images in [0, 1] and [0, 255]; a bad range is refused."""
    a, b = image_pairs()["structure"]
    on_signed = ssim(a, b)
    torch.testing.assert_close(ssim((a + 1) / 2, (b + 1) / 2, value_range=(0, 1)), on_signed)
    torch.testing.assert_close(ssim((a + 1) * 127.5, (b + 1) * 127.5, value_range=(0, 255)), on_signed)
    # Taking the signed values as if they started at 0 (data range 2) gives a different, non-standard score.
    assert (ssim(a, b, value_range=(0, 2)) - on_signed).abs().max() > 1e-3
    with pytest.raises(GanslimError, match="value_range"):
        ssim(a, b, value_range=(1, 1))


def test_identical_and_hand_cases():
    x = image_pairs()["structure"][0].float()
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    # A constant offset of 0.2 on a range of 2: MSE 0.04 -> 10 log10(4 / 0.04) = 20 dB.
    torch.testing.assert_close(psnr(x + 0.2, x), torch.full((2,), 20.0))
    # Flat images: SSIM reduces to the luminance term (2 m1 m2 + C1) / (m1² + m2² + C1) of the [0, 1]
    # intensities 0.75 and 0.25, with C1 = (0.01 * 1)² (float64: E[x²] - mu² of a flat float32 image is off
    # by rounding, and C2 is small).
    flat_a = torch.full((1, 1, 16, 16), 0.5, dtype=torch.float64)
    c1 = 0.01**2
    want = torch.tensor([(2 * 0.75 * 0.25 + c1) / (0.75**2 + 0.25**2 + c1)], dtype=torch.float64)
    torch.testing.assert_close(ssim(flat_a, -flat_a), want)
    # Zero-mean structure against its negation: luminance term 1, structure term (-2 s² + C2) / (2 s² + C2).
    stripes = torch.tensor([0.5, -0.5]).repeat(16)[None, None, None].expand(1, 1, 32, 32).contiguous()
    got = ssim(-stripes, stripes)
    assert -1 < got.item() < -0.9


def test_ssim_is_differentiable():
    a, b = image_pairs()["noise"]
    pred = b.float().clone().requires_grad_(True)
    (1 - ssim(pred, a.float())).mean().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_image_metric_errors():
    with pytest.raises(GanslimError, match="same shape"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(GanslimError, match="smaller than the 11-pixel window"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(GanslimError, match="odd"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), window=4)


def test_running_mean():
    mean = RunningMean()
    assert math.isnan(mean.compute())
    mean.update(torch.tensor([1.0, 2.0, 3.0]))
    mean.update(6.0)
    assert mean.compute() == 3.0 and mean.count == 4
    mean.reset()
    mean.update(torch.tensor([5.0]))
    assert mean.compute() == 5.0


# ---------------------------------------------------------------- Fréchet distance and statistics


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    var1, var2 = rng.uniform(0.1, 2, size=8), rng.uniform(0.1, 2, size=8)
    want = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    got = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(want, rel=1e-10)
    assert frechet_distance(mu1, np.diag(var1), mu1, np.diag(var1)) == pytest.approx(0, abs=1e-10)


def test_frechet_distance_random_against_eigenvalues():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 16))
    b = rng.normal(size=(150, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    # Tr sqrt(S1 S2) is the sum of square roots of the (real, non-negative) eigenvalues of S1 S2.
    tr_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)))
    want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-8)
    # ... and the symmetric form Tr sqrt(sqrt(S1) S2 sqrt(S1)).
    r1 = linalg.sqrtm(s1).real
    sym = np.trace(linalg.sqrtm(r1 @ s2 @ r1).real)
    assert tr_sqrt == pytest.approx(sym, rel=1e-8)


def test_frechet_distance_singular_covariances():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(10, 32)) + 0.5  # rank 9 covariances of size 32
    got = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert np.isfinite(got) and got > 0
    with pytest.raises(GanslimError, match="statistics do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_feature_statistics():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 4))
    mu, sigma = feature_statistics(torch.from_numpy(x).float())
    np.testing.assert_allclose(mu, x.mean(0), atol=1e-6)
    np.testing.assert_allclose(sigma, (x - x.mean(0)).T @ (x - x.mean(0)) / 49, atol=1e-5)
    assert mu.dtype == sigma.dtype == np.float64
    with pytest.raises(GanslimError, match="N >= 2"):
        feature_statistics(np.zeros((1, 4)))


def test_statistics_npz_round_trip_and_format(tmp_path):
    rng = np.random.default_rng(4)
    mu, sigma = rng.normal(size=6), np.cov(rng.normal(size=(20, 6)), rowvar=False)
    path = save_statistics(tmp_path / "sub" / "real_stats.npz", mu, sigma)
    assert path == tmp_path / "sub" / "real_stats.npz"
    assert [p.name for p in path.parent.iterdir()] == ["real_stats.npz"]  # no temporary left behind
    with np.load(path) as raw:  # the plain pytorch-fid / GAN Compression format
        assert sorted(raw.files) == ["mu", "sigma"]
        np.testing.assert_array_equal(raw["sigma"], sigma)
    mu2, sigma2 = load_statistics(path)
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)

    # A file written by other tools with np.savez loads too.
    other = tmp_path / "other.npz"
    np.savez(other, mu=mu.astype(np.float32), sigma=sigma.astype(np.float32), extra=np.zeros(1))
    assert load_statistics(other)[0].dtype == np.float32


def test_statistics_errors(tmp_path):
    with pytest.raises(GanslimError, match="not found"):
        load_statistics(tmp_path / "absent.npz")
    np.savez(tmp_path / "nosigma.npz", mu=np.zeros(3), cov=np.eye(3))
    with pytest.raises(GanslimError, match=r"lacks key\(s\) \['sigma'\]") as err:
        load_statistics(tmp_path / "nosigma.npz")
    assert "\n" not in str(err.value)
    np.savez(tmp_path / "shapes.npz", mu=np.zeros(3), sigma=np.eye(4))
    with pytest.raises(GanslimError, match="expected"):
        load_statistics(tmp_path / "shapes.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(GanslimError, match="single array"):
        load_statistics(tmp_path / "single.npy")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(GanslimError, match="cannot read"):
        load_statistics(tmp_path / "text.npz")
    with pytest.raises(GanslimError):
        save_statistics(tmp_path / "bad.npz", np.zeros(3), np.eye(2))


# ---------------------------------------------------------------- KID


def direct_mmd2(x: np.ndarray, y: np.ndarray, degree=3, gamma=None, coef0=1.0) -> float:
    """Unbiased MMD² written out with loops over pairs."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma

    def k(a, b):
        return (gamma * float(a @ b) + coef0) ** degree

    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_kid_matches_direct_computation():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(25, 5)) + 0.4
    # subset_size above both counts is clipped: every subset is the whole set, so the std is 0.
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=1000)
    assert mean == pytest.approx(direct_mmd2(x, y), rel=1e-10)
    assert std == pytest.approx(0, abs=1e-12)
    mean, _ = kernel_inception_distance(torch.from_numpy(x), torch.from_numpy(y), subsets=1, subset_size=1000,
                                        degree=2, gamma=0.3, coef0=0.5)
    assert mean == pytest.approx(direct_mmd2(x, y, degree=2, gamma=0.3, coef0=0.5), rel=1e-10)


def test_kid_subsets_are_subsets_of_the_data():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(40, 4)) + 1.0
    mean, std = kernel_inception_distance(x, y, subsets=20, subset_size=10, seed=1)
    # Every subset estimate is the direct MMD² of some 10 + 10 rows: check by redrawing them.
    draw = np.random.default_rng(1)
    estimates = []
    for _ in range(20):
        xi = draw.choice(40, 10, replace=False)
        yi = draw.choice(40, 10, replace=False)
        estimates.append(direct_mmd2(x[xi], y[yi]))
    assert mean == pytest.approx(np.mean(estimates), rel=1e-10)
    assert std == pytest.approx(np.std(estimates), rel=1e-8)
    assert std > 0
    assert kernel_inception_distance(x, y, subsets=20, subset_size=10, seed=1) == (mean, std)
    same, _ = kernel_inception_distance(x, rng.normal(size=(40, 4)), subsets=20, subset_size=10)
    assert abs(same) < mean


def test_kid_errors():
    with pytest.raises(GanslimError, match="at least 2 samples"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(GanslimError, match="of one D"):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))


# ---------------------------------------------------------------- quantisation and the FID/KID helper


def test_quantize_uint8_rounds_and_inverts_loading():
    levels = torch.arange(256, dtype=torch.uint8)
    loaded = levels.float() / 127.5 - 1  # how images are usually brought to [-1, 1]
    assert torch.equal(quantize_uint8(loaded), levels)
    x = torch.tensor([-2.0, -1.0, -0.999, 0.0, 0.999, 1.0, 3.0])
    # (x + 1) / 2 * 255 = [.., 0, 0.1275, 127.5, 254.87, 255, ..] -> rounded, clamped.
    assert quantize_uint8(x).tolist() == [0, 0, 0, 128, 255, 255, 255]
    assert quantize_uint8(x).dtype == torch.uint8


class PixelStats(torch.nn.Module):
    """A stand-in extractor: per-channel mean and std of uint8 images -> (N, 6)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, images):
        assert images.dtype == torch.uint8
        self.calls.append(images.shape[0])
        x = images.double().flatten(2) / 255
        return torch.cat([x.mean(2), x.std(2)], dim=1)


def batches(seed, n_batches, shift=0.0, size=8):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.rand(4, 3, size, size, generator=gen) * 1.6 - 0.8 + shift).clamp(-1, 1) for _ in range(n_batches)]


def test_compute_fid_kid_forms_of_real_data(tmp_path):
    fake = batches(0, 5)
    real = batches(1, 6, shift=0.1)
    extractor = PixelStats()
    real_feats = extract_features(real, extractor)
    fake_feats = extract_features(fake, extractor)
    assert real_feats.shape == (24, 6) and real_feats.dtype == np.float32

    want_fid = frechet_distance(*feature_statistics(fake_feats), *feature_statistics(real_feats))
    want_kid = kernel_inception_distance(fake_feats, real_feats, subsets=10, subset_size=16, seed=3)

    from_batches = compute_fid_kid(iter(fake), iter(real), extractor, kid_subsets=10, kid_subset_size=16, seed=3)
    assert from_batches.fid == pytest.approx(want_fid, rel=1e-9) and from_batches.fid > 0
    assert (from_batches.kid, from_batches.kid_std) == pytest.approx(want_kid, rel=1e-9)
    assert (from_batches.num_fake, from_batches.num_real) == (20, 24)

    from_features = compute_fid_kid(fake, real_feats, extractor, kid_subsets=10, kid_subset_size=16, seed=3)
    assert from_features == from_batches

    save_statistics(tmp_path / "real.npz", *feature_statistics(real_feats))
    from_file = compute_fid_kid(fake, tmp_path / "real.npz", extractor)
    from_tuple = compute_fid_kid(fake, feature_statistics(real_feats), extractor)
    for result in (from_file, from_tuple):
        assert result.fid == pytest.approx(want_fid, rel=1e-9)
        assert result.kid is None and result.kid_std is None and result.num_real is None

    no_kid = compute_fid_kid(fake, real, extractor, kid=False)
    assert no_kid.kid is None and no_kid.fid == pytest.approx(want_fid, rel=1e-9)

    same = compute_fid_kid(fake, fake, extractor, kid_subsets=5, kid_subset_size=8)
    assert same.fid == pytest.approx(0, abs=1e-9) and same.fid < from_batches.fid


def test_extract_features_quantises_and_caps():
    extractor = PixelStats()
    images = batches(2, 3)
    feats = extract_features(iter(images), extractor, max_images=10)
    assert feats.shape == (10, 6) and extractor.calls == [4, 4, 2]
    # Features see the rounded uint8 images, so [-1, 1] images loaded from uint8 are unchanged by the round trip.
    direct = extractor(quantize_uint8(torch.cat(images)[:10])).numpy()
    np.testing.assert_allclose(feats, direct.astype(np.float32))
    with pytest.raises(GanslimError, match="no images"):
        extract_features([], extractor)


def test_metrics_package_imports_only_allowed_modules():
    import ast
    from pathlib import Path

    import ganslim.metrics

    allowed = {"torch", "numpy", "scipy", "ganslim.errors", "ganslim.atomic", "ganslim.weights", "ganslim.metrics",
               "__future__", "math", "os", "pathlib", "dataclasses", "typing", "zipfile"}
    imported = set()
    for source in Path(ganslim.metrics.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module)
    outside = {m for m in imported if not any(m == a or m.startswith(a + ".") for a in allowed)}
    assert outside == set()


def test_mean_psnr_ssim_averages_over_images_not_batches():
    torch.manual_seed(0)
    targets = [torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1]
    outputs = [(target + 0.1 * torch.randn_like(target)).clamp(-1, 1) for target in targets]
    means = mean_psnr_ssim(zip(outputs, targets))
    assert means["psnr"] == pytest.approx(float(torch.cat([psnr(o, t) for o, t in zip(outputs, targets)]).mean()))
    assert means["ssim"] == pytest.approx(float(torch.cat([ssim(o, t) for o, t in zip(outputs, targets)]).mean()))
