"""Detection: the COCO reader on a tiny folder with every case COCO allows, the scenes written as COCO, COCO's own
evaluation against oracles, and Mask R-CNN on a test backbone trained two steps through the engine, then
evaluated and drawn from its run folder."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

if importlib.util.find_spec("torchvision") is None or importlib.util.find_spec("pycocotools") is None:
    pytest.skip("the det extra (torchvision, pycocotools) is not installed", allow_module_level=True)

from hybridvision.data import FASHION_MNIST_DIR
from hybridvision.data.scenes import SceneConfig
from hybridvision.det.config import DetDataConfig, DetPredictConfig, DetTrainConfig
from hybridvision.det.data import load_split
from hybridvision.det.metrics import coco_scores, score_detections
from hybridvision.det.model import DetectorConfig
from hybridvision.det.scenes import ScenesConfig, split_items, write_scenes

HAS_FMNIST = Path(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz").is_file()
needs_fmnist = pytest.mark.skipif(not HAS_FMNIST, reason="Fashion-MNIST is not installed (dataset-fashion-mnist)")


def _rle(mask: np.ndarray, compressed: bool) -> dict:
    from pycocotools import mask as mask_utils

    if compressed:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    flat = mask.flatten(order="F").astype(int)  # column-major runs, starting with zeros
    runs, value, count = [], 0, 0
    for v in flat:
        if v != value:
            runs.append(count)
            value, count = v, 0
        count += 1
    return {"size": list(mask.shape), "counts": [*runs, count]}


def make_coco(root: Path) -> Path:
    """A tiny COCO folder: an RGB 40x30 image, a grey 32x32 one and an image without annotations; category ids 3
    and 7 (a gap); a polygon object in two parts, compressed and uncompressed RLE, a crowd region, a box with no
    width."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train2017", "val2017", "test2017"):
        (root / split).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(root / split / "rgb.png")
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(root / split / "grey.png")
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(root / split / "empty.png")
    block = np.zeros((32, 32), bool)
    block[4:12, 6:20] = True
    crowd = np.zeros((30, 40), bool)
    crowd[20:28, 30:38] = True
    anns = [
        # image 1 (RGB 40x30): a polygon object in two rectangles (4x4 and 6x2), a crowd region, a zero-width box
        {"image_id": 1, "category_id": 3, "bbox": [2, 2, 16, 8], "iscrowd": 0, "area": 28,
         "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6], [12, 8, 18, 8, 18, 10, 12, 10]]},
        {"image_id": 1, "category_id": 7, "bbox": [30, 20, 8, 8], "iscrowd": 1, "area": 64,
         "segmentation": _rle(crowd, compressed=False)},
        {"image_id": 1, "category_id": 7, "bbox": [10, 10, 0, 5], "iscrowd": 0, "area": 0,
         "segmentation": [[10, 10, 10, 15, 10, 15]]},
        # image 2 (grey 32x32): the same block as compressed and as uncompressed RLE, two categories
        {"image_id": 2, "category_id": 7, "bbox": [6, 4, 14, 8], "iscrowd": 0, "area": 112,
         "segmentation": _rle(block, compressed=True)},
        {"image_id": 2, "category_id": 3, "bbox": [6, 4, 14, 8], "iscrowd": 0, "area": 112,
         "segmentation": _rle(block, compressed=False)},
    ]  # fmt: skip
    coco = {
        "images": [
            {"id": 1, "file_name": "rgb.png", "height": 30, "width": 40},
            {"id": 2, "file_name": "grey.png", "height": 32, "width": 32},
            {"id": 3, "file_name": "empty.png", "height": 32, "width": 32},
        ],
        "annotations": [{**a, "id": i + 1} for i, a in enumerate(anns)],
        "categories": [{"id": 3, "name": "three"}, {"id": 7, "name": "seven"}],
    }
    (root / "annotations").mkdir()
    for split in ("train2017", "val2017", "test2017"):
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return root


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> Path:
    return make_coco(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="module")
def scenes_root(tmp_path_factory) -> Path:
    if not HAS_FMNIST:
        pytest.skip("Fashion-MNIST is not installed")
    cfg = ScenesConfig(scenes=SceneConfig(train_scenes=40, eval_scenes=40, val_scenes=40))
    return write_scenes(tmp_path_factory.mktemp("scenes"), cfg)


def test_coco_reader_covers_every_case(coco_root):
    split = load_split(coco_root, "train2017", channels=3)
    assert split.classes == ("background", "three", "seven") and split.category_ids == [3, 7]
    assert split.dropped == 1  # the zero-width box
    image, t = split.sample(0)
    assert image.shape == (3, 30, 40)
    assert t["labels"].tolist() == [1]  # the crowd region and the degenerate box are not training targets
    assert t["boxes"].tolist() == [[2.0, 2.0, 18.0, 10.0]]
    assert t["masks"].shape == (1, 30, 40) and int(t["masks"].sum()) == 16 + 12  # both polygon parts (4x4, 6x2)
    image, t = split.sample(1)
    assert image.shape == (3, 32, 32) and bool((image[0] == image[1]).all())  # grey converted to 3 channels
    assert t["labels"].tolist() == [2, 1]  # category ids 7 and 3 -> contiguous labels
    assert torch.equal(t["masks"][0], t["masks"][1]) and int(t["masks"][0].sum()) == 112  # both RLE kinds
    image, t = split.sample(2)
    assert t["boxes"].shape == (0, 4) and t["masks"].shape == (0, 32, 32)  # an image without annotations
    assert load_split(coco_root, "train2017", channels=1).sample(0)[0].shape == (1, 30, 40)  # RGB to grey


def test_a_missing_annotation_file_says_where_it_looked(tmp_path):
    from hybridvision.data import DataError

    with pytest.raises(DataError, match="instances_train2017.json does not exist"):
        load_split(tmp_path, "train2017", channels=1)


def _ground_truth_as_detections(split, relabel=lambda c: c) -> list[dict]:
    return [
        {"image_id": a["image_id"], "category_id": relabel(a["category_id"]), "bbox": a["bbox"], "score": 1.0,
         "segmentation": split.coco.annToRLE(a)}
        for a in split.coco.dataset["annotations"]
        if not a["iscrowd"]
    ]  # fmt: skip


@needs_fmnist
def test_ground_truth_scores_100_and_permuted_labels_about_0(scenes_root):
    split = load_split(scenes_root, "val2017", channels=1)
    assert any(a["iscrowd"] for a in split.coco.dataset["annotations"])  # crowd regions are in play
    perfect = score_detections(split, _ground_truth_as_detections(split))
    assert perfect["box"]["ap"] == pytest.approx(100) and perfect["mask"]["ap"] == pytest.approx(100)
    assert perfect["box"]["apl"] == -1  # a 64x64 scene holds no COCO-large object (area > 96^2): -1, not an error
    permuted = score_detections(split, _ground_truth_as_detections(split, lambda c: c % 10 + 1))
    assert permuted["box"]["ap"] < 5 and permuted["mask"]["ap"] < 5


def test_no_detections_score_0(coco_root):
    split = load_split(coco_root, "val2017", channels=1)
    scores = coco_scores(split.coco, [], "mask", ["three", "seven"])
    assert scores["ap"] == 0 and scores["ar100"] == 0 and scores["per_class"] == {"three": 0.0, "seven": 0.0}


@needs_fmnist
def test_scenes_are_instances_with_held_out_validation_items(scenes_root):
    from pycocotools import mask as mask_utils

    cfg = ScenesConfig(scenes=SceneConfig(train_scenes=40, eval_scenes=40, val_scenes=40))
    items = split_items(cfg)
    train_items, val_items = items["train2017"].images, items["val2017"].images
    assert len(val_items) == 5000 and len(train_items) == 55000
    flat = lambda x: {bytes(i.numpy()) for i in x}  # noqa: E731 - items by content
    assert not flat(val_items[:500]) & flat(train_items)  # held-out items are not in the training pool
    split = load_split(scenes_root, "train2017", channels=1)
    for a in split.coco.dataset["annotations"]:
        assert a["bbox"] == mask_utils.toBbox(a["segmentation"]).tolist()  # the tight box of the visible mask
        assert a["area"] == int(mask_utils.area(a["segmentation"]))


def _tiny_train_config(tmp_path: Path, root: Path, **data) -> DetTrainConfig:
    detector = DetectorConfig(fpn_channels=16, rpn_top_n=(50, 20), box_samples=16, detections=20)
    return DetTrainConfig(
        model="ascan_test",
        epochs=2,  # one step per epoch: 3 images, batches of 2
        batch_size=2,
        eval_batch_size=4,
        budget_minutes=0,
        out_dir=str(tmp_path / "runs"),
        progress=False,
        tensorboard=False,
        amp="off",
        detector=detector,
        data=DetDataConfig(dataset="coco", root=str(root), **data),
        optim=DetTrainConfig().optim.__class__(lr=1e-3, warmup_steps=1),
    )


def test_two_steps_on_a_tiny_coco_folder_then_eval_and_predict(coco_root, tmp_path, capsys):
    from hybridvision.cli.main import main
    from hybridvision.det.config import DetEvalConfig
    from hybridvision.det.evaluate import evaluate_run
    from hybridvision.det.predict import predict_files
    from hybridvision.det.task import train
    from hybridvision.engine.rundir import RunDir

    cfg = _tiny_train_config(tmp_path, coco_root, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    result = train(cfg)
    summary = result.summary
    assert summary["steps"] == 2 and 0 <= summary["box_ap"] <= 100 and "mask_ap" in summary
    assert summary["kernels"]["nms"]
    run_dir = Path(result.run_dir)
    info = json.loads(RunDir(run_dir).model_file.read_text())
    assert info == json.loads((run_dir / "final" / "config.json").read_text())  # one description, written twice
    assert info["task"] == "detection" and info["category_ids"] == [3, 7] and info["in_chans"] == 3
    model = info["overrides"]  # all inference needs: the detector's full config
    assert model["detector"]["anchor_sizes"] == [8, 16, 32, 64, 128] and model["std"] == [0.25] * 3
    scores = evaluate_run(run_dir, DetEvalConfig(data=cfg.data, batch_size=2))
    assert set(scores["model"]) == {"box", "mask", "detections", "precision"} and "per_class" in scores["model"]["mask"]
    assert scores["model"]["precision"] == "fp32"
    _a_run_is_evaluated_in_its_training_precision(run_dir, tmp_path)
    assert main(["det", "eval", str(run_dir), "--batch_size", "2", "--out", str(tmp_path / "e.json")]) == 0
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["split"] == "val2017" and saved["results"]["model"]["box"]["ap"] == scores["model"]["box"]["ap"]
    inputs = [tmp_path / "in" / "rgb.png", tmp_path / "in" / "other" / "rgb.png"]  # one stem, two folders
    for path in inputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((coco_root / "train2017" / "rgb.png").read_bytes())
    same_stem = inputs[1].parent
    written = predict_files(run_dir, inputs, DetPredictConfig(out=str(tmp_path / "out"), score=0.0))
    assert [str(p.relative_to(tmp_path / "out")) for p in written] == [
        "rgb_det.png",
        "other/rgb_det.png",
    ]  # one overlay each: their paths below the inputs' common folder
    assert all(p.is_file() for p in written)
    capsys.readouterr()
    assert main(["det", "predict", str(same_stem), "--run", str(run_dir), "--out", str(tmp_path / "cli")]) == 0
    assert "wrote 1 overlay(s)" in capsys.readouterr().out and (tmp_path / "cli" / "rgb_det.png").is_file()
    _report_scores_the_test_split_once(run_dir, tmp_path / "results", scores, cfg.data)


def _a_run_is_evaluated_in_its_training_precision(run_dir: Path, tmp_path: Path) -> None:
    """A run trained in bf16 autocast (its config says so) is evaluated in it unless --amp says otherwise, as its
    validation scores were while it trained; a weights folder alone is evaluated in fp32."""
    import shutil

    from hybridvision.cli.main import main
    from hybridvision.det.evaluate import eval_defaults

    assert eval_defaults(run_dir).amp == "off" and eval_defaults(tmp_path / "no_run").amp == "off"
    bf16_run = tmp_path / "bf16_run"
    shutil.copytree(run_dir, bf16_run)
    config = bf16_run / "config.yaml"
    assert "amp: 'off'" in config.read_text() or "amp: off" in config.read_text()
    config.write_text(config.read_text().replace("amp: 'off'", "amp: bf16").replace("amp: off", "amp: bf16"))
    assert eval_defaults(bf16_run).amp == "bf16"
    for flags, precision in (([], "bf16"), (["--amp", "off"], "fp32")):
        out = tmp_path / f"{precision}.json"
        assert (
            main(["det", "eval", str(bf16_run), "--weights", "model", "--batch_size", "2", "--out", str(out), *flags])
            == 0
        )
        assert json.loads(out.read_text())["results"]["model"]["precision"] == precision


def _report_scores_the_test_split_once(run_dir: Path, out: Path, val_scores: dict, data) -> None:
    """The committed record: test2017 scored once (same images as val2017 here, so the same AP), with the weights
    it scored in a folder that reproduces the number on its own; the table."""
    from dataclasses import replace

    from hybridvision.det.config import DetEvalConfig
    from hybridvision.det.evaluate import evaluate_run
    from hybridvision.det.report import export_run, results_table, score_test

    export_run(
        run_dir, out, recipe=str(Path(__file__).resolve().parents[1] / "configs/det/coco_maskrcnn_1x_ascan_t.yaml")
    )
    test = score_test(run_dir, out)
    assert test["split"] == "test" and test["coco_split"] == "test2017" and test["model"] == "ascan_test"
    assert test["box_ap"] == val_scores["model"]["box"]["ap"] and test["mask_ap"] == val_scores["model"]["mask"]["ap"]
    assert test["total_train_s"] > 0 and json.loads((out / "test.json").read_text())["box_ap"] == test["box_ap"]
    again = evaluate_run(out / "weights", DetEvalConfig(data=replace(data, eval_split="test2017"), batch_size=2))
    assert again["model"]["box"]["ap"] == test["box_ap"] and again["model"]["mask"]["ap"] == test["mask_ap"]
    with pytest.raises(FileExistsError, match="scored once per recipe; delete it to score again"):
        score_test(run_dir, out)
    table = results_table([out])
    assert test["precision"] in ("fp32", "bf16")  # what the run trained in (amp "auto": bf16 only with AMX)
    assert test["scored_in"] == "fp32"  # the run's own precision (amp "off")
    assert f"| maskrcnn_ascan_test | {test['precision']} | fp32 | " in table
    assert f"| {test['box_ap']:.2f} | {test['mask_ap']:.2f} |" in table


def test_the_reported_weights_are_chosen_on_validation():
    from hybridvision.det.report import chosen_weights

    assert chosen_weights({"box_ap": 40.0, "ema_box_ap": 41.5}) == "ema"
    assert chosen_weights({"box_ap": 40.0, "ema_box_ap": 40.0}) == "model"  # a tie keeps the raw weights
    assert chosen_weights({"box_ap": 40.0, "ema_box_ap": 12.0}) == "model"
    assert chosen_weights({"box_ap": 40.0}) == "model"  # a run that kept no EMA


def test_cli_errors_are_one_line(tmp_path, capsys):
    from hybridvision.cli.main import main

    for argv, message in [
        (["det", "predict", "x.png"], "det predict needs --run RUN: the detection run whose weights predict"),
        (["det", "predict", "--run", str(tmp_path)], "det predict takes image files or folders"),
        (["det", "eval", str(tmp_path / "nope")], "does not exist; pass a run directory such as"),
        (["det", "eval"], "det eval takes one run directory"),
        (["det", "eval", str(tmp_path), "--roi_align", "fast"], "roi_align must be one of grid, compiled, eager"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_registered_detectors_build_and_detect():
    """``maskrcnn_<backbone>``: a test backbone's detector builds by name and runs on a 64x64 grey image."""
    import hybridvision as hv

    model = hv.create_model("maskrcnn_coatnet_test").eval()
    assert model.model_name == "maskrcnn_coatnet_test" and model.config.num_classes == 11
    with torch.no_grad():
        (out,) = model([torch.rand(1, 64, 64)])
    assert out["boxes"].shape[1] == 4 and out["masks"].shape[1:] == (1, 64, 64)
    assert len(out["boxes"]) <= model.config.detector.detections


def test_det_train_dry_run_and_bad_values(capsys):
    from hybridvision.cli.main import main

    assert main(["det", "train", "--dry-run", "--model", "coatnet_test", "--detector.fpn_channels", "32"]) == 0
    out = capsys.readouterr().out
    assert "model: coatnet_test" in out and "fpn_channels: 32" in out
    assert main(["det", "train", "--dry-run", "--detector.anchor_sizes", "8,16"]) == 2
    assert "anchor_sizes needs one size per FPN output" in capsys.readouterr().err


@pytest.mark.parametrize("backbone", ["efficientmod_s", "ascan_t", "coatnet_0"])
def test_the_papers_coco_recipes_resolve(backbone, capsys):
    """configs/det: Mask R-CNN 1x (12 epochs, lr x 0.1 at 8 and 11, 500 warm-up steps from 0.001 x lr, AdamW
    2e-4 / 0.05, batch 16, no clipping) on COCO at 1333x800."""
    import yaml

    from hybridvision.cli.main import main

    config = Path(__file__).resolve().parents[1] / "configs" / "det" / f"coco_maskrcnn_1x_{backbone}.yaml"
    assert main(["det", "train", "--dry-run", "--config", str(config)]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    o = cfg["optim"]
    assert cfg["model"] == backbone and cfg["epochs"] == 12 and cfg["batch_size"] == 16
    assert (o["schedule"], o["step_epochs"], o["step_gamma"]) == ("step", [8.0, 11.0], 0.1)
    assert (o["lr"], o["weight_decay"], o["warmup_steps"], o["clip_grad"]) == (2e-4, 0.05, 500, 0.0)
    assert o["warmup_lr"] == pytest.approx(0.001 * o["lr"])
    assert (cfg["detector"]["min_size"], cfg["detector"]["max_size"], cfg["data"]["dataset"]) == (800, 1333, "coco")
