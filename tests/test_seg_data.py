"""Segmentation data: Fashion-MNIST scenes (deterministic, labelled by ink), ADE20K folders written by the tests
(reduce-zero-label, padding, clear errors), and whole / sliding-window / test-time-augmented inference."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_data import write_fmnist_like

from hybridvision.data import DataError, load_idx_split, scenes
from hybridvision.data.scenes import SCENE_CLASSES, SceneConfig, edge_ring
from hybridvision.seg.config import InferConfig, SegDataConfig
from hybridvision.seg.data import load_split
from hybridvision.seg.infer import predict, window_starts

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCENES = SceneConfig(
    canvas=48, scale=(0.8, 1.5), threshold=100, train_scenes=40, eval_scenes=12, val_scenes=12, holdout=64
)


def scene_data(root: Path, **kw) -> SegDataConfig:
    return SegDataConfig(root=str(write_fmnist_like(root)), **({"scenes": SCENES} | kw))


def first_batch(split, n: int):
    return next(split.batches([list(range(n))]))


def test_scenes_are_deterministic_and_labelled_by_ink(tmp_path):
    cfg = scene_data(tmp_path)
    split = load_split(cfg, train=True)
    images, masks, sizes, skipped = first_batch(split, 8)
    assert images.shape == (8, 1, 48, 48) and images.dtype == masks.dtype == torch.uint8 and not skipped
    assert torch.equal(sizes, torch.tensor([[48, 48]] * 8)) and len(split) == 40
    again = first_batch(load_split(cfg, train=True), 8)
    assert torch.equal(again[0], images) and torch.equal(again[1], masks)
    inked = images[:, 0] > SCENES.threshold
    assert (inked == (masks > 0)).float().mean() > 0.995  # item pixels are the inked ones (up to rounding)
    assert int(masks.max()) < len(SCENE_CLASSES) == 11
    test = first_batch(load_split(cfg, train=False), 8)
    assert not torch.equal(test[0], images) and len(load_split(cfg, train=False)) == 12


def test_validation_scenes_draw_only_held_out_training_items(tmp_path):
    """train / val / test scenes: val from ``holdout`` training items that no training scene ever draws, test from
    the test items; the same hold-out for every task that asks (seeded), another with another seed."""
    cfg = scene_data(tmp_path)
    all_train, _ = load_idx_split(cfg.root, "train")
    test_items, _ = load_idx_split(cfg.root, "t10k")
    split = {name: scenes.scene_items(cfg.root, name, SCENES) for name in ("train", "val", "test")}
    assert len(split["val"].images) == 64 and len(split["train"].images) == len(all_train) - 64
    flat = {k: {bytes(x.numpy()) for x in v.images} for k, v in split.items()}
    assert not flat["train"] & flat["val"] and flat["train"] | flat["val"] == {bytes(x.numpy()) for x in all_train}
    assert torch.equal(split["test"].images, test_items)
    assert len({v.stream for v in split.values()}) == 3 and split["val"].scenes == 12
    again = scenes.scene_items(cfg.root, "val", SCENES)
    other = scenes.scene_items(cfg.root, "val", dataclasses.replace(SCENES, seed=1))
    assert torch.equal(again.images, split["val"].images) and not torch.equal(other.images, split["val"].images)
    assert torch.equal(scenes.scene_items(cfg.root, "t10k", SCENES).images, test_items)  # older configs' name
    val, test = (
        first_batch(load_split(scene_data(tmp_path, eval_split=s), train=False), 4)[0] for s in ("val", "test")
    )
    assert not torch.equal(val, test)
    with pytest.raises(DataError, match="no split 'valid'; use one of train, val, test"):
        scenes.scene_items(cfg.root, "valid", SCENES)
    with pytest.raises(DataError, match=r"holdout \(300\) must be fewer than the 256 training items"):
        scenes.scene_items(cfg.root, "train", dataclasses.replace(SCENES, holdout=300))


def test_scene_edges_can_be_ignored(tmp_path):
    plain = first_batch(load_split(scene_data(tmp_path), train=True), 4)[1]
    ringed_cfg = scene_data(tmp_path, scenes=dataclasses.replace(SCENES, edge_ignore=True))
    ringed = first_batch(load_split(ringed_cfg, train=True), 4)[1]
    ring = edge_ring(plain)
    assert ring.any() and torch.equal(ringed, plain.masked_fill(ring, 255))


def scene_slots(root: Path, count: int = 16):
    """Rendered labels, each slot's ink and class, and the slot owning each pixel, of ``count`` training scenes."""
    cfg = scene_data(root)
    items, labels = load_idx_split(cfg.root, cfg.train_split)
    table = scenes.scene_table(SCENES, count, len(items), stream=0)
    index = torch.arange(count)
    _, mask = scenes.render(SCENES, table, items, labels, index)
    ink = scenes.item_ink(SCENES, table, items, index)
    return mask.long(), ink, labels[table.items[index]], scenes.owners(ink, SCENES.threshold)


def test_slot_ownership_reproduces_the_rendered_labels(tmp_path):
    mask, ink, classes, own = scene_slots(tmp_path)
    assert int(own.sum(1).max()) == 1  # one owner per pixel at most
    assert ((ink > SCENES.threshold) & ~own).flatten(2).any(2).any()  # some items are covered by later ones
    assert torch.equal(scenes.paint(own, classes), mask)
    assert not torch.equal(scenes.paint(own, classes.roll(1, dims=1)), mask)  # each slot painted with another's class
    share = scenes.visible_share(ink, SCENES.threshold)
    inked = (ink > SCENES.threshold).flatten(2).any(2)
    last = inked.long().cumsum(1) == inked.long().sum(1, keepdim=True)  # at or after the last inked slot
    assert torch.all(share[inked & last] == 1) and share.min() >= 0 and (share[inked] < 1).any()


