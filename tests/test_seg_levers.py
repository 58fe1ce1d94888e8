"""The levers of the scenes' segmentation: IoU surrogate losses (Lovász-softmax, soft Dice) checked against IoU
oracles; ink-connected regions against a breadth-first search; the region vote and its training analogue on
hand-made scenes with known answers; occluded-item pretraining of the classifier; the screening configs."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from synthetic_data import write_fmnist_like

from hybridvision.classify.occlude import occlude, zoom
from hybridvision.config import ConfigError, resolve
from hybridvision.data.scenes import IGNORE
from hybridvision.seg.config import InferConfig, SegDataConfig, SegEvalConfig, SegLossConfig
from hybridvision.seg.infer import labels
from hybridvision.seg.losses import (
    cross_entropy,
    lovasz_softmax,
    region_consistency,
    seg_loss,
    soft_dice,
)
from hybridvision.seg.metrics import confusion_matrix, iou_per_class
from hybridvision.seg.region import components, ink_regions, region_mean, vote

ROOT = Path(__file__).resolve().parents[1]
K = 5  # classes of the hand-made examples: 0 = background, 1..4 = items


def one_hot(pred: torch.Tensor, k: int = K) -> torch.Tensor:
    """Hard probabilities (B, K, H, W) of labels (B, H, W)."""
    return F.one_hot(pred, k).permute(0, 3, 1, 2).float()


def random_masks(seed: int, shape=(2, 12, 12), ignore: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """A target with some ignored pixels and a prediction that is right at about half of the pixels."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, K, shape, generator=g)
    target = target.masked_fill(torch.rand(shape, generator=g) < ignore, IGNORE)
    pred = torch.where(torch.rand(shape, generator=g) < 0.5, target.clamp(max=K - 1), torch.randint(0, K, shape))
    return target, pred


# ---- Surrogate losses


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("background", [False, True])
def test_lovasz_on_hard_predictions_is_one_minus_iou(seed, background):
    target, pred = random_masks(seed)
    iou = iou_per_class(confusion_matrix(pred, target, K))  # the metric's own IoU, in %
    present = [c for c in range(0 if background else 1, K) if bool((target == c).any())]
    expected = sum(1 - iou[c] / 100 for c in present) / len(present)
    assert float(lovasz_softmax(one_hot(pred), target, background)) == pytest.approx(expected, abs=1e-6)


def sorted_lovasz(probs: torch.Tensor, target: torch.Tensor) -> float:
    """The Lovász-softmax by its definition, item classes present, errors sorted exactly: the reference."""
    keep = target != IGNORE
    p, t = probs.permute(0, 2, 3, 1)[keep], target[keep]  # (N, K), (N,)
    losses = []
    for c in [c for c in range(1, probs.shape[1]) if bool((t == c).any())]:
        fg = (t == c).float()
        errors, order = (fg - p[:, c]).abs().sort(descending=True)
        fg = fg[order]
        jaccard = 1 - (fg.sum() - fg.cumsum(0)) / (fg.sum() + (1 - fg).cumsum(0))
        losses.append(float((errors * torch.diff(jaccard, prepend=torch.zeros(1))).sum()))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("seed", [0, 1])
def test_lovasz_on_soft_predictions_is_within_a_level_of_the_sorted_one(seed):
    target, _ = random_masks(seed, shape=(2, 20, 20))
    probs = (3 * torch.randn(2, K, 20, 20, generator=torch.Generator().manual_seed(seed))).softmax(1)
    assert float(lovasz_softmax(probs, target)) == pytest.approx(sorted_lovasz(probs, target), abs=1 / 1024)


def test_lovasz_of_a_known_mask():
    """Class 1 holds 4 pixels; the prediction finds 3 of them and adds 1: IoU 3/5, loss 0.4."""
    target = torch.tensor([[[1, 1, 1, 1, 0, 0]]])
    pred = torch.tensor([[[1, 1, 1, 0, 1, 0]]])
    assert float(lovasz_softmax(one_hot(pred, 2), target)) == pytest.approx(0.4)
    assert float(lovasz_softmax(one_hot(target, 2), target)) == 0.0


def test_surrogate_gradients_point_toward_the_labels():
    target, _ = random_masks(3)
    for surrogate in (lovasz_softmax, soft_dice):
        probs = (3 * torch.randn(2, K, 12, 12)).softmax(1).requires_grad_()  # confident: errors of all sizes
        surrogate(probs, target, True).backward()
        grad = probs.grad
        labelled = target != IGNORE
        truth = F.one_hot(target.clamp(max=K - 1), K).permute(0, 3, 1, 2).bool() & labelled[:, None]
        assert (grad[truth] <= 0).all() and (grad[truth] < 0).any(), surrogate.__name__  # more of the label: lower
        wrong = ~truth & labelled[:, None]
        assert (grad[wrong] >= 0).all() and (grad[wrong] > 0).any(), surrogate.__name__  # more of another: higher


