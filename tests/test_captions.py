"""Text-to-image from captioned images: the imagefolder (metadata.jsonl) and WebDataset tar readers, their errors,
images of any size and mode made square, the packed caption table, training two steps on each layout, and
evaluation by FID (and conditional accuracy where the captions come with classes).

Every run uses the tiny T5 encoder of test_diffusion_text.py (randomly initialised, saved to disk); its tokenizer
knows the Fashion-MNIST prompt words the captions here are made of. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import test_diffusion_train
import test_diffusion_unet
import torch
from PIL import Image
from test_diffusion_fid import save_classifier
from test_diffusion_text import t5_dir  # noqa: F401  (the tiny T5 encoder fixture)

from hybridvision.cli.main import main
from hybridvision.data.captions import CaptionError, read_captions
from hybridvision.data.idx import DataError
from hybridvision.data.images import ImageError

dm = test_diffusion_unet.dm  # the shared fixture: hybridvision.diffusion, registered for this module
config = test_diffusion_train.config

WORDS = ("a photo of a bag", "a pair of jeans", "a sneaker on a plain background", "an image of a dress")
MODES = ("RGB", "L", "RGBA", "P", "I;16", "CMYK")  # what a user's folder may hold


def make_image(i: int) -> Image.Image:
    """Image ``i``: a size and a mode of its own (wide, tall, small, large), learnable bars of colour."""
    w, h = 12 + 7 * (i % 5), 10 + 5 * (i % 4)
    rng = np.random.default_rng(i)
    arr = rng.integers(0, 80, (h, w, 3)).astype(np.uint8)
    arr[:, (i % w) : (i % w) + 3] = (200, 40 * (i % 4), 120)
    img = Image.fromarray(arr)
    mode = MODES[i % len(MODES)]
    if mode == "I;16":
        return Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257)
    return img.convert(mode) if mode != "P" else img.quantize(16)


def caption(i: int) -> str:
    return f"{WORDS[i % len(WORDS)]} {'with a bag' if i % 3 else ''}".strip() + f" number {i}"


def write_folder(root: Path, n: int, labels: bool = True) -> Path:
    """An imagefolder: images (PNG, JPEG; some nested in sub-folders) and metadata.jsonl in order."""
    root.mkdir(parents=True)
    lines = []
    for i in range(n):
        img = make_image(i)
        name = f"{'sub/deeper/' if i % 4 == 1 else ''}{i:04d}.{'jpg' if img.mode == 'CMYK' else 'png'}"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / name)
        entry = {"file_name": name, "text": caption(i)} | ({"label": i % 4} if labels else {})
        lines.append(json.dumps(entry))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder: Path, source: Path, shards: int = 2, skip: str = "") -> str:
    """WebDataset shards of an imagefolder's images, in order: key.<ext>, key.txt, key.cls (``skip``: leave it out).

    Returns the brace pattern that names them."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = [json.loads(line) for line in (source / "metadata.jsonl").read_text().splitlines()]
    per = math.ceil(len(entries) / shards)
    for s in range(shards):
        with tarfile.open(folder / f"shard-{s:03d}.tar", "w") as tar:
            for e in entries[s * per : (s + 1) * per]:
                key, ext = Path(e["file_name"]).stem, Path(e["file_name"]).suffix.lstrip(".")
                parts = {ext: (source / e["file_name"]).read_bytes(), "txt": e["text"].encode()}
                parts |= {"cls": str(e["label"]).encode()} if "label" in e else {}
                for part, data in parts.items():
                    if part != skip:
                        _add(tar, f"{key}.{part}", data)
    return str(folder / f"shard-{{000..{shards - 1:03d}}}.tar")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("captions") / "data", 24)


@pytest.fixture(scope="module")
def shards(folder, tmp_path_factory) -> str:
    return write_shards(tmp_path_factory.mktemp("shards"), folder)


