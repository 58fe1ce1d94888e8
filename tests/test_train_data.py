"""Data: idx files, image folders with unreadable files, and an order that any process count reproduces."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from synthetic_data import class_images, write_fmnist_like, write_idx, write_image_folder

from hybridvision.classify.config import DataConfig
from hybridvision.classify.data import load_split
from hybridvision.data import DataError, fit_size, read_idx
from hybridvision.engine.order import OrderError, epoch_order, eval_batches, micro_batches, steps_per_epoch


@pytest.mark.parametrize("compress", [True, False])
def test_idx_roundtrip(tmp_path, compress):
    images, labels = class_images(7, seed=3)
    path = write_idx(tmp_path / ("x.gz" if compress else "x"), images, compress=compress)
    assert np.array_equal(read_idx(path), images)
    assert np.array_equal(read_idx(write_idx(tmp_path / "y.gz", labels)), labels)


def test_idx_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="magic"):
        read_idx(bad)
    good = write_idx(tmp_path / "t", np.zeros((4, 5, 5), np.uint8), compress=False)
    good.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(good)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_split(DataConfig(root=str(tmp_path / "nowhere")), "train", 32)


def test_fashion_mnist_layout_and_padding(tmp_path):
    root = write_fmnist_like(tmp_path, train=20, test=10)
    split = load_split(DataConfig(root=str(root)), "train", 32, subset=12)
    assert split.images.shape == (12, 1, 32, 32) and split.images.dtype == torch.uint8
    assert split.num_classes == 10 and len(split) == 12
    raw, _ = class_images(20, seed=0)
    assert torch.equal(split.images[:, 0, 2:30, 2:30], torch.from_numpy(raw[:12]))  # centred, zero border
    assert split.images[:, :, :2].sum() == 0
    assert fit_size(torch.full((2, 1, 40, 40), 7, dtype=torch.uint8), 32).shape == (2, 1, 32, 32)


def test_installed_fashion_mnist_when_present():
    root = DataConfig().root
    try:
        split = load_split(DataConfig(), "t10k", 32, subset=100)
    except DataError:
        pytest.skip(f"Fashion-MNIST is not installed at {root}")
    assert split.images.shape == (100, 1, 32, 32) and int(split.labels.max()) <= 9


def test_image_folder_skips_and_counts_unreadable_files(tmp_path):
    root = write_image_folder(tmp_path, per_class=4, classes=3)
    broken = root / "train" / "class_1" / "img_2.jpg"
    broken.write_bytes(b"not a jpeg at all")
    split = load_split(DataConfig(dataset="folder", root=str(root), channels=3), "train", 16)
    assert split.num_classes == 3 and len(split) == 12
    with pytest.warns(UserWarning, match="img_2.jpg"):
        batches = list(split.batches([list(range(6)), list(range(6, 12))]))
    images = torch.cat([b[0] for b in batches])
    assert images.shape == (11, 3, 16, 16) and images.dtype == torch.uint8
    assert [f for b in batches for f in b[2]] == [str(broken)]
    assert torch.cat([b[1] for b in batches]).tolist() == [0] * 4 + [1] * 3 + [2] * 4


def test_order_and_micro_batches():
    a, b = epoch_order(100, seed=1, epoch=2), epoch_order(100, seed=1, epoch=2)
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(100))
    assert not torch.equal(a, epoch_order(100, seed=1, epoch=3))
    chunks = micro_batches(a, step=1, batch_size=8, chunks=2)
    assert chunks == [a[8:12].tolist(), a[12:16].tolist()]
    with pytest.raises(OrderError, match="divisible"):
        micro_batches(a, 0, 10, 4)
    assert steps_per_epoch(100, 32) == 3
    with pytest.raises(OrderError, match="fewer than one batch"):
        steps_per_epoch(10, 32)
    shares = [eval_batches(10, 3, r, 2) for r in range(2)]
    assert sorted(i for s in shares for b in s for i in b) == list(range(10))