def test_error_breakdown_separates_recognition_from_edges(tmp_path):
    path = BENCHMARKS / "analysis" / "seg_error_breakdown.py"
    spec = importlib.util.spec_from_file_location("seg_error_breakdown", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    mask, ink, classes, own = scene_slots(tmp_path)
    perfect = bench.breakdown(mask, mask, own, scenes.visible_share(ink, SCENES.threshold), classes)
    assert perfect["items_right"] == 100 and all(r["miou"] == 100 for r in perfect["rows"].values())
    pred = mask.clone()
    pred[own[:, 0]] = (classes[:, 0, None, None].expand_as(pred)[own[:, 0]] + 1) % 10 + 1  # slot 0: wrong class
    split = bench.breakdown(pred, mask, own, scenes.visible_share(ink, SCENES.threshold), classes)
    rows = split["rows"]
    assert rows["true class on predicted foreground"]["miou"] == 100  # the foreground is still right
    assert rows["model"]["miou"] == pytest.approx(rows["majority class with perfect edges"]["miou"])
    assert rows["model"]["miou"] < 100 and split["items_right"] < 100
    assert split["wrong_item_pixels_in_items_right"] == 0  # every wrong pixel is in a wrong item


def write_ade(root: Path, sizes=((30, 40), (36, 28), (32, 32)), split: str = "training") -> Path:
    """An ADE20K-style folder: JPEG images and label PNGs (0 = other, 1..3 = classes) of the given sizes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder in ("images", "annotations"):
        (root / folder / split).mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / split / f"{i:03d}.jpg")
        label = np.zeros((h, w), np.uint8)
        label[:, w // 3 :] = 1 + i % 3
        label[: h // 2, : w // 3] = 3
        Image.fromarray(label).save(root / "annotations" / split / f"{i:03d}.png")
    return root


def ade_config(root: Path, **kw) -> SegDataConfig:
    kw = (
        dict(
            dataset="ade20k",
            root=str(root),
            train_split="training",
            channels=3,
            mean=(0.5,) * 3,
            std=(0.25,) * 3,
            num_classes=3,
        )
        | kw
    )
    return SegDataConfig(**kw)


def test_ade_folders_reduce_zero_label_and_pad(tmp_path):
    split = load_split(ade_config(write_ade(tmp_path)), train=True)
    assert split.classes == ("class_0", "class_1", "class_2") and len(split) == 3
    images, masks, sizes, skipped = first_batch(split, 3)
    assert images.shape == (3, 3, 36, 40) and sizes.tolist() == [[30, 40], [36, 28], [32, 32]] and not skipped
    assert masks[0, 0, 0] == 2 and masks[0, 20, 0] == 255  # 3 -> class 2; 0 ("other") -> ignored
    assert masks[0, 0, 39] == 0 and (masks[1, :, 28:] == 255).all()  # 1 -> class 0; batch padding ignored
    assert load_split(ade_config(tmp_path, num_classes=0), train=True).classes[:2] == ("wall", "building")


def test_ade_errors_name_the_file_and_the_fix(tmp_path):
    from PIL import Image

    root = write_ade(tmp_path / "a")
    (root / "annotations" / "training" / "001.png").unlink()
    with pytest.raises(DataError, match=r"no annotation, e.g. .*001.png is missing"):
        load_split(ade_config(root), train=True)
    root = write_ade(tmp_path / "b")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "annotations" / "training" / "000.png")
    with pytest.raises(DataError, match=r"000.png is 10x10 but its image .* is 40x30"):
        first_batch(load_split(ade_config(root), train=True), 1)
    with pytest.raises(
        DataError, match=r"label 2, out of range for 2 classes after reduce_zero_label.*data.num_classes"
    ):
        first_batch(load_split(ade_config(write_ade(tmp_path / "c"), num_classes=2), train=True), 1)
    with pytest.raises(DataError, match="images/validation"):
        load_split(ade_config(tmp_path / "c", eval_split="validation"), train=False)


class PixelNet(torch.nn.Module):
    """Per-pixel scores from the pixel's own values: the same in a window as in the whole image."""

    stride = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)


def test_sliding_windows_agree_with_the_whole_image_and_flip_averages():
    model, x = PixelNet(), torch.randn(2, 3, 40, 56)
    whole = predict(model, x, InferConfig(), 4, crop=16)
    slid = predict(model, x, InferConfig(mode="slide", crop=16, stride=10), 4, crop=16)
    torch.testing.assert_close(slid, whole)
    flipped = predict(model, x, InferConfig(flip=True), 4, crop=16)
    torch.testing.assert_close(flipped, whole)  # a per-pixel model is flip-equivariant
    multi = predict(model, x, InferConfig(ratios=(0.5, 1.0, 1.5), scale=(80, 40)), 4, crop=16)
    assert multi.shape == (2, 4, 40, 56) and torch.allclose(multi.sum(1), torch.ones(2, 40, 56))
    assert window_starts(56, 16, 10) == [0, 10, 20, 30, 40] and window_starts(12, 16, 10) == [0]