@pytest.fixture(scope="module")
def rgb_classifier(tmp_path_factory) -> Path:
    """A tiny, randomly initialised 3-channel classifier of 4 classes (the judge of RGB captioned images)."""
    import hybridvision as hv
    from hybridvision.factory import save_pretrained

    path = tmp_path_factory.mktemp("clf") / "rgb"
    model = hv.create_model("ascan_test", num_classes=4, in_chans=3, img_size=16, stem_stride=1)
    save_pretrained(model, path)
    return path


# ---- Reading


def test_folder_reads_every_mode_and_size_into_squares_in_order(folder):
    data = read_captions(folder, 16, 3)
    assert data.images.shape == (24, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.captions == tuple(caption(i) for i in range(24)) and data.labels.tolist() == [i % 4 for i in range(24)]
    grey = read_captions(folder, 8, 1, limit=5)
    assert grey.images.shape == (5, 1, 8, 8) and len(grey) == 5


def test_resize_and_centre_crop_against_an_oracle(tmp_path):
    """A 48x16 image of three colour thirds keeps its middle third; grey and 16-bit grey become equal channels."""
    root = tmp_path / "d"
    root.mkdir()
    wide = np.zeros((16, 48, 3), np.uint8)
    wide[:, :16], wide[:, 16:32], wide[:, 32:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    Image.fromarray(wide).save(root / "wide.png")
    Image.fromarray(np.full((30, 20), 100 * 257, np.uint16)).save(root / "deep.png")
    Image.fromarray(np.full((4, 4, 4), (10, 20, 30, 0), np.uint8)).save(root / "small.png")
    lines = [{"file_name": f, "text": f"a photo of a bag {f}"} for f in ("wide.png", "deep.png", "small.png")]
    (root / "metadata.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    images = read_captions(root, 8, 3).images
    inner = images[0, :, :, 1:-1]  # the outer columns blend in their neighbours (the filter reaches past the crop)
    assert (inner[1] == 255).all() and (inner[0] == 0).all() and (inner[2] == 0).all()
    assert (images[0, 1] >= 200).all() and (images[0, 0] <= 40).all() and (images[0, 2] <= 40).all()
    assert (images[1] == 100).all()  # 16-bit grey 100 * 257 -> 8-bit 100, on all three channels
    assert images[2, :, 3, 3].tolist() == [10, 20, 30]  # enlarged, alpha dropped
    assert read_captions(root, 8, 1).images.shape == (3, 1, 8, 8)


def test_shards_read_the_same_pairs_as_the_folder(folder, shards):
    a, b = read_captions(folder, 16, 3), read_captions(shards, 16, 3)
    assert b.captions == a.captions and torch.equal(b.labels, a.labels)
    assert torch.equal(b.images, a.images)  # the same files' bytes, decoded alike
    one = read_captions(shards.replace("{000..001}", "000"), 16, 3)  # one shard, no braces
    assert one.captions == a.captions[:12]


# ---- Errors: one line naming the file and the fix


def _broken_folder(tmp_path: Path, kind: str) -> Path:
    root = write_folder(tmp_path / "bad", 4)
    meta = root / "metadata.jsonl"
    lines = meta.read_text().splitlines()
    if kind == "no text":
        lines[2] = json.dumps({"file_name": "0002.png", "caption": "a bag"})
    elif kind == "image without caption":
        lines = lines[:3]
    elif kind == "unreadable image":
        (root / "0000.png").write_bytes(b"not a png at all")
    elif kind == "truncated image":
        (root / "0003.png").write_bytes((root / "0003.png").read_bytes()[:60])
    elif kind == "empty folder":
        for f in sorted(root.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
    elif kind == "no metadata":
        meta.unlink()
    elif kind == "not json":
        lines[1] = "{file_name: 0001.png"
    elif kind == "missing file":
        lines[0] = json.dumps({"file_name": "gone.png", "text": "a bag"})
    elif kind == "empty caption":
        lines[0] = json.dumps({"file_name": "0000.png", "text": "  "})
    elif kind == "some classes":
        lines[0] = json.dumps({"file_name": "0000.png", "text": "a bag"})
    elif kind == "not utf-8":
        lines[0] = lines[0].replace("a ", "\udce9 ", 1)
    elif kind == "no lines":  # an empty metadata.jsonl and no images
        lines = []
        for f in root.rglob("*.png"):
            f.unlink()
    if root.is_dir() and kind not in ("empty folder", "no metadata"):
        meta.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))  # a stray Latin-1 byte
    return root


FOLDER_ERRORS = [
    ("no text", r'metadata.jsonl line 3 has no "text" \(its keys: caption, file_name\); add the caption'),
    ("image without caption", r'0003.png has no caption: .*no line with "file_name": "0003.png" \(1 such'),
    ("unreadable image", r"0000.png is not an image file PIL can read; remove it or convert it"),
    ("truncated image", r"0003.png cannot be read \(.*\); replace the file or remove it"),
    ("empty folder", r"bad has no files; expected a folder with metadata.jsonl"),
    ("no metadata", r"bad has no metadata.jsonl; expected a folder with metadata.jsonl"),
    ("not json", r"metadata.jsonl line 2 is not JSON .*; write one JSON object per line"),
    ("missing file", r"line 1: 'gone.png' is not a file under .*; fix the path or the line"),
    ("empty caption", r"line 1: the caption is empty; write what the image shows"),
    ("some classes", r"bad: .*0000.png has no class but .*0001.png has one: give every image a class"),
    ("no lines", r"bad holds no captioned images; expected a folder"),
    ("not utf-8", r"metadata.jsonl is not UTF-8 text; save it as UTF-8"),
]


@pytest.mark.parametrize("kind,message", FOLDER_ERRORS, ids=[k for k, _ in FOLDER_ERRORS])
def test_folder_errors_name_the_file_and_the_fix(tmp_path, kind, message):
    root = _broken_folder(tmp_path, kind)
    with pytest.raises(DataError) as e:  # CaptionError, or ImageError for an image PIL cannot decode
        read_captions(root, 8, 3)
    assert "\n" not in str(e.value)
    assert re.search(message, str(e.value)), str(e.value)
    assert isinstance(e.value, ValueError)  # the CLI's user errors: one line, exit code 2


def test_shard_errors_name_the_shard_key_and_the_fix(folder, tmp_path):
    pattern = write_shards(tmp_path / "nocap", folder, skip="txt")
    with pytest.raises(CaptionError, match=r"shard-000.tar:0000 has no caption: add 0000.txt beside its image"):
        read_captions(pattern, 8, 3)
    with pytest.raises(CaptionError, match=r"shard-002.tar does not exist and 1 more of the 4 shards; fix the"):
        read_captions(str(tmp_path / "nocap" / "shard-{000..003}.tar"), 8, 3)
    bad = tmp_path / "bad"
    bad.mkdir()
    with tarfile.open(bad / "s.tar", "w") as tar:
        _add(tar, "x.png", b"garbage bytes")
        _add(tar, "x.txt", b"a photo of a bag")
    with pytest.raises(ImageError, match=r"s.tar:x is not an image file PIL can read"):
        read_captions(bad / "s.tar", 8, 3)
    (bad / "junk.tar").write_bytes(b"\x00not a tar" * 100)
    with pytest.raises(CaptionError, match=r"junk.tar: the shards cannot be read \(.*\); fix or remove the bad one"):
        read_captions(bad / "junk.tar", 8, 3)
    with pytest.raises(CaptionError, match=r"nowhere does not exist; expected a folder with metadata.jsonl"):
        read_captions(tmp_path / "nowhere", 8, 3)


def test_caption_column_and_dataset_config(dm, folder, tmp_path):
    root = write_folder(tmp_path / "other", 3, labels=False)  # captions under "caption", as some exports have them
    meta = root / "metadata.jsonl"
    meta.write_text(meta.read_text().replace('"text"', '"caption"'))
    assert read_captions(root, 8, 3, column="caption").captions == tuple(caption(i) for i in range(3))
    assert config(dm, "--data.caption_column", "caption").data.caption_column == "caption"
    with pytest.raises(Exception, match="data.dataset captions trains on captions: add --conditioning text"):
        config(dm, "--data.dataset", "captions", "--data.root", str(folder))
    with pytest.raises(Exception, match="data.channels is 1 \\(grey\\) or 3"):
        config(dm, "--data.channels", "2")
    with pytest.raises(Exception, match="captioned images are resized to img_size: drop it"):
        config(dm, "--conditioning", "text", "--data.dataset", "captions", "--data.upsample", "2")
    with pytest.raises(Exception, match="data.dataset must be one of fmnist, captions"):
        config(dm, "--data.dataset", "caption")


# ---- The caption table


def test_packed_tokens_match_the_padded_lookup(dm, t5_dir, tmp_path, monkeypatch):  # noqa: F811
    from hybridvision.diffusion.text import cache as text_cache

    captions = [caption(i) for i in range(24)] + [""]
    calls = []
    encoder = text_cache.load_encoder(str(t5_dir), 0)  # the instance the cache loads (lru_cache)
    monkeypatch.setattr(encoder, "encode", lambda chunk, f=encoder.encode: calls.append(len(chunk)) or f(chunk))
    cache = text_cache.EmbeddingCache(str(t5_dir), tmp_path)
    table = cache.packed(captions + captions[:5], batch_size=8)  # repeats are encoded once
    assert calls == [8, 8, 8, 1] and cache.misses == 25 and len(table) == 30
    assert len(table.tokens) == int(table.lengths[:25].sum())  # a repeated caption's tokens are kept once
    states, mask = cache.lookup(captions)  # (25, L, D), from the cache now: no encoder call
    assert calls == [8, 8, 8, 1]
    rows = torch.tensor([3, 0, 24, 17])
    got, got_mask = table.rows(rows)
    length = int(mask[rows].sum(1).max())
    assert torch.equal(got_mask, mask[rows][:, :length])
    torch.testing.assert_close(got, states[rows][:, :length])
    monkeypatch.setattr(text_cache, "load_encoder", lambda *a: pytest.fail("the cache file should serve"))
    again = text_cache.EmbeddingCache(str(t5_dir), tmp_path).packed(captions)  # a second run: read from disk
    torch.testing.assert_close(again.rows(rows)[0], got)


# ---- Training and evaluation


def caption_args(root: str, out: Path, encoder: Path, *extra: str) -> list[str]:
    return [
        *("--model", "ascan_unet_t2i_test", "--conditioning", "text", "--text.encoder", str(encoder)),
        *("--data.dataset", "captions", "--data.root", root, "--img_size", "16", "--out_dir", str(out)),
        *("--batch_size", "8", "--max_steps", "2", "--epochs", "1", "--eval_batch_size", "12", "--threads", "1"),
        *("--budget_minutes", "0", "--amp", "off", "--progress", "false", "--tensorboard", "false"),
        *("--sample.sampler", "ddim", "--sample.steps", "2", "--val_images", "12", "--judge_size", "16"),
        *extra,
    ]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test: training and evaluation download nothing."""
    import socket

    def refuse(*args, **kwargs):
        pytest.fail(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_two_steps_on_a_folder_then_fid_without_classes(dm, t5_dir, tmp_path, rgb_classifier, no_network):  # noqa: F811
    free = write_folder(tmp_path / "free", 24, labels=False)
    argv = caption_args(str(free), tmp_path, t5_dir, "--classifier", str(rgb_classifier), "--eval_samples", "12")
    result = dm.training.train(config(dm, *argv))
    s = result.summary
    assert s["metric"] == "fid" and s["fid"] > 0 and s["val_loss"] > 0 and "cond_acc" not in s
    assert s["captions"]["train"] == 24 and s["captions"]["held_out"] == 12 and s["steps"] == 2
    saved = json.loads((result.run_dir / "final" / "config.json").read_text())
    assert saved["overrides"]["in_chans"] == 3 and saved["classes"] == []
    assert saved["caption_data"]["root"] == str(free)
    assert (result.run_dir / "samples" / "eval000_ema.png").is_file()
    # diffusion eval: the run's own held-out captions, FID only (no class to be accurate about).
    eval_argv = ["diffusion", "eval", str(result.run_dir), "--n", "12", "--classifier", str(rgb_classifier)]
    eval_argv += ["--sample.steps", "2", "--sample.sampler", "ddim", "--grid_per_class", "1", "--judge_size", "16"]
    assert main([*eval_argv, "--threads", "1"]) == 0
    record = json.loads((result.run_dir / "eval_ddim2_constant_n12.json").read_text())
    assert "cond_acc" not in record and record["fid"] > 0 and "(n=12)" in record["fid_kind"]
    assert Image.open(result.run_dir / "eval_ddim2_constant_n12.png").size[1] == (10 * (16 + 2) + 2) * 2  # 10 rows
    out = tmp_path / "g.png"  # generate from free text, in colour
    assert (
        main(
            [
                "generate",
                str(result.run_dir),
                "--prompt",
                "a photo of a bag",
                "--n",
                "1",
                "--steps",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert Image.open(out).mode == "RGB"


def test_scores_without_classes_and_with_the_captions_classes(dm, rgb_classifier):
    """score_samples: FID alone (cond_acc NaN) without classes; with per-sample classes, the share the probe
    assigns to them, recomputed here from the returned samples."""
    from hybridvision.diffusion.eval import fid, judge, score
    from hybridvision.engine.distributed import Dist

    probe = judge.load_classifier(rgb_classifier)
    torch.manual_seed(0)
    real = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    reference = score.real_reference(probe, real, None, 4, "real")
    assert math.isnan(reference.top1) and reference.stats.n == 10
    model = test_diffusion_unet.tiny(dm, "ascan_unet_t2i_test", in_chans=3, img_size=16)
    states = torch.randn(3, 4, model.config.context_dim)

    def condition(idx, labels):
        rows = torch.as_tensor(idx) % 3
        return dm.condition.TextCondition(
            states[rows], torch.ones(len(idx), 4, dtype=torch.bool), states[:1], torch.ones(1, 4, dtype=torch.bool)
        )

    common = dict(
        n=9, shape=(3, 16, 16), cfg=dm.sampling.SampleConfig(sampler="ddim", steps=2), noise=dm.schedule.NoiseConfig(),
        seed=0, batch_size=4, dist=Dist(), autocast=contextlib.nullcontext, condition=condition,
    )  # fmt: skip
    free = score.score_samples(model, probe, reference, num_classes=0, **common)
    sums = fid.FeatureSums(probe.dim)
    judge.probe_images(probe, free.images, 4, sums)
    assert math.isnan(free.cond_acc) and free.fid == pytest.approx(fid.frechet_distance(sums.stats(), reference.stats))
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0])
    scored = score.score_samples(model, probe, reference, num_classes=4, labels=labels, **common)
    preds = judge.probe_images(probe, scored.images, 4)
    assert torch.equal(scored.labels, labels) and torch.equal(scored.images, free.images)
    assert scored.cond_acc == pytest.approx(100 * float((preds == labels).float().mean()))


def test_two_steps_on_shards_with_classes_through_the_cli(dm, t5_dir, shards, rgb_classifier, tmp_path, capsys):  # noqa: F811
    argv = caption_args(shards, tmp_path, t5_dir, "--classifier", str(rgb_classifier), "--eval_samples", "12")
    assert main(["diffusion", "train", *argv, "--run_name", "wds"]) == 0
    summary = json.loads((tmp_path / "wds" / "summary.json").read_text())
    assert summary["metric"] == "cond_acc" and (summary["cond_acc"] * 12 / 100).is_integer() and summary["fid"] > 0
    assert summary["captions"]["source"] == shards
    eval_argv = ["diffusion", "eval", str(tmp_path / "wds"), "--n", "8", "--classifier", str(rgb_classifier)]
    eval_argv += ["--sample.steps", "2", "--sample.sampler", "ddim", "--grid_per_class", "0", "--judge_size", "16"]
    assert main([*eval_argv, "--threads", "1"]) == 0
    record = json.loads((tmp_path / "wds" / "eval_ddim2_constant_n8.json").read_text())
    assert list(record["cond_acc_per_class"]) == ["0", "1", "2", "3"] and (record["cond_acc"] * 8 / 100).is_integer()
    assert "conditional accuracy" in capsys.readouterr().out
    other = save_classifier(tmp_path / "grey")  # a classifier that was asked for and cannot judge colour: an error
    assert main([*eval_argv, "--classifier", str(other)]) == 2
    assert "takes 1-channel images, the captioned images are read with 3" in capsys.readouterr().err
    assert main(["diffusion", "train", *argv, "--classifier", str(other), "--run_name", "x"]) == 2
    err = capsys.readouterr().err
    assert "takes 1-channel images, the captioned images are read with 3 (data.channels)" in err


def test_the_default_judge_leaves_a_colour_run_to_its_validation_loss(dm, t5_dir, folder, tmp_path, caplog):  # noqa: F811
    """The plain command (default classifier, default eval_samples) trains on colour captions and says why there
    is no FID."""
    argv = caption_args(str(folder), tmp_path, t5_dir, "--run_name", "plain")
    assert main(["diffusion", "train", *argv]) == 0
    summary = json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert summary["metric"] == "val_loss" and "fid" not in summary and summary["val_loss"] > 0
    assert "no FID during training: classifier assets/fmnist_ascan_nano takes 1-channel images" in caplog.text


def test_a_caption_run_resumes_bit_exactly_without_encoding_again(dm, t5_dir, folder, tmp_path, monkeypatch):  # noqa: F811
    from run_helpers import assert_same, weights

    from hybridvision.diffusion.text import cache as text_cache

    base = caption_args(str(folder), tmp_path, t5_dir, "--eval_samples", "0", "--max_steps", "0", "--epochs", "2")
    base += ["--ckpt_every", "3", "--text.token_dropout", "0.3", "--label_dropout", "0.2", "--data.hflip", "0.5"]
    full = dm.training.train(config(dm, *base, "--run_name", "full"))
    assert full.summary["steps"] == 6  # 2 epochs of 24 images in batches of 8
    full = full.run_dir
    assert dm.training.train(config(dm, *base, "--run_name", "cut", "--max_steps", "3")).summary["steps"] == 3
    monkeypatch.setattr(text_cache, "load_encoder", lambda *a: pytest.fail("the captions are cached: no encoding"))
    resumed = dm.training.train(config(dm, *base, "--run_name", "cut", "--resume", "auto")).run_dir
    assert_same(weights(full), weights(resumed))
    assert_same(weights(full, "model_ema.safetensors"), weights(resumed, "model_ema.safetensors"))


def test_evaluating_a_caption_run_imports_no_training_code():
    from test_rundir import TRAINING

    code = "import sys, json, hybridvision.diffusion.evaluate; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert "hybridvision.diffusion.eval.captions" in loaded and not loaded & {
        *TRAINING,
        "hybridvision.diffusion.captions",
    }


def test_a_broken_caption_set_stops_the_cli_with_one_line(dm, t5_dir, tmp_path, capsys):  # noqa: F811
    root = _broken_folder(tmp_path, "image without caption")
    assert main(["diffusion", "train", *caption_args(str(root), tmp_path, t5_dir, "--eval_samples", "0")]) == 2
    err = capsys.readouterr().err.strip()
    assert "0003.png has no caption" in err and "Traceback" not in err
