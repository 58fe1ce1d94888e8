"""The bad-input table: for each command, inputs a user can get wrong, each giving either the right result or a
non-zero exit with one line on stderr naming the input and the fix; never a traceback, and no file that existed
before changes. Then the defects behind the rows, tested where they live (image reading, output names, opsets,
the classifier folder, the study's dry run, running out of memory).

Everything runs in-process through ``hybridvision.cli.main.main`` on one tiny segmentation run, one tiny
diffusion run and one tiny classifier, made once for the module.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import test_diffusion_unet
import torch
import yaml
from synthetic_data import write_fmnist_like
from test_diffusion_fid import save_classifier

from hybridvision.cli.main import main
from hybridvision.data import ImageError, decode_image, read_image
from hybridvision.models.contract import InputError

dm = test_diffusion_unet.dm  # registers the denoisers for this module, and removes them afterwards


# ---- What the rows run against


@pytest.fixture(scope="module")
def world(dm, tmp_path_factory) -> dict[str, Path]:
    """Fashion-MNIST-like data, a finished segmentation run, a finished diffusion run and a classifier."""
    root = tmp_path_factory.mktemp("world")
    data = write_fmnist_like(root / "data", train=64, test=32)
    clf = save_classifier(root / "clf")
    common = ["--out_dir", str(root / "runs"), "--threads", "1", "--budget_minutes", "0", "--epochs", "1"]
    common += ["--progress", "false", "--tensorboard", "false", "--data.root", str(data)]
    diffusion = ["--model", "ascan_unet_test", "--img_size", "16", "--batch_size", "16", "--max_steps", "2"]
    diffusion += ["--eval_batch_size", "20", "--amp", "off", "--classifier", str(clf), "--eval_samples", "10"]
    diffusion += ["--val_images", "16", "--sample.sampler", "ddim", "--sample.steps", "2", "--run_name", "diff"]
    assert main(["diffusion", "train", *common, *diffusion]) == 0
    seg = ["--model", "ascan_test", "--img_size", "32", "--batch_size", "8", "--eval_batch_size", "8"]
    seg += ["--head.channels", "16", "--head.aux_channels", "8", "--head.pool_scales", "1,2", "--run_name", "seg"]
    seg += [
        "--data.train_subset",
        "8",
        "--data.eval_subset",
        "8",
        "--data.scenes.canvas",
        "48",
        "--data.scenes.holdout",
        "16",
    ]
    assert main(["seg", "train", *common, *seg]) == 0
    return {"data": data, "clf": clf, "seg": root / "runs" / "seg", "diff": root / "runs" / "diff"}


@pytest.fixture(scope="module")
def det_run(tmp_path_factory) -> Path:
    """A detection run of one step on a tiny COCO folder (RGB, category ids 3 and 7): the det rows' run."""
    from hybridvision.vision_ops import import_torchvision

    try:  # not find_spec: the diffusion rows' torchvision guard may hide it from find_spec in this process
        import_torchvision()
        import pycocotools  # noqa: F401
    except ImportError:
        pytest.skip("the det extra (torchvision, pycocotools) is not installed")
    from test_det import make_coco

    root = tmp_path_factory.mktemp("det")
    coco = make_coco(root / "coco")
    argv = ["det", "train", "--model", "ascan_test", "--data.dataset", "coco", "--data.root", str(coco)]
    argv += ["--data.channels", "3", "--data.mean", "0.5,0.5,0.5", "--data.std", "0.25,0.25,0.25"]
    argv += ["--detector.fpn_channels", "16", "--detector.rpn_top_n", "50,20", "--detector.box_samples", "16"]
    argv += ["--detector.detections", "20", "--epochs", "1", "--max_steps", "1", "--batch_size", "2"]
    argv += ["--eval_batch_size", "4", "--budget_minutes", "0", "--out_dir", str(root / "runs"), "--run_name", "det"]
    argv += ["--progress", "false", "--tensorboard", "false", "--amp", "off", "--threads", "1"]
    assert main(argv) == 0
    return root / "runs" / "det"


