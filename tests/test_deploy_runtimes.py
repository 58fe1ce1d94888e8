"""Exports through every runtime, checked against fp32 PyTorch: every family and attention kind at two input sizes
with a free batch (ONNX, OpenVINO), ExecuTorch/XNNPACK in fp32 and int8, int8 on the Fashion-MNIST-trained
ascan_nano (onnxruntime QDQ, OpenVINO from the QDQ file, PT2E) within the stated accuracy limits, ``predict``,
the loaders shown in docs/deploy.md, and the benchmark's new backends."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hybridvision as hv
from hybridvision.cli.main import main
from hybridvision.data import FASHION_MNIST_DIR, load_idx_split
from hybridvision.export.artifact import preprocess_image, read_artifact
from hybridvision.export.calib import card_preprocess, numbered_labels
from hybridvision.export.deploy import ExportRequest, export_artifact
from hybridvision.export.formats import write_openvino
from hybridvision.export.runtimes import load_runner
from hybridvision.export.scoring import Tolerance

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[1]
NANO = ROOT / "assets" / "fmnist_ascan_nano"
needs_fmnist = pytest.mark.skipif(not Path(FASHION_MNIST_DIR).is_dir(), reason="Fashion-MNIST is not installed")

VARIANTS = {
    "ascan_global": ("ascan_test", {}),
    "ascan_window": ("ascan_test", {"attention": "window", "window_size": 2}),
    "ascan_grid": ("ascan_test", {"attention": "grid", "window_size": 2}),
    "coatnet": ("coatnet_test", {}),
    "efficientmod": ("efficientmod_test", {}),
}


def _export(model, out, request):
    labels = numbered_labels(model.config.num_classes)
    return export_artifact(model, out, card_preprocess(model, labels), labels, "test", request)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_family_and_attention_kind_exports_with_a_free_batch(variant, size, tmp_path):
    """ONNX (checked in onnxruntime at batch 1 and 3) and OpenVINO IR from it, fp32 within 1e-4."""
    pytest.importorskip("openvino")
    name, overrides = VARIANTS[variant]
    torch.manual_seed(0)
    model = hv.create_model(name, img_size=size, **overrides).eval()
    request = ExportRequest("onnx", "fp32", batch=2, dynamic_batch=True, check=True)
    outcome = _export(model, tmp_path / "m.onnx", request)
    assert outcome.max_abs_diff <= 1e-4
    write_openvino(outcome.path, tmp_path / "m.xml")
    run = load_runner(tmp_path / "m.xml", threads=1)
    for batch in (1, 5):
        x = torch.randn(batch, 3, size, size)
        with torch.no_grad():
            want = model(x).numpy()
        np.testing.assert_allclose(run(x.numpy()), want, atol=1e-4, rtol=1e-4)


@needs_fmnist
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_executorch_xnnpack(precision, tmp_path):
    pytest.importorskip("executorch")
    torch.manual_seed(0)
    name = "ascan_test" if precision == "int8" else "efficientmod_test"  # int8: squeeze-excitation, attention
    model = hv.create_model(name, img_size=32).eval()
    if precision == "fp32":  # as bench hands it over: NHWC weights, which XNNPACK's layout pass cannot take
        model = model.to(memory_format=torch.channels_last)
    tol = Tolerance.sqnr_only(15.0)  # random weights
    request = ExportRequest(
        "executorch", precision, 2, True, "fashion-mnist" if precision == "int8" else None, 32, 32, True, tol
    )
    outcome = _export(model, tmp_path / "m.pte", request)
    assert outcome.path.stat().st_size > 0 and read_artifact(outcome.path)[0].runtime == "executorch"
    if precision == "int8":
        assert outcome.score.sqnr_db >= 15.0
        assert load_runner(outcome.path, 1)(np.zeros((17, 3, 32, 32), np.float32)).shape[0] == 17
        return
    assert outcome.max_abs_diff <= 1e-4
    x = torch.randn(17, 3, 32, 32)  # past the 15 images a batch-2 example once left the program room for
    with torch.no_grad():
        np.testing.assert_allclose(load_runner(outcome.path, 1)(x.numpy()), model(x).numpy(), atol=1e-4, rtol=1e-4)
    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(image)
    scope = _run_snippet("executorch", outcome.path, image)
    record = read_artifact(outcome.path)[0]
    x = record.preprocess.normalize(preprocess_image(image, record.preprocess)[None])
    with torch.no_grad():
        assert scope["label"] == record.labels[int(model(torch.from_numpy(x)).argmax())]


# ---- int8 on a trained model: the committed Fashion-MNIST ascan_nano


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    """The trained ascan_nano exported by the command: int8 ONNX (QDQ), OpenVINO int8, PT2E int8."""
    if not Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip("Fashion-MNIST is not installed")
    out = tmp_path_factory.mktemp("nano")
    common = ["--precision", "int8", "--calib", "fashion-mnist", "--check", "--calib-count", "128"]
    common += ["--check-count", "400", "--dynamic-batch", "--batch-size", "16"]
    files = {}
    for fmt, suffix in (("onnx", "onnx"), ("openvino", "xml"), ("pt2", "pt2")):
        if fmt == "openvino" and pytest.importorskip("openvino") is None:
            continue
        files[fmt] = out / f"nano_int8.{suffix}"
        assert main(["export", str(NANO), "--format", fmt, "--out", str(files[fmt])] + common) == 0
    return files


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "pt2"])
def test_int8_keeps_the_trained_models_accuracy(nano, fmt):
    artifact, _ = read_artifact(nano[fmt])
    check = artifact.check
    assert artifact.precision == "int8" and check["images"] == 400
    assert check["top1_fp32"] - check["top1"] <= 0.5 and check["agreement"] >= 0.97 and check["sqnr_db"] >= 15
    assert check["top1_fp32"] > 85  # the record describes the trained model, preprocessed as it was trained
    assert artifact.preprocess.mean == (0.2860,) and artifact.preprocess.resize == "pad"
    assert artifact.labels[0] == "T-shirt/top"


@needs_fmnist
def test_a_missed_int8_limit_fails_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    args = ["export", str(NANO), "--out", str(out), "--precision", "int8", "--calib", "fashion-mnist", "--check"]
    assert main(args + ["--calib-count", "16", "--check-count", "16", "--min-sqnr", "90"]) == 1
    text = capsys.readouterr().out
    assert "int8 check failed" in text and "limit 90" in text and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def t10k_pngs(tmp_path_factory):
    """Six Fashion-MNIST test images as PNG files (28x28 grey), with their labels."""
    images, labels = load_idx_split(FASHION_MNIST_DIR, "t10k")
    folder = tmp_path_factory.mktemp("pngs")
    paths = []
    for i in range(6):
        paths.append(folder / f"{i}.png")
        Image.fromarray(images[i, 0].numpy()).save(paths[-1])
    return paths, labels[:6].numpy()


def _torch_top1(paths):
    """The fp32 PyTorch model's classes for image files, preprocessed as the record says."""
    model = hv.load_model(NANO).eval()
    spec = card_preprocess(model, tuple(json.loads((NANO / "config.json").read_text())["classes"]))
    x = spec.normalize(np.stack([preprocess_image(p, spec) for p in paths]))  # (N, 1, 32, 32)
    with torch.no_grad():
        return model(torch.from_numpy(x)).argmax(1).numpy()