@pytest.mark.parametrize("kind", ["ce_lovasz", "ce_dice"])
def test_a_gradient_step_lowers_the_surrogate(kind):
    target, _ = random_masks(4)
    logits = torch.randn(2, K, 12, 12, requires_grad=True)
    cfg = SegLossConfig(kind=kind, weight=1.0)
    before = seg_loss(logits, target, cfg)
    before.backward()
    with torch.no_grad():
        after = seg_loss(logits - 0.5 * logits.grad, target, cfg)
    assert float(after) < float(before.detach())


def test_perfect_predictions_cost_nothing():
    target, _ = random_masks(5, ignore=0.0)
    assert float(soft_dice(one_hot(target), target, True)) == pytest.approx(0.0, abs=1e-7)
    assert float(lovasz_softmax(one_hot(target), target, True)) == 0.0
    assert float(soft_dice(1 - one_hot(target), target, True)) > 0.9  # all wrong: near 1


@pytest.mark.parametrize(
    "cfg",
    [SegLossConfig(), SegLossConfig(kind="ce_lovasz"), SegLossConfig(kind="ce_dice", background=True)]
    + [SegLossConfig(kind="ce_lovasz", region_weight=1.0)],
)
def test_ignored_pixels_have_no_effect_and_no_gradient(cfg):
    target, _ = random_masks(6, ignore=0.3)
    logits = torch.randn(2, K, 12, 12, requires_grad=True)
    loss = seg_loss(logits, target, cfg)
    loss.backward()
    ignored = (target == IGNORE)[:, None].expand_as(logits)
    assert float(logits.grad[ignored].abs().max()) == 0.0
    changed = torch.where(ignored, torch.randn_like(logits) * 10, logits.detach())
    assert float(seg_loss(changed, target, cfg)) == pytest.approx(float(loss.detach()), rel=1e-6)


def test_surrogates_leave_background_out_unless_asked():
    target = torch.tensor([[[0, 0, 0, 1]]])
    pred = torch.tensor([[[1, 0, 0, 1]]])  # class 1: IoU 1/2; background: IoU 2/3
    assert float(lovasz_softmax(one_hot(pred, 2), target)) == pytest.approx(0.5)
    assert float(lovasz_softmax(one_hot(pred, 2), target, True)) == pytest.approx((0.5 + 1 / 3) / 2)
    all_ignored = torch.full((1, 1, 4), IGNORE)
    assert (
        float(lovasz_softmax(one_hot(pred, 2), all_ignored))
        == 0.0
        == float(soft_dice(one_hot(pred, 2), torch.zeros(1, 1, 4, dtype=torch.long)))
    )


def test_plain_loss_is_cross_entropy_and_bad_kinds_fail():
    target, _ = random_masks(7)
    logits = torch.randn(2, K, 12, 12)
    assert float(seg_loss(logits, target)) == pytest.approx(float(cross_entropy(logits, target)))
    with pytest.raises(ConfigError, match="loss.kind must be one of ce, ce_lovasz, ce_dice"):
        SegLossConfig(kind="lovasz")
    with pytest.raises(ConfigError, match="loss.weight must be >= 0"):
        SegLossConfig(weight=-1)


# ---- Regions


def bfs_components(valid: torch.Tensor, key: torch.Tensor) -> list[set[tuple[int, int]]]:
    """The 8-connected components of one image (H, W), found by breadth-first search: the oracle."""
    h, w = valid.shape
    seen, found = set(), []
    for start in ((y, x) for y in range(h) for x in range(w) if valid[y, x]):
        if start in seen:
            continue
        part, queue = {start}, deque([start])
        seen.add(start)
        while queue:
            y, x = queue.popleft()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    n = (y + dy, x + dx)
                    if 0 <= n[0] < h and 0 <= n[1] < w and valid[n] and key[n] == key[y, x] and n not in seen:
                        seen.add(n)
                        part.add(n)
                        queue.append(n)
        found.append(part)
    return found


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_components_match_breadth_first_search(seed):
    g = torch.Generator().manual_seed(seed)
    valid = torch.rand(3, 17, 13, generator=g) < 0.55
    key = torch.randint(0, 3 if seed % 2 else 1, (3, 17, 13), generator=g)
    ids = components(key, valid)
    assert bool(((ids > 0) == valid).all())
    for b in range(3):
        expected = {frozenset(p) for p in bfs_components(valid[b], key[b])}
        got = {}
        for y, x in zip(*torch.nonzero(ids[b], as_tuple=True)):
            got.setdefault(int(ids[b, y, x]), set()).add((int(y), int(x)))
        assert {frozenset(p) for p in got.values()} == expected