def save(path: Path, image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def image_kinds(folder: Path) -> Path:
    """One file of every kind PIL hands us: 16-bit grey, palette, CMYK, 1-bit, LA, RGBA, 1x1, in sub-folders."""
    from PIL import Image

    ramp = (np.arange(40 * 48).reshape(40, 48) * 30).astype(np.uint16)  # 0 .. 57570: most of the 16-bit range
    save(folder / "a" / "sixteen.png", Image.fromarray(ramp))
    palette = Image.new("P", (40, 40), 3)
    palette.putpalette([0, 0, 0] * 3 + [10, 200, 30])  # entry 3 is the colour every pixel takes
    save(folder / "a" / "photo.png", palette)
    save(folder / "b" / "photo.png", Image.new("1", (33, 20), 1))
    save(folder / "photo.jpg", Image.new("CMYK", (40, 40), (10, 200, 30, 0)))
    save(folder / "la.png", Image.new("LA", (24, 24), (100, 50)))
    save(folder / "rgba.png", Image.new("RGBA", (24, 24), (100, 50, 20, 128)))
    save(folder / "tiny.png", Image.new("L", (1, 1), 7))
    return folder


def huge(path: Path) -> Path:
    from PIL import Image

    return save(path, Image.new("RGB", (4000, 3000), (200, 9, 9)))


def truncated(path: Path) -> Path:
    from PIL import Image

    save(path, Image.new("RGB", (64, 64), (90, 20, 200)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def written(*names: str) -> Callable[[Path], None]:
    """A check that ``tmp/out`` holds exactly these files."""

    def check(tmp: Path) -> None:
        found = sorted(str(p.relative_to(tmp / "out")) for p in (tmp / "out").rglob("*") if p.is_file())
        assert found == sorted(names)

    return check


def inputs(tmp: Path) -> Path:
    return image_kinds(tmp / "in")


def onnx_opset(expected: int) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        onnx = pytest.importorskip("onnx")
        model = onnx.load(str(tmp / "m.onnx"))
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [expected]

    return check


def jpeg(tmp: Path) -> None:
    assert (tmp / "grid.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG's magic, not PNG's


@dataclass
class Case:
    """One row: argv (``{seg}``, ``{diff}``, ``{clf}``, ``{data}``, ``{tmp}`` filled in), files to make first, and
    either an exit code with the pattern its one stderr line matches, or a check of the result (exit 0)."""

    argv: str
    error: str = ""  # regex the stderr line matches; "" = the command succeeds
    setup: Callable[[Path], object] = lambda tmp: None
    check: Callable[[Path], None] = lambda tmp: None
    lines: int = 1  # stderr lines of an error
    onnx: bool = False  # needs onnx and onnxruntime
    replaces: tuple[str, ...] = ()  # files below tmp the command is asked to replace (their checksums may change)
    id: str = field(default="")


KINDS = ("a/photo_seg.png", "a/sixteen_seg.png", "b/photo_seg.png", "la_seg.png", "photo_seg.png", "rgba_seg.png")
KINDS += ("tiny_seg.png",)  # one overlay per input: seven images, seven distinct names

CASES = [
    # info: sizes below the stride, zero, negative
    Case("info ascan_nano --img-size 8", r"img_size 8 is not a positive multiple of 16.*sizes: 16 ", id="info-size-8"),
    Case("info ascan_nano --img-size 0", r"img_size 0 is not a positive multiple of 16", id="info-size-0"),
    Case("info ascan_nano --img-size -32", r"img_size -32 is not a positive multiple of 16", id="info-size-neg"),
    Case("info ascan_test --img-size 40", r"img_size 40 .*Nearest valid sizes: 32 or 64", id="info-size-40"),
    Case("info ascan_nano --img-size 48", id="info-size-48"),
    # bench: the same sizes fail before anything is measured
    Case("bench ascan_nano --quick --img-size 8", r"img_size 8 is not a positive multiple of 16", id="bench-size-8"),
    Case("bench coatnet_test --quick --img-size 0", r"img_size must be positive, got 0", id="bench-size-0"),
    Case("bench coatnet_test --quick --batch-sizes 0", r"batch_sizes must be positive", id="bench-batch-0"),
    Case("info nosuch", r"unknown model 'nosuch'", id="info-unknown"),
    # export: opsets no exporter writes, bad sizes, a directory for --out
    Case("export coatnet_test --out {tmp}/m.onnx --opset 5", r"opset 5 cannot be written.*7\.\.17", id="opset-5"),
    Case("export coatnet_test --out {tmp}/m.onnx --opset 14 --exporter dynamo", r"opset 14 .* dynamo", id="opset-dyn"),
    Case("export coatnet_test --out {tmp}/m.onnx --opset 19 --exporter legacy", r"opset 19 .* legacy", id="opset-leg"),
    Case("export coatnet_test --out {tmp}/m.onnx --opset 17", check=onnx_opset(17), onnx=True, id="opset-17"),
    Case("export coatnet_test --out {tmp}", r"--out .* is a directory; give a file name", id="export-out-dir"),
    Case(
        "export coatnet_test --out {tmp}/m.onnx --pretrained {tmp}/no", r"'.*no' does not exist", id="export-no-weights"
    ),
    Case(
        "export coatnet_test --out {tmp}/m.onnx --img-size 20",
        r"img_size 20 .*Nearest valid sizes: 32 ",
        id="export-size-20",
    ),
    Case("export coatnet_test --out {tmp}/m.onnx --img-size 0", r"img_size 0 is not a positive", id="export-size-0"),
    Case("export coatnet_test --out {tmp}/m.onnx --batch-size 0", r"--batch-size must be >= 1", id="export-batch-0"),
    Case("export coatnet_test --out {tmp}/m.onnx --batch-size -2", r"--batch-size must be >= 1", id="export-batch-neg"),
    # generate: guidance scales, counts, output names, prompt files, run folders
    Case("generate {diff} --cfg inf --out {tmp}/g.png", r"--cfg must be a finite guidance scale", id="cfg-inf"),
    Case("generate {diff} --cfg nan --out {tmp}/g.png", r"--cfg must be a finite guidance scale", id="cfg-nan"),
    Case("generate {diff} --cfg=-1 --out {tmp}/g.png", r"--cfg must be a finite guidance scale", id="cfg-neg"),
    Case("generate {diff} --n 0", r"--n must be >= 1, got 0", id="n-0"),
    Case("generate {diff} --steps 0", r"--steps must be >= 1, got 0", id="steps-0"),
    Case("generate {diff} --out {tmp}", r"--out .* is a directory; give a file name", id="generate-out-dir"),
    Case("generate {diff} --out {tmp}/g.tiff", r"g\.tiff has suffix '\.tiff'; name .* \.png", id="suffix-tiff"),
    Case("generate {diff} --out {tmp}/grid", r"grid has no suffix; name .* \.png", id="suffix-none"),
    Case("generate {diff} --prompts-file {tmp}", r"prompts file .* is a directory", id="prompts-dir"),
    Case("generate {diff} --prompts-file {tmp}/no.txt", r"prompts file .*no\.txt does not exist", id="prompts-none"),
    Case(
        "generate {tmp}/nothing --out {tmp}/g.png",
        r"nothing is neither a run folder \(config.yaml, model.json\) nor a saved model",
        id="generate-no-run",
    ),
    Case("generate {diff} --class 12 --out {tmp}/g.png", r"class 12 is out of range", id="class-12"),
    Case("generate {seg} --out {tmp}/g.png", r"seg is a segmentation run, not a diffusion run", id="generate-seg-run"),
    Case(
        "generate {diff} --class 1 --n 1 --steps 1 --sampler euler --out {tmp}/grid.jpg", check=jpeg, id="jpg-is-jpeg"
    ),
    # diffusion eval: a --classifier folder that holds no classifier
    Case(
        "diffusion eval {diff} --classifier {diff}/final --data.root {data}",
        r"final holds a diffusion model \(ascan_unet_test\), not a classifier: --classifier takes",
        id="classifier-diffusion",
    ),
    Case(
        "diffusion eval {diff} --classifier {seg}/final --data.root {data}",
        r"holds a segmentation model \(upernet_ascan_test\), not a classifier",
        id="classifier-seg",
    ),
    Case("diffusion eval {diff} --classifier {tmp}/none", r"no classifier at .*none .*shipped", id="classifier-none"),
    # seg predict: missing paths, non-finite settings, --out a file, no run
    Case("seg predict {tmp}/no.png --run {seg}", r"no\.png does not exist; pass image files", id="predict-missing"),
    Case(
        "seg predict {tmp} --run {seg} --infer.ratios 1,inf",
        r"infer.ratios: expected a finite number, got 'inf'",
        id="ratio-inf",
    ),
    Case("seg predict {tmp} --run {seg} --alpha nan", r"alpha: expected a finite number, got 'nan'", id="alpha-nan"),
    Case(
        "seg predict {tmp}/j.png --run {seg} --out {tmp}/j.png",
        r"--out .*j\.png is a file; give a folder",
        setup=lambda tmp: huge(tmp / "j.png"),
        id="predict-out-file",
    ),
    Case(
        "seg predict {tmp}/in --run {tmp}/none",
        r"none is not a run folder; pass a segmentation run directory",
        setup=inputs,
        id="predict-no-run",
    ),
    # seg train: crops below the stride, ADE20K with the scenes' image settings
    Case("seg train --img_size 8 --dry-run", r"img_size 8 is not a positive multiple of 16.*ascan_nano", id="seg-8"),
    Case("seg train --img_size 40 --dry-run", r"img_size 40 .*Nearest valid sizes: 32 or 48", id="seg-40"),
    Case("seg train --data.dataset ade20k --dry-run", r"ade20k .* as grey: set --data.channels 3", id="ade-grey"),
]


def blank(path: Path) -> Path:
    from PIL import Image

    return save(path, Image.new("L", (2, 2), 9))


def overlay_of_before(*names: str) -> Callable[[Path], object]:
    """The image kinds, and a file in ``tmp/out`` under each name, as an earlier run would have left it."""

    def setup(tmp: Path) -> None:
        inputs(tmp)
        for name in names:
            blank(tmp / "out" / name)

    return setup


def old_run(name: str) -> Callable[[Path], object]:
    """A copy of a world run without model.json, as versions before it wrote their runs."""

    def setup(tmp: Path) -> None:
        import shutil

        shutil.copytree(WORLD[name], tmp / "old")
        (tmp / "old" / "model.json").unlink()

    return setup


WORLD: dict[str, Path] = {}  # the module's runs, for setups (filled by the table's test)

CASES += [
    # train: numbers at 0, negative, inf, NaN; sizes below the stride; missing and wrong paths; other tasks' runs
    Case("train --dry-run --epochs 0", r"epochs must be >= 1, got 0", id="train-epochs-0"),
    Case("train --dry-run --batch_size -4", r"batch_size must be >= 1, got -4", id="train-batch-neg"),
    Case("train --dry-run --optim.lr inf", r"optim.lr: expected a finite number, got 'inf'", id="train-lr-inf"),
    Case("train --dry-run --optim.lr nan", r"optim.lr: expected a finite number, got 'nan'", id="train-lr-nan"),
    Case("train --dry-run --optim.lr=0", r"optim.lr must be > 0, got 0", id="train-lr-0"),
    Case("train --dry-run --budget_minutes -1", r"budget_minutes must be >= 0", id="train-budget-neg"),
    Case("train --dry-run --img_size 8", r"img_size 8 is not a positive multiple of 16.*ascan_nano", id="train-size-8"),
    Case("train --dry-run --img_size 40", r"img_size 40 .*Nearest valid sizes: 32 or 48", id="train-size-40"),
    Case("train --dry-run --config {tmp}", r"config file '.*' is a directory; give a YAML", id="train-config-dir"),
    Case("train --dry-run --config {tmp}/no.yaml", r"config file '.*no\.yaml' does not exist", id="train-config-none"),
    Case("train --dry-run --resume {tmp}/no", r"--resume .*no/config\.yaml does not exist", id="resume-none"),
    # eval: a missing run, a folder or file that is no run, a run of another task, a run from an older version
    Case("eval {tmp}/no", r"no does not exist; pass a run directory", id="eval-missing"),
    Case("eval {tmp}", r"is neither a run folder \(config.yaml, model.json\) nor a saved model", id="eval-dir"),
    Case("eval {seg}", r"seg is a segmentation run, not a classification run", id="eval-seg-run"),
    Case("eval {diff}", r"diff is a diffusion run, not a classification run", id="eval-diff-run"),
    # diffusion train / eval
    Case("diffusion train --dry-run --img_size 0", r"img_size must be >= 8, got 0", id="diff-size-0"),
    Case("diffusion train --dry-run --sample.steps 0", r"sample.steps must be >= 1, got 0", id="diff-steps-0"),
    Case("diffusion train --dry-run --eval_samples -1", r"eval_samples must be >= 0, got -1", id="diff-samples-neg"),
    Case("diffusion train --dry-run --optim.lr inf", r"optim.lr: expected a finite number", id="diff-lr-inf"),
    Case("diffusion train --dry-run --judge_size=-1", r"judge_size must be >= 0, got -1", id="diff-judge-neg"),
    Case("diffusion eval {diff} --judge_size=-1", r"judge_size must be >= 0, got -1", id="diff-eval-judge-neg"),
    Case("diffusion eval {tmp}/no", r"no does not exist; pass a run directory", id="diff-eval-missing"),
    Case("diffusion eval {seg}", r"seg is a segmentation run, not a diffusion run", id="diff-eval-seg-run"),
    # det train / eval / scenes
    Case("det train --dry-run --img_size 8", r"img_size 8 is not a positive multiple of 16", id="det-size-8"),
    Case("det train --dry-run --batch_size 0", r"batch_size must be >= 1, got 0", id="det-batch-0"),
    Case("det train --dry-run --optim.lr nan", r"optim.lr: expected a finite number, got 'nan'", id="det-lr-nan"),
    Case("det train --dry-run --detector.fpn_channels 0", r"fpn_channels must be >= 1, got 0", id="det-fpn-0"),
    Case("det eval {tmp}/no", r"no does not exist; pass a run directory", id="det-eval-missing"),
    Case("det eval {seg}", r"seg is a segmentation run, not a detection run", id="det-eval-seg-run"),
    Case("det eval {diff}", r"diff is a diffusion run, not a detection run", id="det-eval-diff-run"),
    Case("det scenes extra", r"unexpected argument 'extra'; det scenes takes --key value", id="det-scenes-word"),
    # det predict: missing inputs, --out a file, another task's run, overlays already written
    Case("det predict {tmp}/no.png --run {seg}", r"no\.png does not exist; pass image files", id="det-predict-missing"),
    Case("det predict --run {seg}", r"det predict takes image files or folders", id="det-predict-nothing"),
    Case(
        "det predict {tmp}/in --run {seg} --out {tmp}/in/tiny.png",
        r"--out .*tiny\.png is a file; give a folder",
        setup=inputs,
        id="det-predict-out-file",
    ),
    Case(
        "det predict {tmp}/in --run {seg} --out {tmp}/out",
        r"seg is a segmentation run, not a detection run",
        setup=inputs,
        id="det-predict-seg-run",
    ),
    Case(
        "det predict {tmp}/in --run {seg} --out {tmp}/out",
        r"out/tiny_det\.png exists already; pass --overwrite true to replace, or choose another --out",
        setup=overlay_of_before("tiny_det.png"),
        id="det-predict-exists",
    ),
    # seg predict: scene overlays of an earlier run are kept; a run from an older version
    Case(
        "seg predict --scenes 2 --run {seg} --out {tmp}/out",
        r"out/scene_001\.png exists already; pass --overwrite true",
        setup=lambda tmp: blank(tmp / "out" / "scene_001.png"),
        id="seg-scenes-exists",
    ),
    Case(
        "seg predict {tmp}/in/tiny.png --run {tmp}/old --out {tmp}/out",
        setup=lambda tmp: (inputs(tmp), old_run("seg")(tmp)),
        check=written("tiny_seg.png"),
        id="seg-predict-old-run",
    ),
    # seg eval
    Case("seg eval {tmp}/no", r"no does not exist; pass a run directory", id="seg-eval-missing"),
    Case("seg eval {tmp}", r"is neither a run folder", id="seg-eval-dir"),
    Case("seg eval {diff}", r"diff is a diffusion run, not a segmentation run", id="seg-eval-diff-run"),
    # models, plot-run
    Case("models --family nosuch", r"no model matches pattern '\*', family 'nosuch'; families: ascan, ", id="fam"),
    Case("models zz* --task detection --no-cost", r"no model matches pattern 'zz\*', task 'detection'", id="task"),
    Case("plot-run {tmp}/no", r"no is not a directory; pass a run directory", id="plot-run-missing"),
]


CASES += [
    # plot-run --out: a folder, another format's name, a new folder; plot: files that are not bench results;
    # export --pretrained a run folder; study configs that are folders or missing
    Case("plot-run {seg} --out {tmp}", r"the figure .* is a directory; give a file name", id="plot-run-out-dir"),
    Case("plot-run {seg} --out {tmp}/c.tiff", r"c\.tiff is written as PNG; give a file name ending in \.png",
         id="plot-run-out-tiff"),
    Case("plot-run {seg} --out {tmp}/out/c.png", check=written("c.png"), id="plot-run-out-png"),
    Case("plot {tmp}/r.json --out {tmp}/p.png", r"r\.json is not JSON \(Expecting value: line 1 .*; pass a result",
         setup=lambda tmp: (tmp / "r.json").write_text("x"), id="plot-not-json"),
    Case("plot {tmp} --out {tmp}/p.png", r"result file .* is a directory; pass the \.json or \.csv", id="plot-dir"),
    Case("export ascan_test --pretrained {seg} --out {tmp}/m.onnx",
         r"seg is a run folder; its weights are in .*seg/final", id="export-run-folder"),
    Case("study {tmp} --dry-run", r"config file '.*' is a directory; give a YAML or JSON file", id="study-dir"),
    Case("study {tmp}/no.yaml --dry-run", r"config file '.*no\.yaml' does not exist", id="study-missing"),
    # summary: filters matching nothing (exit 2, as models), a bad list, --json a folder (before measuring)
    Case("summary --family nosuch", r"no model matches pattern '\*', family 'nosuch'; families: ascan, ",
         id="summary-family"),
    Case("summary --pattern coatnet_0 --batch-sizes 1,x", r"batch_sizes: expected int, got 'x'", id="summary-batch"),
    Case("summary --pattern coatnet_0 --no-speed --json {tmp}", r"--json .* is a directory; give a file name",
         id="summary-json-dir"),
]  # fmt: skip


SEVEN = r"7 overlay\(s\) of the other images written"  # what the image kinds' rows write besides a broken file
JUNK = r"j\.jpg is not an image file PIL can read; remove it .* \(nothing written\)"


def fitted(task: str) -> Callable[[Path], None]:
    """The huge image's overlay was drawn at the image fitted into 64x64 pixels (73x55), not at 4000x3000."""

    def check(tmp: Path) -> None:
        from PIL import Image

        written(f"big_{task}.png")(tmp)
        with Image.open(tmp / "out" / f"big_{task}.png") as overlay:
            width = overlay.width if task == "det" else overlay.width // 2  # seg: image | prediction side by side
        assert width < 600, overlay.size  # 73 wide, scaled up to at least 256 high

    return check


def predict_rows(task: str) -> list[Case]:
    """``<task> predict`` on image files, the same for every task (one path, ``data.overlays``): every image kind,
    names that collide, broken files, a huge image, overlays of an earlier run kept unless ``--overwrite true``."""
    run, kinds = f"--run {{{task}}} --out {{tmp}}/out", tuple(k.replace("_seg.png", f"_{task}.png") for k in KINDS)
    before = overlay_of_before(f"b/photo_{task}.png", f"tiny_{task}.png")
    cmd = f"{task} predict {{tmp}}/in {run}"
    return [
        Case(cmd, setup=inputs, check=written(*kinds), id=f"{task}-image-kinds"),
        Case(f"{task} predict {{tmp}}/in {{tmp}}/in/a/photo.png {run}", setup=inputs, check=written(*kinds),
             id=f"{task}-named-twice"),
        Case(cmd, rf"in/z\.png cannot be read \(.*\); replace the file or remove it \({SEVEN}",
             setup=lambda tmp: (inputs(tmp), truncated(tmp / "in" / "z.png")), check=written(*kinds),
             id=f"{task}-truncated"),
        Case(cmd, r"2 images could not be predicted \(7 overlay",
             setup=lambda tmp: (inputs(tmp), truncated(tmp / "in" / "z.png"), (tmp / "in/j.png").write_text("")),
             check=written(*kinds), lines=3, id=f"{task}-two-broken"),
        Case(f"{task} predict {{tmp}}/j.jpg {run}", JUNK,
             setup=lambda tmp: (tmp / "j.jpg").write_bytes(b"junk"), id=f"{task}-not-an-image"),
        Case(f"{task} predict {{tmp}} --run {{{task}}}", r"no images \(\.jpg", id=f"{task}-predict-empty-folder"),
        Case(f"{task} predict {{tmp}}/big.png {run}", setup=lambda tmp: huge(tmp / "big.png"),
             check=fitted(task), id=f"{task}-huge-image"),
        Case(cmd, rf"out/b/photo_{task}\.png exists already \(and 1 more\); pass --overwrite true", setup=before,
             id=f"{task}-overlays-exist"),
        Case(f"{cmd} --overwrite true", setup=before, check=written(*kinds),
             replaces=(f"out/b/photo_{task}.png", f"out/tiny_{task}.png"), id=f"{task}-predict-overwrite"),
    ]  # fmt: skip


CASES += predict_rows("seg") + predict_rows("det")


def sixteen_bit_drawn(tmp: Path) -> None:
    """The overlay of the 16-bit ramp (nothing drawn: --score 1) holds the ramp scaled to 8 bits, not clipped."""
    from PIL import Image

    written("sixteen_det.png")(tmp)  # one file named: its overlay is at the top of --out
    pixels = np.asarray(Image.open(tmp / "out" / "sixteen_det.png"))  # 48x40 scaled up 7x to 336x280
    ramp = np.round((np.arange(40 * 48).reshape(40, 48) * 30) / 257)
    assert pixels.shape == (280, 336, 3) and np.abs(pixels[3::7, 3::7, 0] - ramp).max() <= 1


def coco_folder(annotations: object) -> Callable[[Path], object]:
    """``tmp/c``: a COCO folder whose training annotation file holds ``annotations`` (text, or JSON data)."""

    def setup(tmp: Path) -> None:
        (tmp / "c" / "train2017").mkdir(parents=True)
        (tmp / "c" / "annotations").mkdir()
        text = annotations if isinstance(annotations, str) else json.dumps(annotations)
        (tmp / "c" / "annotations" / "instances_train2017.json").write_text(text)

    return setup


IMAGE = {"id": 1, "file_name": "a.png", "height": 8, "width": 8}
ONE_CATEGORY = {"images": [IMAGE], "annotations": [], "categories": [{"id": 1, "name": "one"}]}
BOX = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0}
ONE_BOX = ONE_CATEGORY | {"annotations": [BOX]}
UNDEFINED = ONE_CATEGORY | {"annotations": [BOX | {"category_id": 99}]}
DET_COCO = "det train --data.dataset coco --data.root {tmp}/c --model ascan_test --out_dir {tmp}/runs --max_steps 1"
OUTSIDE = r"--run_name '.*' would put the run outside --out_dir runs; give a plain name"
FINISHED = r"already holds a finished run; nothing was written\. Choose another --run_name"

CASES += [
    # det predict: a 16-bit image read as such, bad settings, a classifier as the run
    Case("det predict {tmp}/in/a/sixteen.png --run {det} --out {tmp}/out --score 1", setup=inputs,
         check=sixteen_bit_drawn, id="det-sixteen-bit"),
    Case("det predict {tmp} --run {det} --alpha nan", r"alpha: expected a finite number, got 'nan'", id="det-alpha"),
    Case("det predict {tmp} --run {det} --score 2", r"score must be in \[0, 1\], got 2", id="det-score-2"),
    Case("det predict {tmp}/in --run {clf} --out {tmp}/out", r"holds a classification model, not a detection model",
         setup=inputs, id="det-predict-classifier"),
    # det train: COCO folders that are not, a detector as the backbone, negative sizes, wrong types
    Case(DET_COCO, r"c/annotations/instances_train2017\.json is not a COCO .*\(it holds a JSON list\)",
         setup=coco_folder([1, 2]), id="det-json-list"),
    Case(DET_COCO, r"instances_train2017\.json is not JSON \(Expecting", setup=coco_folder('{"images": ['),
         id="det-json-broken"),
    Case(DET_COCO, r"lacks the list\(s\) \['images', 'annotations', 'categories'\] \(it holds keys \['foo'\]\)",
         setup=coco_folder({"foo": 1}), id="det-json-not-coco"),
    Case(DET_COCO, r"instances_train2017\.json defines no categories",
         setup=coco_folder(ONE_CATEGORY | {"categories": []}), id="det-no-categories"),
    Case(DET_COCO, r"annotations use category ids \[99\] that its 'categories' list does not define",
         setup=coco_folder(UNDEFINED), id="det-category-undefined"),
    Case(DET_COCO, r"c/train2017 holds none of the 1 image\(s\) .*instances_train2017\.json lists \(such as a\.png\)",
         setup=coco_folder(ONE_BOX), id="det-images-missing"),
    Case(DET_COCO, r"instances_train2017\.json has no annotations \(other than crowd regions\) on the 1 image",
         setup=lambda tmp: (coco_folder(ONE_CATEGORY)(tmp), blank(tmp / "c" / "train2017" / "a.png")),
         id="det-no-annotations"),
    Case(DET_COCO, r"instances_train2017\.json lists no images", setup=coco_folder(ONE_CATEGORY | {"images": []}),
         id="det-no-images"),
    Case("det train --data.dataset coco --data.root {tmp}/none --out_dir {tmp}/runs",
         r"none/annotations/instances_train2017\.json does not exist; --data.root takes a COCO", id="det-no-root"),
    Case("det train --dry-run --model maskrcnn_ascan_nano",
         r"--model maskrcnn_ascan_nano is a detection model; --model takes the backbone, .* such as ascan_nano",
         id="det-detector-as-backbone"),
    Case("seg train --dry-run --model upernet_ascan_nano", r"is a segmentation model; --model takes the backbone",
         id="seg-segmentor-as-backbone"),
    Case("det train --dry-run --model ascan_unet_test", r"is a generation model; --model takes the backbone",
         id="det-unet-as-backbone"),
    Case("det train --dry-run --detector.min_size=-64", r"detector.min_size and max_size need 0 < min <= max, got -64",
         id="det-min-size-neg"),
    Case("det train --dry-run --detector.anchor_sizes=-8,16,32,64,128", r"detector.anchor_sizes must be > 0, got \(-8,",
         id="det-anchor-neg"),
    Case("det train --dry-run --detector.fpn_channels abc", r"detector.fpn_channels: expected int, got 'abc'",
         id="det-fpn-type"),
    Case("det train --dry-run --data.channels 2", r"data.channels must be one of 1, 3, got 2", id="det-channels-2"),
    Case("det train --dry-run --data.mean 0.5,0.5", r"data.mean and data.std need one value per channel \(1\)",
         id="det-mean-count"),
    # det scenes: a folder of real COCO annotations is not written into; a file is no folder
    Case("det scenes --data.root {tmp}/c", r"c holds COCO annotations not written as scenes \(no scenes.json\)",
         setup=coco_folder(ONE_CATEGORY), id="det-scenes-into-coco"),
    Case("det scenes --data.root {tmp}/f.txt", r"--data.root .*f\.txt is a file; give a folder",
         setup=lambda tmp: (tmp / "f.txt").write_text("x"), id="det-scenes-root-file"),
    # det eval: --out refused before the work, data with other categories than the weights', other tasks' runs
    Case("det eval {det} --out {tmp}", r"--out .* is a directory; give a file name", id="det-eval-out-dir"),
    Case("det eval {det}/final", r"final was trained on category ids \[3, 7\], but the scenes have \[1, 2, ",
         id="det-eval-scenes"),
    Case("det eval {det} --data.root {tmp}/c --data.eval_split train2017",
         r"det was trained on category ids \[3, 7\], but .*instances_train2017\.json has \[1\]",
         setup=lambda tmp: (coco_folder(ONE_BOX)(tmp), blank(tmp / "c" / "train2017" / "a.png")),
         id="det-eval-other-coco"),
    Case("det eval {det} --batch_size 0", r"batch_size must be >= 1, got 0", id="det-eval-batch-0"),
    Case("det eval {clf}", r"holds a classification model, not a detection model", id="det-eval-classifier"),
    # --run_name: the dry run refuses what the run refuses, for every task
    Case("train --dry-run --run_name ../x", OUTSIDE, id="train-run-name-up"),
    Case("train --dry-run --run_name /abs/x", OUTSIDE, id="train-run-name-abs"),
    Case("seg train --dry-run --run_name ../x", OUTSIDE, id="seg-run-name-up"),
    Case("det train --dry-run --run_name /abs/x", OUTSIDE, id="det-run-name-abs"),
    Case("diffusion train --dry-run --run_name ../../x", OUTSIDE, id="diff-run-name-up"),
    Case("demo --dry-run --train.run_name ../x", OUTSIDE, id="demo-run-name-up"),
    # --run_name of a finished run, --resume with changed settings: the dry run refuses what the run refuses
    Case("seg train --dry-run --out_dir {seg}/.. --run_name seg", FINISHED, id="seg-dry-run-reuse"),
    Case("train --dry-run --out_dir {seg}/.. --run_name seg", FINISHED, id="train-dry-run-reuse"),
    Case("diffusion train --dry-run --out_dir {diff}/.. --run_name diff", FINISHED, id="diff-dry-run-reuse"),
    Case("det train --dry-run --out_dir {det}/.. --run_name det", FINISHED, id="det-dry-run-reuse"),
    Case("demo --dry-run --train.out_dir {seg}/.. --train.run_name seg", FINISHED, id="demo-dry-run-reuse"),
    # demo: the benchmark's settings are checked before the training, not after it
    Case("demo --dry-run --bench_batch 0", r"bench_batch must be >= 1, got 0", id="demo-bench-batch-0"),
    Case("demo --dry-run --bench_seconds=-1", r"bench_seconds must be > 0, got -1", id="demo-bench-seconds"),
    Case("seg train --dry-run --resume {seg} --img_size 64",
         r"seg was started with other settings \(img_size: 32 -> 64\)", id="seg-dry-run-resume-changed"),
]  # fmt: skip


def checksums(*roots: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for r in roots for p in r.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, world, tmp_path, capsys, monkeypatch, request):
    if case.onnx:
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    if "{det}" in case.argv:  # the detection run is made for the rows that use it (it needs the det extra)
        world = {**world, "det": request.getfixturevalue("det_run")}
        capsys.readouterr()  # the det run's training lines, when it was made for this row
    monkeypatch.chdir(tmp_path)  # relative names in messages are the tmp folder's
    WORLD.update(world)
    monkeypatch.setattr("hybridvision.data.overlays.MAX_PIXELS", 64 * 64)  # huge images fitted into 73x55: quick
    case.setup(tmp_path)
    runs = [world[k] for k in ("seg", "diff", "clf", "det") if k in world]
    before = checksums(tmp_path, *runs)
    argv = case.argv.format(tmp=tmp_path, **{k: str(v) for k, v in world.items()}).split()
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    if case.error:
        assert code == 2 and len(lines) == case.lines, err
        assert lines[0].startswith("error: ") and re.search(case.error, lines[0]), lines[0]
    else:
        assert code == 0, err
    case.check(tmp_path)
    after = checksums(tmp_path, *runs)
    kept = {p: h for p, h in before.items() if p not in {tmp_path / r for r in case.replaces}}
    assert {p: after.get(p) for p in kept} == kept, "a file that existed before was changed or removed"
    for name in case.replaces:
        assert after.get(tmp_path / name) not in (None, before[tmp_path / name]), f"{name} was not replaced"


# ---- Images: every kind read as it is meant (defect 3), broken ones named (defect 14)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    values = np.array([[0, 257, 32768], [65535, 1000, 50000]], dtype=np.uint16)
    big_endian = Image.frombytes("I;16B", (3, 2), values.astype(">u2").tobytes())
    expected = np.round(values / 257).astype(np.uint8)  # 0, 1, 128, 255, 4, 195
    for name, img in (("le.png", Image.fromarray(values)), ("i32.tif", Image.fromarray(values.astype(np.int32)))):
        assert img.mode in ("I;16", "I")
        assert np.array_equal(read_image(save(tmp_path / name, img), 1)[..., 0], expected)
    assert np.array_equal(read_image(save(tmp_path / "be.tif", big_endian), 1)[..., 0], expected)
    rgb = read_image(tmp_path / "le.png", 3)
    assert rgb.shape == (2, 3, 3) and np.array_equal(rgb[..., 1], expected)  # grey in every channel
    middle = save(tmp_path / "middle.png", Image.fromarray(np.full((4, 4), 32768, np.uint16)))
    folder = decode_image(middle, 4, 1)  # classification folders read through the same function
    assert folder is not None and (folder == 128).all()  # was 255: clipped, not scaled


def test_the_ade20k_loader_reads_sixteen_bit_images(tmp_path):
    from PIL import Image

    from hybridvision.seg.ade import read_pair

    ramp = (np.arange(12 * 16).reshape(12, 16) * 300).astype(np.uint16)
    image = save(tmp_path / "images" / "a.png", Image.fromarray(ramp))
    mask = save(tmp_path / "annotations" / "a.png", Image.fromarray(np.ones((12, 16), np.uint8)))
    pixels, labels = read_pair(image, mask, 3, 150, True)
    assert pixels.shape == (3, 12, 16) and torch.equal(
        pixels[0], torch.from_numpy(np.round(ramp / 257).astype(np.uint8))
    )
    assert (labels == 0).all()


def test_palette_cmyk_one_bit_and_alpha_are_converted(tmp_path):
    image_kinds(tmp_path)
    assert read_image(tmp_path / "a" / "photo.png", 3)[0, 0].tolist() == [10, 200, 30]  # palette
    assert (
        read_image(tmp_path / "b" / "photo.png", 1).shape == (20, 33, 1)
        and read_image(tmp_path / "b/photo.png", 1).max() == 255
    )
    assert read_image(tmp_path / "la.png", 1)[0, 0, 0] == 100 and read_image(tmp_path / "rgba.png", 3)[
        0, 0
    ].tolist() == [100, 50, 20]
    assert read_image(tmp_path / "photo.jpg", 3).shape == (40, 40, 3) and read_image(
        tmp_path / "tiny.png", 1
    ).shape == (1, 1, 1)


def test_a_truncated_file_is_one_line_naming_it(tmp_path):
    bad = truncated(tmp_path / "cut.png")
    with pytest.raises(ImageError, match=r"cut\.png cannot be read \(.+\); replace the file or remove it") as err:
        read_image(bad, 3)
    assert "\n" not in str(err.value)
    with pytest.warns(UserWarning, match=r"skipping unreadable image: .*cut\.png cannot be read"):
        assert decode_image(bad, 8, 1) is None


# ---- seg predict: one output per input (defect 2), huge images (defect 11)


def test_overlay_names_keep_the_folders_and_never_collide():
    from hybridvision.data.overlays import overlay_names  # seg predict's and det predict's

    files = [Path("in/a/photo.png"), Path("in/b/photo.png"), Path("in/photo.jpg"), Path("in/photo.png")]
    names = [str(p) for p in overlay_names(files, "seg")]
    assert names == ["a/photo_seg.png", "b/photo_seg.png", "photo_jpg_seg.png", "photo_png_seg.png"]
    assert [str(p) for p in overlay_names([Path("x/photo.png")], "det")] == ["photo_det.png"]


def test_huge_images_are_fitted_and_said(world, caplog):
    from hybridvision.data.overlays import MAX_PIXELS, shrink
    from hybridvision.seg.config import PredictConfig
    from hybridvision.seg.predict import Predictor

    fitted = shrink(np.zeros((3000, 4000, 1), np.uint8), MAX_PIXELS, Path("big.png"))
    assert fitted.shape == (886, 1182, 1) and "big.png: 4000x3000 is predicted at 1182x886" in caplog.text
    assert shrink(fitted, MAX_PIXELS, Path("x")) is fitted  # within the limit: untouched
    assert Predictor(world["seg"], PredictConfig()).max_pixels == MAX_PIXELS  # 1024x1024 > 4x its 32x32 crop


def test_an_image_that_runs_out_of_memory_is_named_and_the_rest_are_written(world, tmp_path, monkeypatch):
    from hybridvision.data.overlays import PredictError
    from hybridvision.seg import predict
    from hybridvision.seg.config import PredictConfig

    image_kinds(tmp_path / "in")
    labels = predict.Predictor.labels

    def allocate(self, images):
        if images.shape[-1] == 33:  # the 1-bit image
            raise RuntimeError(
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate 17592186044416 bytes."
            )
        return labels(self, images)

    monkeypatch.setattr(predict.Predictor, "labels", allocate)
    with pytest.raises(PredictError, match=r"photo\.png: out of CPU memory \(16\.0 TiB .*--infer\.scale") as err:
        predict.predict_files(world["seg"], [tmp_path / "in"], PredictConfig(out=str(tmp_path / "out")))
    assert len(err.value.written) == 6


# ---- Running out of memory anywhere: one line at the command boundary (defect 11)


@pytest.mark.parametrize(
    "error, line",
    [
        (
            RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                         "you tried to allocate 4000000000000 bytes. Error code 12 (Cannot allocate memory)"),
            "error: out of CPU memory (3.6 TiB asked for in one allocation); use a smaller batch",
        ),
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79"),
            "error: out of device memory (20.00 GiB asked for in one allocation); use a smaller batch",
        ),
        (MemoryError(), "error: out of CPU memory; use a smaller batch"),
    ],
)  # fmt: skip
def test_out_of_memory_is_one_line_saying_what_to_reduce(error, line, capsys, monkeypatch):
    raised = [error]

    def fail(*args, **kwargs):
        raise raised[0]

    monkeypatch.setattr("hybridvision.cli.info.info", fail)
    assert main(["info", "ascan_nano"]) == 2
    hint = " or smaller images (e.g. --batch_size, --eval_batch_size, --img_size) and run again"
    assert capsys.readouterr().err.splitlines() == [line + hint]
    raised[0] = RuntimeError("other")
    with pytest.raises(RuntimeError, match="other"):  # not a memory error: a bug, shown as one
        main(["info", "ascan_nano"])


# ---- Models: a size below the stride is an InputError naming valid sizes (defect 10)


@pytest.mark.parametrize("size, valid", [(8, "sizes: 16 "), ((32, 8), "sizes: height 32, width 16"), (0, "sizes: 16 ")])
def test_create_model_refuses_sizes_it_cannot_take(size, valid):
    import hybridvision as hv

    with pytest.raises(InputError, match=re.escape(valid)):
        hv.create_model("ascan_nano", img_size=size)


# ---- export: the opset written is the opset asked (defect 6); one clean line from the exporters (defect 17)


def test_each_opset_goes_to_the_exporter_that_writes_it():
    from hybridvision.export import exporters_for

    assert exporters_for("auto", None) == ["dynamo", "legacy"]
    assert exporters_for("auto", 18) == ["dynamo"] and exporters_for("auto", 20) == ["dynamo"]
    assert exporters_for("auto", 14) == ["legacy"] and exporters_for("legacy", 7) == ["legacy"]
    for exporter, opset in (("auto", 6), ("dynamo", 17), ("legacy", 18)):
        with pytest.raises(ValueError, match=f"opset {opset} cannot be written"):
            exporters_for(exporter, opset)


def test_exporter_errors_are_their_cause_without_colour_codes():
    from hybridvision.export import reason

    try:
        try:
            raise ValueError("the real reason\nand its details")
        except ValueError as inner:
            raise RuntimeError("Failed to export the model. \x1b[96mThis is step 1/3\x1b[0m of exporting") from inner
    except RuntimeError as e:
        assert reason(e) == "the real reason"
    assert reason(RuntimeError("\x1b[96mcoloured\x1b[0m")) == "coloured"


# ---- diffusion: the shipped classifier from anywhere (defect 16); guidance must be finite (defect 5)


def test_the_shipped_classifier_is_found_from_any_directory(dm, tmp_path, monkeypatch):
    from hybridvision.diffusion.eval.judge import DEFAULT_CLASSIFIER, classifier_dir, load_classifier, weights_digest

    repository = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    assert classifier_dir(DEFAULT_CLASSIFIER) == repository / DEFAULT_CLASSIFIER
    probe = load_classifier()  # the default, from a directory without assets/
    assert probe.model.num_classes == 10 and len(weights_digest(DEFAULT_CLASSIFIER)) == 16
    (tmp_path / "assets").mkdir()  # a relative path that exists here is this directory's
    assert classifier_dir("assets") == Path("assets")
    assert classifier_dir("runs/x/final") == Path("runs/x/final")  # only the shipped assets/ fall back


@pytest.mark.parametrize("scale", [float("inf"), float("nan"), -1.0])
def test_guidance_scales_must_be_finite(dm, scale):
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        dm.sampling.SampleConfig(cfg_scale=scale)
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        dm.sampling.SampleConfig(cfg="sampled", ramp=(1.1, scale))


# ---- study: --dry-run applies the real run's check (defect 18)


def test_dry_run_says_which_runs_the_real_run_would_refuse(world, tmp_path, capsys):
    recipe = {"data": {"root": str(world["data"])}, "img_size": 32, "epochs": 1, "budget_minutes": 0, "max_steps": 2}
    recipe |= {"batch_size": 16, "eval_batch_size": 32, "amp": "off", "progress": False, "tensorboard": False}
    recipe |= {"threads": 1}
    study = {"name": "tiny", "recipe": recipe, "points": [{"label": "a", "model": "coatnet_test"}], "seeds": [0]}
    study |= {"out_dir": str(tmp_path), "run_minutes": 0.01, "overhead_minutes": 0.01}
    study |= {"speed": {"batch_size": 4, "rounds": 1, "seconds": 0.01}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["study", str(path)]) == 0
    assert main(["study", str(path), "--dry-run"]) == 0 and "1/1" in capsys.readouterr().out
    changed = ["study", str(path), "--recipe.max_steps", "3"]
    assert main([*changed, "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert "0/1 (1 refused)" in out and "refused: study tiny: " in out and "(max_steps: 2 -> 3)" in out
    assert err.splitlines() == ["error: study tiny: 1 run(s) would be refused (listed above)"]
    assert main(changed) == 2  # the real run refuses the same run
    assert "a-s0 was trained with other settings (max_steps: 2 -> 3)" in capsys.readouterr().err


def test_detection_reads_sixteen_bit_images_scaled(tmp_path):
    from PIL import Image

    from hybridvision.det.data import read_image as det_read_image  # the COCO loader's and det predict's reader

    values = np.array([[0, 257, 32768], [65535, 1000, 50000]], dtype=np.uint16)
    image = det_read_image(save(tmp_path / "le.png", Image.fromarray(values)), 3)
    assert image.shape == (3, 2, 3) and torch.equal(image[1], torch.from_numpy(np.round(values / 257).astype(np.uint8)))
    with pytest.warns(UserWarning, match=r"skipping unreadable image: .*cut\.png cannot be read"):
        assert det_read_image(truncated(tmp_path / "cut.png"), 1) is None
