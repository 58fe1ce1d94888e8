"""The headline metrics against cases whose answer is known: top-1, conditional accuracy, FID and mIoU.

Each metric is run through the code that produces the committed numbers (classification's ``evaluate``, the
diffusion scorer ``score_samples`` with the shipped classifier, segmentation's ``confusion`` + ``scores``) and
compared with an independent computation in this file (plain numpy / scipy / torchmetrics). The study's verdict
is checked against simulated seeds in tests/test_study.py.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import test_diffusion_unet
import torch
from torch import nn

from hybridvision.classify.augment import Augment
from hybridvision.classify.config import AugConfig
from hybridvision.classify.data import Split
from hybridvision.classify.task import evaluate
from hybridvision.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, DataError
from hybridvision.engine.distributed import Dist
from hybridvision.seg.augment import SegAugment
from hybridvision.seg.config import InferConfig, SegAugConfig
from hybridvision.seg.metrics import confusion_matrix, iou_per_class, scores
from hybridvision.seg.task import confusion

dm = test_diffusion_unet.dm  # hybridvision.diffusion, registered for this module only
CLASSIFIER = "assets/fmnist_ascan_nano"


# ---- Top-1 / top-5: a model whose logits are a known table


class Lookup(nn.Module):
    """Reads each image's index from its first pixel and returns that row of a fixed logit table."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = (x[:, 0, 0, 0] * 255).round().long()  # normalised with mean 0, std 1: pixels / 255
        return self.table[index]


def test_top1_top5_and_loss_equal_a_direct_count_over_the_whole_split():
    n, k = 37, 10  # batches of 8 leave a ragged last one
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(n, k, generator=gen)
    labels = torch.randint(0, k, (n,), generator=gen)
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    split = Split([str(c) for c in range(k)], 4, images, labels)
    augment = Augment(AugConfig(), (0.0,), (1.0,), k, 4)
    got = evaluate(Lookup(table), split, 8, Dist(), contextlib.nullcontext, augment.normalize)

    logits, y = table.double().numpy(), labels.numpy()
    top5 = np.argsort(-logits, axis=1)[:, :5]
    loss = np.log(np.exp(logits).sum(1)) - logits[np.arange(n), y]
    assert got["top1"] == pytest.approx(100 * np.mean(logits.argmax(1) == y), abs=1e-9)
    assert got["top5"] == pytest.approx(100 * np.mean((top5 == y[:, None]).any(1)), abs=1e-9)
    assert got["loss"] == pytest.approx(loss.mean(), rel=1e-6)
    perfect = Lookup(torch.nn.functional.one_hot(labels, k).float() * 10)
    assert evaluate(perfect, split, 8, Dist(), contextlib.nullcontext, augment.normalize)["top1"] == 100.0


# ---- Conditional accuracy and FID: a "sampler" that returns real Fashion-MNIST images


@pytest.fixture(scope="module")
def fmnist(dm):
    """The shipped classifier, its pinned t10k statistics (the FID reference of every committed FID), and 100
    t10k images per class to be "sampled"."""
    data = dm.config.DiffusionDataConfig()
    try:
        images, labels = dm.evaluation.load_images(data, "t10k", 32)
    except (DataError, FileNotFoundError):
        pytest.skip("Fashion-MNIST is not installed")
    probe = dm.judge.load_classifier(CLASSIFIER)
    reference = dm.evaluation.reference_for(probe, CLASSIFIER, "", data, 32, 500)
    pools = [images[labels == c][:100] for c in range(10)]  # (100, 1, 32, 32) per class
    return probe, reference, pools


def fake_sampler(pools, record, pick=lambda y: y):
    """``sample`` replaced: for a batch asking for classes y, the next real images of class ``pick(y)``."""
    used = [0] * 10

    def sample(model, cond, start, cfg, noise, generator=None):
        out = []
        for y in cond.tolist():
            c = pick(y)
            out.append(pools[c][used[c] % len(pools[c])])
            used[c] += 1
        batch = torch.stack(out)  # (B, 1, 32, 32) uint8
        record.append((batch, cond.clone()))
        return batch.float() / 127.5 - 1  # uint8 -> [-1, 1], as a sampler returns

    return sample