def test_a_long_spiral_is_one_region():
    """A one-pixel-wide path that winds through the whole image (the slowest case for propagation)."""
    valid = torch.zeros(1, 15, 15, dtype=torch.bool)
    valid[0, ::2] = True  # rows 0, 2, ..., 14
    valid[0, 1::4, -1] = True  # joined at alternate ends: a snake
    valid[0, 3::4, 0] = True
    ids = components(torch.zeros(1, 15, 15, dtype=torch.long), valid)
    assert ids[valid].unique().numel() == 1


def scene_of_two_items() -> tuple[torch.Tensor, torch.Tensor]:
    """A hand-made 1x8x12 image: item A (rows 1-6, columns 1-5) and item B (rows 2-5, columns 7-10), apart; ink
    200, background 10."""
    image = torch.full((1, 1, 8, 12), 10, dtype=torch.uint8)
    image[..., 1:7, 1:6] = 200  # 30 pixels
    image[..., 2:6, 7:11] = 200  # 16 pixels
    return image, ink_regions(image, 40)


def test_region_takes_the_class_of_its_majority():
    image, regions = scene_of_two_items()
    assert regions.unique().numel() == 3  # background and two items
    pred = torch.zeros(1, 8, 12, dtype=torch.long)
    a = torch.zeros(1, 8, 12, dtype=torch.bool)
    a[..., 1:7, 1:6] = True
    pred[a] = 3
    pred[0, 1:7, 1:3] = 4  # item A: 18 pixels predict 3, 12 predict 4 (60/40)
    pred[0, 2:6, 7:11] = 2  # item B: all 2 but one pixel predicted background
    pred[0, 3, 8] = 0
    pred[0, 0, 0] = 1  # a background pixel predicted as an item stays so
    probs = one_hot(pred) * 0.8 + 0.04
    for mode in ("mass", "count"):
        voted = vote(probs, regions, mode)
        assert bool((voted[a] == 3).all()), mode
        assert bool((voted[0, 2:6, 7:11] == 2).all()), mode  # the background-predicted pixel of B joins B
        assert int(voted[0, 0, 0]) == 1 and bool((voted[regions == 0][1:] == 0).all())
    kept = vote(probs, regions, "mass", minority=0.3)  # 40% of the pixels hold its share: item A stays split
    assert torch.equal(kept[a], pred[a])


def test_mass_and_count_votes_differ_where_confidence_does():
    """6 pixels say class 1 weakly, 4 say class 2 strongly: count picks 1, mass picks 2."""
    image = torch.full((1, 1, 1, 10), 255, dtype=torch.uint8)
    regions = ink_regions(image, 40)
    probs = torch.zeros(1, 3, 1, 10)
    probs[0, :, 0, :6] = torch.tensor([0.2, 0.5, 0.3])[:, None]
    probs[0, :, 0, 6:] = torch.tensor([0.0, 0.05, 0.95])[:, None]
    assert bool((vote(probs, regions, "count") == 1).all())
    assert bool((vote(probs, regions, "mass") == 2).all())  # mass: 6*0.3 + 4*0.95 = 5.6 against 3.2
    assert torch.equal(vote(probs, regions, "off"), probs.argmax(1))


def test_touching_items_of_different_classes_form_one_region():
    """Items A (class 1, 24 pixels) and B (class 2, 16 pixels) touch: one ink region. One class per region gives
    all 40 pixels class 1 (B is lost); a minority share of 0.3 lets B (15 of 40 pixels) keep its class, while
    B's single stray pixel of class 3 is outvoted and takes the class around it, B's."""
    image = torch.zeros(1, 1, 6, 12, dtype=torch.uint8)
    image[..., :, 0:4] = 255
    image[..., 1:5, 4:8] = 255
    regions = ink_regions(image, 40)
    assert regions.unique().numel() == 2  # background and one region
    pred = torch.zeros(1, 6, 12, dtype=torch.long)
    pred[..., :, 0:4] = 1
    pred[..., 1:5, 4:8] = 2
    pred[0, 2, 6] = 3
    probs = one_hot(pred)
    voted = vote(probs, regions, "mass")
    assert bool((voted[regions > 0] == 1).all())
    shared = vote(probs, regions, "mass", minority=0.3)
    assert bool((shared[..., :, 0:4] == 1).all()) and bool((shared[..., 1:5, 4:8] == 2).all())


