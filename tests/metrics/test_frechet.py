import numpy as np
import pytest
import torch

from hf_vidtok.metrics import FrechetStatistics, frechet_distance, symmetric_matrix_sqrt, trace_sqrt_product


def _gaussian_features(n, d, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ a + shift


def test_symmetric_sqrt_and_trace_sqrt_product():
    f = _gaussian_features(40, 6, 0)
    s = f.T @ f / 40
    r = symmetric_matrix_sqrt(s)
    torch.testing.assert_close(r @ r, s, rtol=1e-10, atol=1e-12)
    s2 = (lambda x: x.T @ x / 40)(_gaussian_features(40, 6, 1))
    eig = torch.linalg.eigvals(s @ s2)  # tr(sqrt(A B)) = sum sqrt(eig(A B)) (real, >= 0)
    assert trace_sqrt_product(s, s2).item() == pytest.approx(eig.real.clamp(min=0).sqrt().sum().item(), rel=1e-9)


@pytest.mark.parametrize("n,d", [(50, 8), (20, 30)])  # full-rank and rank-deficient covariances
def test_frechet_distance_matches_scipy_sqrtm(n, d):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    f1, f2 = _gaussian_features(n, d, 2), _gaussian_features(n, d, 3, shift=0.3)
    mu1, mu2 = f1.mean(0).numpy(), f2.mean(0).numpy()
    s1, s2 = np.cov(f1.numpy(), rowvar=False, bias=True), np.cov(f2.numpy(), rowvar=False, bias=True)
    covmean, _ = scipy_linalg.sqrtm(s1 @ s2, disp=False)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))
    ours = frechet_distance(torch.from_numpy(mu1), torch.from_numpy(s1), torch.from_numpy(mu2), torch.from_numpy(s2))
    assert ours == pytest.approx(expected, rel=1e-7, abs=1e-9)
    assert ours > 0


def test_frechet_distance_known_values_and_errors():
    d = 5
    eye = torch.eye(d, dtype=torch.float64)
    # N(0, I) vs N(m, 4 I): |m|^2 + d + 4d - 2 * 2d = |m|^2 + d
    m = torch.full((d,), 0.5, dtype=torch.float64)
    assert frechet_distance(torch.zeros(d), eye, m, 4 * eye) == pytest.approx(float((m**2).sum()) + d, rel=1e-12)
    f = _gaussian_features(30, d, 4)
    s = f.T @ f / 30
    assert abs(frechet_distance(f.mean(0), s, f.mean(0), s)) < 1e-10
    with pytest.raises(ValueError, match="mu1"):
        frechet_distance(torch.zeros(3), eye, torch.zeros(d), eye)
    with pytest.raises(ValueError, match="sigma1"):
        frechet_distance(torch.zeros(d), torch.eye(3), torch.zeros(d), eye)


def test_streaming_statistics_float64_biased():
    f = _gaussian_features(37, 7, 5).float()
    one = FrechetStatistics(7)
    one.update(f)
    chunks = FrechetStatistics(7)
    for part in f.split(5):
        chunks.update(part)
    mu, cov = one.mean_cov()
    assert mu.dtype == torch.float64 and cov.dtype == torch.float64
    ref = f.double().numpy()
    np.testing.assert_allclose(mu.numpy(), ref.mean(0), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(cov.numpy(), np.cov(ref, rowvar=False, bias=True), rtol=1e-10, atol=1e-12)
    mu2, cov2 = chunks.mean_cov()
    torch.testing.assert_close(mu2, mu, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(cov2, cov, rtol=1e-10, atol=1e-12)
    # merge + state dict round trip
    a, b = FrechetStatistics(7), FrechetStatistics(7)
    a.update(f[:20])
    b.update(f[20:])
    c = FrechetStatistics(7)
    c.load_state_dict(a.merge(b).state_dict())
    assert c.count == 37
    torch.testing.assert_close(c.mean_cov()[1], cov, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        one.update(torch.zeros(3, 6))
    with pytest.raises(ValueError, match="at least 2"):
        FrechetStatistics(7).mean_cov()
    with pytest.raises(ValueError, match="merge"):
        a.merge(FrechetStatistics(3))


def _gather_worker(out_path):
    from accelerate import PartialState

    state = PartialState(cpu=True)  # what Accelerator(cpu=True) sets up; gather() reuses it
    stats = FrechetStatistics(4)
    stats.update(_gaussian_features(5 + state.process_index, 4, 10 + state.process_index))
    stats.gather()
    if state.is_main_process:
        torch.save(stats.state_dict(), out_path)


def test_gather_across_two_processes(tmp_path):
    accelerate = pytest.importorskip("accelerate")
    out = tmp_path / "gathered.pt"
    accelerate.debug_launcher(_gather_worker, args=(str(out),), num_processes=2)
    gathered = torch.load(out, weights_only=True)
    ref = FrechetStatistics(4)
    ref.update(_gaussian_features(5, 4, 10))
    ref.update(_gaussian_features(6, 4, 11))
    assert int(gathered["count"]) == 11
    torch.testing.assert_close(gathered["sum"], ref.sum)
    torch.testing.assert_close(gathered["sum_outer"], ref.sum_outer)
