"""FID on our classifier's features: the float64 eigh Fréchet distance, batched statistics, the probe, stats files."""

from __future__ import annotations

import pytest
import test_diffusion_unet
import torch

from hybridvision.checkpoint import CheckpointError

dm = test_diffusion_unet.dm  # the shared fixture: hybridvision.diffusion, registered for this module


def reference_fid(mu1, s1, mu2, s2) -> float:
    """torchmetrics' formula: eigenvalues of the non-symmetric S1 S2."""
    return float(
        (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()
    )


def stats_of(dm, feats: torch.Tensor):
    sums = dm.fid.FeatureSums(feats.shape[1])
    for chunk in feats.split(37):
        sums.update(chunk)
    return sums.stats()


def test_batched_statistics_match_mean_and_unbiased_covariance(dm):
    feats = torch.randn(200, 8, dtype=torch.float64) @ torch.randn(8, 8, dtype=torch.float64)
    stats = stats_of(dm, feats)
    torch.testing.assert_close(stats.mu, feats.mean(0))
    torch.testing.assert_close(stats.sigma, torch.cov(feats.T))  # N - 1
    assert stats.n == 200 and stats.dim == 8


def test_frechet_distance(dm):
    a = stats_of(dm, torch.randn(500, 16, dtype=torch.float64))
    b = stats_of(dm, 0.5 + 1.3 * torch.randn(400, 16, dtype=torch.float64))
    assert abs(dm.fid.frechet_distance(a, a)) < 1e-8
    expected = reference_fid(a.mu, a.sigma, b.mu, b.sigma)
    assert dm.fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_matches_scipy_sqrtm(dm):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    a = stats_of(dm, torch.randn(300, 12, dtype=torch.float64))
    b = stats_of(dm, 0.2 + 0.8 * torch.randn(300, 12, dtype=torch.float64))
    root = torch.from_numpy(scipy_linalg.sqrtm((a.sigma @ b.sigma).numpy()).real)
    scipy_value = float((a.mu - b.mu).square().sum() + a.sigma.trace() + b.sigma.trace() - 2 * root.trace())
    assert dm.fid.frechet_distance(a, b) == pytest.approx(scipy_value, rel=1e-6)


def test_stats_round_trip_and_missing_file(dm, tmp_path):
    stats = stats_of(dm, torch.randn(50, 4, dtype=torch.float64))
    dm.fid.save_stats(stats, tmp_path / "s.safetensors", split="t10k", classifier="abc")
    back, meta = dm.fid.load_stats(tmp_path / "s.safetensors")
    assert torch.equal(back.mu, stats.mu) and torch.equal(back.sigma, stats.sigma) and back.n == 50
    assert meta["split"] == "t10k" and meta["classifier"] == "abc"
    with pytest.raises(FileNotFoundError, match="fid_reference_stats.py"):
        dm.fid.load_stats(tmp_path / "none.safetensors")


def save_classifier(path):
    """A tiny, randomly initialised Fashion-MNIST-shaped classifier in save_pretrained format."""
    import hybridvision as hv
    from hybridvision.factory import save_pretrained

    save_pretrained(hv.create_model("ascan_test", num_classes=10, in_chans=1, img_size=16, stem_stride=1), path)
    return path


def test_probe_features_logits_and_reference(dm, tmp_path):
    probe = dm.judge.load_classifier(save_classifier(tmp_path / "clf"))
    images = torch.randint(0, 256, (12, 1, 16, 16), dtype=torch.uint8)
    feats, logits = probe(dm.pixels.from_uint8(images))
    assert feats.shape == (12, probe.dim) and logits.shape == (12, 10)
    model = probe.model
    x = (images.float() / 255 - 0.2860) / 0.3530  # the classifier's own training normalisation
    torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)
    ref = dm.evaluation.real_reference(probe, images, torch.zeros(12, dtype=torch.long), 5, "t10k")
    assert ref.stats.n == 12 and 0 <= ref.top1 <= 100


def test_missing_classifier_and_mismatched_stats_are_clear_errors(dm, tmp_path):
    with pytest.raises(CheckpointError, match="no classifier at .*hybridvision train --config"):
        dm.judge.load_classifier(tmp_path / "absent")
    clf = save_classifier(tmp_path / "clf")
    probe = dm.judge.load_classifier(clf)
    stats = stats_of(dm, torch.randn(20, probe.dim, dtype=torch.float64))
    dm.fid.save_stats(stats, clf / dm.fid.STATS_NAME, classifier="0000", split="t10k")
    data = dm.config.DiffusionDataConfig()
    with pytest.raises(ValueError, match="other classifier weights.*fid_reference_stats.py"):
        dm.evaluation.reference_for(probe, str(clf), "", data, 16, 10)
    digest = dm.judge.weights_digest(clf)
    dm.fid.save_stats(stats, clf / dm.fid.STATS_NAME, classifier=digest, split="t10k", top1="12.5")
    ref = dm.evaluation.reference_for(probe, str(clf), "", data, 16, 10)
    assert ref.top1 == 12.5 and ref.stats.n == 20
