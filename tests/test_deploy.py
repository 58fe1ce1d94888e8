"""The deployable artifact's parts, against oracles: preprocessing (pad / shorter side + centre crop), the record
beside the model, calibration and check images that never overlap, the int8 scores, and OpenVINO's telemetry
declined in code."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hybridvision.export.artifact import Artifact, Preprocess, preprocess_image, read_artifact, write_artifact
from hybridvision.export.calib import calibration_and_check
from hybridvision.export.scoring import Score, Tolerance, score, sqnr_db

GREY = Preprocess((32, 32), 1, (0.5,), (0.25,), "bilinear", "pad")


def test_pad_centres_a_small_image_on_black(tmp_path):
    img = np.full((28, 28), 200, np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    out = preprocess_image(tmp_path / "a.png", GREY)
    assert out.shape == (1, 32, 32) and out.dtype == np.uint8
    assert (out[0, 2:30, 2:30] == 200).all() and out[0, :2].sum() == 0 and out[0, :, 30:].sum() == 0


def test_shorter_side_resize_then_centre_crop(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)  # (H, W, C): left half red, right half blue
    img[:, :20, 0], img[:, 20:, 2] = 255, 255
    Image.fromarray(img).save(tmp_path / "b.png")
    spec = Preprocess((10, 10), 3, (0.0,) * 3, (1.0,) * 3, "nearest", "shorter_side", 1.0)
    out = preprocess_image(tmp_path / "b.png", spec)  # 40x20 -> 20x10, centre 10x10 spans the colour boundary
    assert out.shape == (3, 10, 10)
    assert (out[0, :, :5] == 255).all() and (out[2, :, 5:] == 255).all() and out[1].sum() == 0


def test_normalize_is_the_stated_formula():
    x = np.array([[[[0, 255]]]], np.uint8)  # (1, 1, 1, 2)
    np.testing.assert_allclose(GREY.normalize(x), [[[[-2.0, 2.0]]]])


def test_preprocess_refuses_statistics_of_the_wrong_length():
    with pytest.raises(ValueError, match="one value per input channel"):
        Preprocess((32, 32), 3, (0.5,), (0.25,))


def test_the_record_round_trips_and_names_a_missing_model(tmp_path):
    model_file = tmp_path / "m.onnx"
    model_file.write_bytes(b"x")
    record = Artifact("ascan_nano", "onnx", "int8", "onnxruntime", "m.onnx", GREY, ("a", "b"))
    assert write_artifact(record, model_file) == tmp_path / "m.onnx.json"
    for path in (model_file, tmp_path / "m.onnx.json"):
        assert read_artifact(path) == (record, model_file)
    model_file.unlink()
    with pytest.raises(FileNotFoundError, match="names m.onnx, which is not beside it"):
        read_artifact(tmp_path / "m.onnx.json")
    with pytest.raises(FileNotFoundError, match="no artifact record"):
        read_artifact(tmp_path / "other.onnx")


def test_sqnr_and_scores_against_hand_computed_values():
    ref = np.ones((4, 3))
    assert math.isclose(sqnr_db(ref, ref * 1.1), 20.0)  # noise energy 1% of the signal's
    assert sqnr_db(ref, ref) == math.inf
    ref = np.array([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    got = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])  # first prediction flips
    s = score(ref, got, labels=np.array([0, 1, 0, 0]))
    assert (s.agreement, s.top1_fp32, s.top1) == (0.75, 75.0, 50.0) and s.top1_drop_pp == 25.0
    assert len(s.problems(Tolerance())) == 3  # drop, agreement and SQNR all missed
    assert Score(10, 1.0, 40.0, 90.0, 89.6).problems(Tolerance()) == []


def _folder(root: Path, count: int) -> Path:
    for c in ("shirt", "bag"):
        (root / c).mkdir(parents=True)
    for i in range(count):
        value = np.full((8, 8), i * 10, np.uint8)  # every image distinct
        Image.fromarray(value).save(root / ("shirt" if i % 2 else "bag") / f"{i}.png")
    return root


def test_folder_calibration_and_check_images_never_overlap(tmp_path):
    root = _folder(tmp_path / "imgs", 12)
    spec = Preprocess((8, 8), 1, (0.5,), (0.5,), "nearest", "pad")
    cal, held = calibration_and_check(str(root), spec, ("bag", "shirt"), 7, 100, seed=3)
    assert len(cal.images) == 7 and len(held.images) == 5
    values = lambda s: {int(img[0, 0, 0]) for img in s.images}  # noqa: E731
    assert values(cal).isdisjoint(values(held)) and len(values(cal) | values(held)) == 12
    shirt = [int(img[0, 0, 0]) // 10 % 2 == 1 for img in held.images]  # odd images are shirts
    assert list(held.labels) == [1 if s else 0 for s in shirt]


def test_a_folder_with_unknown_classes_is_scored_without_labels(tmp_path):
    root = _folder(tmp_path / "imgs", 4)
    spec = Preprocess((8, 8), 3, (0.5,) * 3, (0.5,) * 3, "nearest", "pad")
    cal, held = calibration_and_check(str(root), spec, ("class_0", "class_1"), 2, 2)
    assert cal.labels is None and held.images.shape == (2, 3, 8, 8)  # grey repeated to RGB


def test_fashion_mnist_calibrates_on_train_and_checks_on_t10k():
    from hybridvision.data import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_idx_split

    if not Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip("Fashion-MNIST is not installed")
    cal, held = calibration_and_check("fashion-mnist", GREY, FASHION_MNIST_CLASSES, 5, 6)
    assert cal.images.shape == (5, 1, 32, 32) and held.images.shape == (6, 1, 32, 32)
    t10k, labels = load_idx_split(FASHION_MNIST_DIR, "t10k")
    index = np.random.default_rng(0).permutation(len(t10k))[:6]
    assert (held.images[:, :, 2:30, 2:30] == t10k[index].numpy()).all() and (held.labels == labels[index].numpy()).all()


TELEMETRY = """
    import sys
    import torch
    if sys.argv[1] == "off":
        from hybridvision.export.runtimes import telemetry_off
        telemetry_off()
    import openvino as ov
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.randn(1, 3, 8, 8),), sys.argv[2], dynamo=False)
    ov.convert_model(sys.argv[2])