def test_predict_classifies_image_files_like_the_fp32_model(nano, t10k_pngs, tmp_path, capsys):
    paths, _ = t10k_pngs
    out = tmp_path / "pred.json"
    assert main(["predict", str(nano["onnx"]), *map(str, paths), "--top", "2", "--json", str(out)]) == 0
    assert f"{len(paths)}.png" not in capsys.readouterr().out  # (the table names the files given, no others)
    predictions = json.loads(out.read_text())["predictions"]
    labels = read_artifact(nano["onnx"])[0].labels
    got = [labels.index(p["top"][0][0]) for p in predictions]
    assert np.mean(np.array(got) == _torch_top1(paths)) >= 5 / 6
    assert all(len(p["top"]) == 2 and 0 <= p["top"][1][1] <= p["top"][0][1] <= 1 for p in predictions)


def test_predict_names_a_file_without_its_record(tmp_path, capsys):
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    assert main(["predict", str(tmp_path / "m.onnx"), str(tmp_path / "a.png")]) == 2
    assert "no artifact record m.onnx.json" in capsys.readouterr().err


# ---- docs/deploy.md: each runtime's own loader, as shown, gives predict's answer


def _snippets() -> dict[str, str]:
    text = (ROOT / "docs" / "deploy.md").read_text()
    return dict(re.findall(r"<!-- loader: (\w+) -->\s*```python\n(.*?)```", text, flags=re.S))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "torch"])