def score(dm, probe, reference, monkeypatch, sampler, n=600):
    monkeypatch.setattr(dm.evaluation, "sample", sampler)
    return dm.evaluation.score_samples(
        nn.Identity(), probe, reference, n=n, num_classes=10, shape=(1, 32, 32), cfg=dm.sampling.SampleConfig(),
        noise=dm.schedule.NoiseConfig(), seed=0, batch_size=150, dist=Dist(), autocast=contextlib.nullcontext,
    )  # fmt: skip


def classify_directly(probe, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes, penultimate features float64) of uint8 images: the classifier itself, no probe."""
    model = probe.model
    x = (images.float() / 255 - FASHION_MNIST_MEAN[0]) / FASHION_MNIST_STD[0]
    with torch.no_grad():
        fmap = model.forward_features(x)
        feats, logits = model.forward_head(fmap, pre_logits=True), model.forward_head(fmap)
    return logits.argmax(1).numpy(), feats.double().numpy()


def fid_scipy(f1: np.ndarray, f2_mu: np.ndarray, f2_sigma: np.ndarray) -> float:
    from scipy import linalg

    mu1, s1 = f1.mean(0), np.cov(f1, rowvar=False)
    root = linalg.sqrtm(s1 @ f2_sigma).real
    return float(((mu1 - f2_mu) ** 2).sum() + np.trace(s1) + np.trace(f2_sigma) - 2 * np.trace(root))


def test_real_images_of_the_asked_class_score_the_judges_top1(dm, fmnist, monkeypatch):
    """Samples that are real images of the requested class: conditional accuracy is the classifier's top-1 on
    exactly those images (per class too), and their FID to other real images is small and equals scipy's."""
    probe, reference, pools = fmnist
    record = []
    got = score(dm, probe, reference, monkeypatch, fake_sampler(pools, record))
    images = torch.cat([b for b, _ in record])
    asked = torch.cat([y for _, y in record]).numpy()
    preds, feats = classify_directly(probe, images)
    assert got.cond_acc == pytest.approx(100 * np.mean(preds == asked), abs=1e-9)
    judge = dm.evaluation.real_reference(probe, images, torch.from_numpy(asked), 100, "t10k")
    assert got.cond_acc == pytest.approx(judge.top1, abs=1e-5)  # the judge's own top-1 on the same images
    per_class = [100 * np.mean(preds[asked == c] == c) for c in range(10)]
    assert got.per_class == pytest.approx(per_class, abs=0.01)
    assert got.cond_acc > 85  # the shipped classifier's accuracy, about its 93.6% on all of t10k

    expected = fid_scipy(feats, reference.stats.mu.numpy(), reference.stats.sigma.numpy())
    assert got.fid == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert got.fid < 2  # same distribution: only the small-sample bias of N = 600


def test_a_shifted_class_scores_near_zero_and_a_collapsed_distribution_a_larger_fid(dm, fmnist, monkeypatch):
    probe, reference, pools = fmnist
    same = score(dm, probe, reference, monkeypatch, fake_sampler(pools, []))
    record = []
    shifted = score(dm, probe, reference, monkeypatch, fake_sampler(pools, record, lambda y: (y + 1) % 10))
    images = torch.cat([b for b, _ in record])
    asked = torch.cat([y for _, y in record]).numpy()
    preds, _ = classify_directly(probe, images)
    assert shifted.cond_acc == pytest.approx(100 * np.mean(preds == asked), abs=1e-9)
    assert shifted.cond_acc < 5  # images of class y + 1 are rarely taken for class y
    assert shifted.fid == pytest.approx(same.fid, rel=0.05)  # still the data's own images, every class once

    record = []  # a collapsed sampler: every sample a trouser, whatever was asked
    collapsed = score(dm, probe, reference, monkeypatch, fake_sampler(pools, record, lambda y: 1))
    _, feats = classify_directly(probe, torch.cat([b for b, _ in record]))
    assert collapsed.fid > 20 * same.fid and collapsed.cond_acc == pytest.approx(10, abs=1)
    expected = fid_scipy(feats, reference.stats.mu.numpy(), reference.stats.sigma.numpy())
    assert collapsed.fid == pytest.approx(expected, rel=1e-4)


# ---- mIoU: one confusion matrix accumulated over the whole evaluation set


class MaskModel(nn.Module):
    """A segmentation "model" whose prediction is carried by its input: channel 0 holds the predicted class."""

    stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pred = (x[:, 0] * 255).round().long()  # normalised with mean 0, std 1: pixels / 255
        return torch.nn.functional.one_hot(pred, 5).permute(0, 3, 1, 2).float() * 10  # (B, H, W, K) -> (B, K, H, W)


