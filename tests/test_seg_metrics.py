"""mIoU, per-class IoU and pixel accuracy against a confusion matrix computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from hybridvision.seg.metrics import LabelError, binned_accuracy, confusion_matrix, iou_per_class, scores

# 3 classes; 255 = ignore. Rows of the hand-made matrix: true class; columns: predicted class.
TARGET = torch.tensor([[0, 0, 0, 1], [1, 1, 2, 255], [2, 2, 0, 255]])
PRED = torch.tensor([[0, 0, 1, 1], [1, 2, 2, 0], [2, 0, 0, 2]])
BY_HAND = torch.tensor(
    [
        [3, 1, 0],  # class 0: 3 right, 1 taken for class 1
        [0, 2, 1],  # class 1: 2 right, 1 taken for class 2
        [1, 0, 2],  # class 2: 2 right, 1 taken for class 0; the two 255 pixels do not count
    ]
)


def test_confusion_matrix_matches_the_hand_count():
    assert torch.equal(confusion_matrix(PRED, TARGET, 3), BY_HAND)


def test_iou_miou_and_accuracies_by_hand():
    conf = confusion_matrix(PRED, TARGET, 3)
    # IoU = TP / (TP + FP + FN): class 0: 3 / (3 + 1 + 1); class 1: 2 / (2 + 1 + 1); class 2: 2 / (2 + 1 + 1).
    assert iou_per_class(conf) == pytest.approx([60.0, 50.0, 50.0])
    s = scores(conf)
    assert s["miou"] == pytest.approx((60 + 50 + 50) / 3)
    assert s["aacc"] == pytest.approx(100 * 7 / 10)  # 7 of the 10 labelled pixels
    assert s["macc"] == pytest.approx(100 * (3 / 4 + 2 / 3 + 2 / 3) / 3)


def test_a_class_neither_labelled_nor_predicted_is_left_out_of_the_mean():
    conf = torch.zeros(4, 4, dtype=torch.int64)
    conf[:3, :3] = BY_HAND
    iou = iou_per_class(conf)
    assert math.isnan(iou[3]) and scores(conf)["miou"] == pytest.approx((60 + 50 + 50) / 3)
    conf[3, 0] = 5  # labelled, never found: IoU 0 counts
    assert iou_per_class(conf)[3] == 0.0 and scores(conf)["miou"] < 40


def test_a_label_outside_the_classes_is_an_error_naming_the_fix():
    with pytest.raises(LabelError, match=r"label 7, outside the 3 classes .*data.num_classes"):
        confusion_matrix(PRED, torch.full_like(TARGET, 7), 3)


def test_binned_accuracy_counts_each_bin_and_closes_the_last():
    values = torch.tensor([0.0, 0.2, 0.5, 0.7, 1.0, 1.0])
    right = torch.tensor([True, False, True, True, False, True])
    valid = torch.tensor([True, True, True, True, True, False])
    rows = binned_accuracy(values, right, valid, (0.0, 0.5, 1.0))
    assert rows == [
        {"bin": [0.0, 0.5], "items": 2, "right": 50.0},
        {"bin": [0.5, 1.0], "items": 3, "right": pytest.approx(200 / 3)},  # 1.0 lands in the last bin
    ]
    assert binned_accuracy(values, right, valid, (2.0, 3.0))[0]["right"] is None