def test_the_loaders_in_the_docs_run_as_shown(runtime, nano, t10k_pngs):
    fmt = {"onnxruntime": "onnx", "openvino": "openvino", "torch": "pt2"}[runtime]
    paths, _ = t10k_pngs
    scope = _run_snippet(runtime, nano[fmt], paths[0])
    labels = read_artifact(nano[fmt])[0].labels
    assert scope["label"] == labels[_torch_top1(paths[:1])[0]]


def _run_snippet(runtime: str, model: Path, image: Path) -> dict:
    """Run docs/deploy.md's loader for ``runtime`` with MODEL and IMAGE set; returns its variables."""
    scope = {"MODEL": str(model), "IMAGE": str(image)}
    code = _snippets()[runtime]
    exec(compile(code, f"docs/deploy.md ({runtime})", "exec"), scope)  # noqa: S102 - our own documentation
    return scope


def test_the_docs_show_a_loader_for_every_runtime():
    assert set(_snippets()) == {"onnxruntime", "openvino", "executorch", "torch"}


# ---- the benchmark's new backends


def test_bench_times_int8_and_openvino_after_checking_them(tmp_path):
    pytest.importorskip("openvino")
    from hybridvision.bench.config import BenchConfig, quick
    from hybridvision.bench.runner import run_bench

    config = quick(
        BenchConfig(
            models=("efficientmod_test",), img_size=32, batch_sizes=(1, 2), backend="onnxruntime", precision="fp32",
            runtimes=("openvino:fp32", "onnxruntime:int8"), isolate=False, roofline=False, calib_count=32,
            threads=1, int8_min_sqnr_db=10.0, calib=str(_image_folder(tmp_path)),
        )
    )  # fmt: skip
    result = run_bench(config)
    seen = {(r["backend"], r["precision"]) for r in result.rows if r["status"] == "ok"}
    assert seen == {("onnxruntime", "fp32"), ("openvino", "fp32"), ("onnxruntime", "int8")}, result.notes
    openvino = [r for r in result.rows if r["backend"] == "openvino"]
    assert all(r["parity_max_abs_diff"] <= 1e-4 and r["layout"] == "nchw" for r in openvino)
    assert any("onnxruntime int8 checked against fp32" in n for n in result.notes)


def _image_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = root / "imgs"
    folder.mkdir()
    for i in range(70):  # smooth random images: calibration and check images with structure
        base = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
        Image.fromarray(base).resize((40, 40), Image.BILINEAR).save(folder / f"{i}.png")
    return folder


def test_bench_config_states_what_int8_needs():
    from hybridvision.bench.config import BenchConfig
    from hybridvision.config import ConfigError

    with pytest.raises(ConfigError, match="PT2E int8.*--compile"):
        BenchConfig(models=("x",), precision="int8")
    with pytest.raises(ConfigError, match="fp32 or int8"):
        BenchConfig(models=("x",), backend="openvino", precision="bf16")
    with pytest.raises(ConfigError, match="backend:precision"):
        BenchConfig(models=("x",), runtimes=("openvino",))
    assert ("executorch", "int8") in BenchConfig(runtimes=("all",)).runtime_pairs()