def test_labels_vote_only_when_asked():
    image, _ = scene_of_two_items()
    probs = torch.rand(1, K, 8, 12).softmax(1)
    assert torch.equal(labels(probs, image, InferConfig(), 40.0), probs.argmax(1))
    voted = labels(probs, image, InferConfig(region_vote="mass", vote_minority=1.0), 40.0)
    assert voted[0, 1:7, 1:6].unique().numel() == 1 and voted[0, 2:6, 7:11].unique().numel() == 1


def test_vote_needs_the_scenes():
    with pytest.raises(ConfigError, match="infer.region_vote mass needs the scenes' ink"):
        SegEvalConfig(data=SegDataConfig(dataset="ade20k", channels=3, mean=(0.5,) * 3, std=(0.2,) * 3),
                      infer=InferConfig(region_vote="mass"))  # fmt: skip
    with pytest.raises(ConfigError, match="infer.region_vote must be one of off, mass, count"):
        InferConfig(region_vote="majority")


def test_scene_ink_is_item_ink(tmp_path):
    """Ink above the threshold is always labelled as an item (what lets the vote overrule a background guess)."""
    from hybridvision.seg.data import load_split

    data = SegDataConfig(root=str(write_fmnist_like(tmp_path)), eval_subset=16)
    data = resolve(SegDataConfig, None, {"root": data.root, "eval_subset": "16", "scenes.holdout": "64"})
    split = load_split(data, train=False)
    images, masks, _, _ = next(split.batches([list(range(16))]))
    regions = ink_regions(images, data.scenes.threshold)
    assert bool((masks[regions > 0] > 0).all()) and bool((regions > 0).any())


def test_region_mean_and_consistency():
    target = torch.tensor([[[1, 1, 1, 0, 2, 2]]])
    logits = torch.zeros(1, 3, 1, 6)
    logits[0, 1, 0, 0] = 2.0  # one pixel of the class-1 piece disagrees with the others
    probs = logits[:, 1:].softmax(1)
    regions = components(target, target > 0)
    mean = region_mean(probs, regions)
    assert torch.allclose(mean[..., :3], probs[..., :3].mean(-1, keepdim=True).expand(-1, -1, -1, 3))
    assert torch.equal(mean[..., 3], probs[..., 3])  # outside every region: itself
    assert float(region_consistency(logits, target)) > 0
    uniform = torch.zeros(1, 3, 1, 6)
    assert float(region_consistency(uniform, target)) == pytest.approx(0.0, abs=1e-7)


# ---- Occluded-item pretraining of the classifier