class MaskSplit:
    """Scenes whose images are the predictions and whose masks are the truth, in fixed batches."""

    classes = ("background", "a", "b", "c", "d")

    def __init__(self, preds: torch.Tensor, truth: torch.Tensor) -> None:
        self.preds, self.truth = preds, truth

    def __len__(self) -> int:
        return len(self.truth)

    def batches(self, index_lists):
        for idx in index_lists:
            side = self.truth.shape[-1]
            yield self.preds[idx, None].to(torch.uint8), self.truth[idx], torch.tensor([[side, side]] * len(idx)), []


def segmentation_data(n=9, side=12, seed=0):
    """Predictions and truth over a small data set: class 4 ('d') is neither labelled nor predicted anywhere, class
    3 ('c') is labelled in one image only, and about a tenth of the pixels are ignored (255)."""
    gen = torch.Generator().manual_seed(seed)
    truth = torch.randint(0, 3, (n, side, side), generator=gen)
    truth[0, :3, :3] = 3
    preds = torch.where(
        torch.rand(n, side, side, generator=gen) < 0.7, truth, torch.randint(0, 4, (n, side, side), generator=gen)
    )
    truth[torch.rand(n, side, side, generator=gen) < 0.1] = 255
    return preds, truth


def miou_by_hand(preds: torch.Tensor, truth: torch.Tensor, k: int) -> tuple[float, list[float]]:
    """The rule, written out: over all labelled pixels of all images, IoU_c = TP / (TP + FP + FN); a class with
    TP + FP + FN = 0 (neither labelled nor predicted anywhere) has no IoU and is left out of the mean."""
    p, t = preds.numpy().ravel(), truth.numpy().ravel()
    keep = t != 255
    p, t = p[keep], t[keep]
    ious = []
    for c in range(k):
        tp, fp, fn = np.sum((p == c) & (t == c)), np.sum((p == c) & (t != c)), np.sum((p != c) & (t == c))
        ious.append(100 * tp / (tp + fp + fn) if tp + fp + fn else math.nan)
    present = [v for v in ious if not math.isnan(v)]
    return sum(present) / len(present), ious


def test_miou_is_accumulated_over_the_whole_set_and_skips_absent_classes():
    preds, truth = segmentation_data()
    augment = SegAugment(SegAugConfig(), 12, (0.0,), (1.0,), 5)
    conf = confusion(MaskModel(), MaskSplit(preds, truth), 4, Dist(), contextlib.nullcontext, augment, InferConfig())
    got = scores(conf)
    expected, ious = miou_by_hand(preds, truth, 5)
    assert got["miou"] == pytest.approx(expected, abs=1e-9)
    assert iou_per_class(conf)[:4] == pytest.approx(ious[:4], abs=1e-9) and math.isnan(iou_per_class(conf)[4])
    keep = truth != 255
    assert got["aacc"] == pytest.approx(100 * float((preds[keep] == truth[keep]).double().mean()), abs=1e-9)
    # Not the mean of per-image mIoUs: accumulating over the set is what the rule says.
    per_image = np.nanmean([scores(confusion_matrix(p, t, 5))["miou"] for p, t in zip(preds, truth)])
    assert abs(per_image - expected) > 0.5


def test_miou_matches_torchmetrics():
    from hybridvision.vision_ops import import_torchvision

    import_torchvision()  # torchmetrics imports torchvision: completed where its C extension cannot load
    metrics = pytest.importorskip("torchmetrics.classification")
    preds, truth = segmentation_data(seed=1)
    jaccard = metrics.MulticlassJaccardIndex(num_classes=5, average="none", ignore_index=255)
    for p, t in zip(preds.split(4), truth.split(4)):  # torchmetrics accumulates its state over batches too
        jaccard.update(p, t)
    theirs = (100 * jaccard.compute()).tolist()
    ours = iou_per_class(sum(confusion_matrix(p, t, 5) for p, t in zip(preds, truth)))
    assert ours[:4] == pytest.approx(theirs[:4], abs=1e-4)
    # For the class absent from both, torchmetrics reports 0 and would average it in; ours leaves it out (mmseg).
    assert theirs[4] == 0 and math.isnan(ours[4])
    assert scores(sum(confusion_matrix(p, t, 5) for p, t in zip(preds, truth)))["miou"] == pytest.approx(
        sum(theirs[:4]) / 4, abs=1e-4
    )