"""


@pytest.mark.parametrize("mode", ["off", "default"])
def test_openvino_telemetry_is_declined_in_code(mode, tmp_path):
    """OpenVINO's tools keep a client id under $HOME/intel once they mean to send; opted out, nothing appears."""
    pytest.importorskip("openvino")
    env = dict(os.environ, HOME=str(tmp_path), PYTHONPATH=os.pathsep.join(sys.path))
    for ci_flag in ("CI", "TF_BUILD", "JENKINS_URL"):  # OpenVINO stays quiet on CI machines; be a user's machine
        env.pop(ci_flag, None)
    script = textwrap.dedent(TELEMETRY)
    proc = subprocess.run(
        [sys.executable, "-c", script, mode, str(tmp_path / "t.onnx")], env=env, capture_output=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    sent = (tmp_path / "intel").exists()
    assert sent == (mode == "default")  # the control shows the check can fail


class _Svd(torch.nn.Module):
    """An operator ONNX has no form for (singular values), to see the failure named."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return torch.linalg.svdvals(x.flatten(2) * self.scale)  # (B, C, H*W) -> (B, C)


def test_a_failed_export_names_the_operator_and_writes_nothing(tmp_path):
    pytest.importorskip("onnxruntime")
    from hybridvision.export.deploy import ExportRequest, export_artifact
    from hybridvision.export.onnx import ExportError

    spec = Preprocess((4, 4), 3, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ExportError, match="linalg_svd.*not supported"):
        export_artifact(_Svd(), tmp_path / "m.onnx", spec, ("a", "b", "c"), "svd", ExportRequest(check=True))
    assert list(tmp_path.iterdir()) == []