def block_items(b: int = 64, size: int = 32) -> torch.Tensor:
    """Float images (B, 1, size, size) on [0, 1]: a solid block per image at its own grey level (0.3 .. 0.93), on
    black, so a covered pixel is one whose value changed."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(b, 1, size, size)
    for i in range(b):
        top, left = torch.randint(4, 12, (2,), generator=g).tolist()
        x[i, 0, top : top + 14, left : left + 12] = 0.3 + 0.01 * i
    return x


def test_occlusion_covers_a_share_within_range():
    x = block_items()
    share = (0.15, 0.45)
    out, covered = occlude(x, 0.75, share, (0.7, 1.4), 40 / 255, 8, torch.Generator().manual_seed(1))
    item = x[:, 0] > 40 / 255
    changed = (out[:, 0] != x[:, 0]) & item
    measured = changed.flatten(1).sum(1) / item.flatten(1).sum(1)  # covered solid pixels, counted independently
    hit = covered > 0
    assert 0.5 < float(hit.float().mean()) <= 0.9  # about 75% of the images, those with a fitting placement
    assert bool(((measured[hit] >= share[0] - 1e-6) & (measured[hit] <= share[1] + 1e-6)).all())
    assert torch.allclose(measured, covered)
    assert torch.equal(out[~hit], x[~hit])  # the others are untouched


def test_scene_like_augmentation_is_deterministic_and_keeps_labels():
    from hybridvision.classify.augment import Augment
    from hybridvision.classify.config import AugConfig

    cfg = AugConfig(item_scale=(0.75, 1.3), occlude_prob=0.5, randaug_n=0, erase_prob=0, hflip=0, crop="none")
    aug = Augment(cfg, (0.286,), (0.353,), 10)
    images = (block_items(16) * 255).to(torch.uint8)
    labels = torch.arange(16) % 10
    a, la = aug(images, labels, torch.Generator().manual_seed(3))
    b, lb = aug(images, labels, torch.Generator().manual_seed(3))
    c, _ = aug(images, labels, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and torch.equal(la, labels) and torch.equal(lb, labels)
    assert not torch.equal(a, c)
    plain = Augment(AugConfig(randaug_n=0, erase_prob=0, hflip=0, crop="none"), (0.286,), (0.353,), 10)
    assert torch.equal(plain(images, labels, torch.Generator().manual_seed(3))[0], aug.normalize(images))
    with pytest.raises(ConfigError, match="aug.occlude_share must be"):
        AugConfig(occlude_share=(0.5, 0.2))


def test_zoom_scales_and_cuts_items_by_the_frame():
    x = torch.zeros(8, 1, 32, 32)
    x[:, :, 8:24, 8:24] = 1.0  # 256 solid pixels, centred
    big = zoom(x, (1.5, 1.5), torch.Generator().manual_seed(0))
    small = zoom(x, (0.5, 0.5), torch.Generator().manual_seed(0))
    area = lambda t: (t[:, 0] > 0.5).flatten(1).sum(1).float()  # noqa: E731
    assert bool((area(small) - 64).abs().le(8).all())  # a quarter of the area, inside the frame
    assert bool((area(big) > 256 * 1.3).all() & (area(big) <= 576).all())  # larger; up to 2.25x, less where cut


# ---- The levers in training, evaluation and prediction


def test_levers_train_and_the_vote_scores_what_it_predicts(tmp_path, capsys):
    """A tiny run with Lovász + the region term learns; ``seg eval --infer.region_vote`` scores exactly the voted
    labels (counted here from the model's probabilities and the scenes' ink); ``seg predict`` draws them."""
    from test_seg_train import tiny_flags

    from hybridvision.cli.main import main
    from hybridvision.seg.data import load_split
    from hybridvision.seg.evaluate import saved_model, saved_train_config
    from hybridvision.seg.infer import SegInput, predict
    from hybridvision.seg.metrics import scores

    flags = tiny_flags(tmp_path / "data", tmp_path) | {"model": "ascan_test", "epochs": "2", "eval_every": "2"}
    flags |= {"loss.kind": "ce_lovasz", "loss.weight": "0.5", "loss.region_weight": "0.5"}
    assert main(["seg", "train", *(t for k, v in flags.items() for t in (f"--{k}", v))]) == 0
    run = tmp_path / "run"
    vote_flags = ["--infer.region_vote", "mass", "--infer.vote_minority", "0.2"]
    assert main(["seg", "eval", str(run), "--weights", "model", *vote_flags]) == 0
    saved = json.loads((run / "seg_eval.json").read_text())
    assert saved["infer"]["region_vote"] == "mass" and saved["infer"]["vote_minority"] == 0.2

    cfg = saved_train_config(run)
    assert cfg.loss == SegLossConfig(kind="ce_lovasz", weight=0.5, region_weight=0.5)
    model, _ = saved_model(run, use_ema=False)
    split = load_split(cfg.data, train=False)
    images, masks, _, _ = next(split.batches([list(range(len(split)))]))
    infer = InferConfig(region_vote="mass", vote_minority=0.2)
    x = SegInput.of(cfg.img_size, cfg.data.mean, cfg.data.std).normalize(images)
    probs = predict(model.eval(), x, infer, len(split.classes), cfg.img_size)
    voted = vote(probs, ink_regions(images, cfg.data.scenes.threshold), "mass", minority=0.2)
    assert not torch.equal(voted, probs.argmax(1))  # the vote changed labels, so the scores can tell them apart
    expected = scores(confusion_matrix(voted, masks, len(split.classes)))["miou"]
    assert saved["results"]["model"]["miou"] == pytest.approx(expected, abs=1e-6)
    capsys.readouterr()
    out = tmp_path / "scenes"
    assert main(["seg", "predict", "--scenes", "2", "--run", str(run), "--out", str(out), *vote_flags]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["scene_000.png", "scene_001.png"]


def test_vote_on_a_folder_data_set_is_one_line(tmp_path, capsys):
    from hybridvision.cli.main import main

    assert main(["seg", "train", "--data.dataset", "ade20k", "--data.channels", "3", "--data.mean", "0.5,0.5,0.5",
                 "--data.std", "0.2,0.2,0.2", "--infer.region_vote", "count", "--dry-run"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "needs the scenes' ink" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
