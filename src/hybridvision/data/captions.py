"""Captioned images for text-to-image training, in the two layouts their users already have.

- **An image folder with ``metadata.jsonl``** (the Hugging Face Hub's imagefolder layout, which diffusers'
  text-to-image examples read): one JSON object per line with ``file_name`` (relative to the folder; nested paths
  such as ``train/0001.png`` allowed) and the caption under ``text`` (another key with ``column``). Every image in
  the folder needs its line: an image without one is a missing caption, as in the Hub's loader.
- **WebDataset tar shards**: files grouped by their shared key (``0001.jpg`` + ``0001.txt``), the caption being
  the UTF-8 ``.txt``; a shard list is written as WebDataset users write it, with brace patterns
  (``shards/train-{000..009}.tar``). The shards are read with the ``webdataset`` library.

An optional integer class per image (``label`` in metadata.jsonl, a ``.cls`` file in a shard, WebDataset's
convention) lets an evaluation judge whether samples show the class their caption describes; it is given for
every image or for none. Images of any size and mode (grey, RGBA, palette, 16-bit, CMYK) become ``channels``
(1 or 3) uint8 squares of ``size``: the shorter side resized to ``size`` (bilinear), the centre cropped, as
diffusers' examples do with ``--center_crop``. Everything is decoded once, into memory, in file order. Bad data
fails with one line naming the file (or shard and key) and the fix.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .idx import DataError
from .images import IMAGE_SUFFIXES, open_image

METADATA = "metadata.jsonl"  # the imagefolder layout's caption file
SHARD_IMAGES = tuple(s.lstrip(".") for s in IMAGE_SUFFIXES)  # extensions read as the image of a shard sample
DECODE_CHUNK, DECODE_THREADS = 256, 8  # images decoded per chunk, and by at most this many threads
LABEL_KEY, SHARD_LABEL = "label", "cls"  # the optional class: a metadata key, a shard sample's extension
LAYOUT_HINT = (
    f'expected a folder with {METADATA} (one line per image: {{"file_name": "0001.png", "text": "a caption"}}) or '
    "WebDataset tar shards (0001.jpg + 0001.txt; a list as shards/train-{000..009}.tar)"
)


class CaptionError(DataError):
    """Captioned data that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class CaptionedImages:
    """Decoded images, their captions and, where the data gives them, their classes."""

    images: Tensor  # uint8 (N, C, size, size)
    captions: tuple[str, ...]  # one per image
    labels: Tensor | None  # int64 (N,) of the data's classes; None when the data names none
    source: str  # the folder or shard pattern read

    def __len__(self) -> int:
        return len(self.captions)


@dataclass(frozen=True)
class _Record:
    """One captioned image before decoding: a file, or a shard member's bytes, named for errors."""

    name: str  # the file, or "shard.tar:key"
    image: Path | bytes
    caption: str
    label: int | None


def read_captions(
    root: str | Path, size: int, channels: int, *, column: str = "text", limit: int = 0
) -> CaptionedImages:
    """The captioned images at ``root`` (a folder with metadata.jsonl, or a tar shard or brace pattern of shards)
    as a ``CaptionedImages`` of ``channels`` x ``size`` x ``size``; only the first ``limit`` (0 = all).

    Records stream in file order and are decoded a chunk at a time by a few threads (PIL decodes without the
    GIL), so a shard's compressed bytes are held only until their chunk is decoded."""
    records = islice(_records(str(root), column), limit or None)
    images, captions, labels = [], [], []
    with ThreadPoolExecutor(max_workers=min(DECODE_THREADS, os.cpu_count() or 1)) as pool:
        while chunk := list(islice(records, DECODE_CHUNK)):
            if not captions:
                first = chunk[0]
            for r in chunk:
                _same_classing(str(root), r, first)
            images += pool.map(lambda r: decode(r.name, r.image, size, channels), chunk)
            captions += [r.caption for r in chunk]
            labels += [r.label for r in chunk]
    if not captions:
        raise CaptionError(f"{root} holds no captioned images; {LAYOUT_HINT}")
    classes = torch.tensor(labels, dtype=torch.long) if first.label is not None else None
    return CaptionedImages(torch.stack(images), tuple(captions), classes, str(root))  # (N, C, size, size) images


def _same_classing(root: str, record: _Record, first: _Record) -> None:
    """Classes are given for every image or for none: ``record`` is classed as the first image is."""
    if (record.label is None) != (first.label is None):
        has, lacks = (record, first) if record.label is not None else (first, record)
        raise CaptionError(
            f"{root}: {lacks.name} has no class but {has.name} has one: give every image a class "
            f"('{LABEL_KEY}' in {METADATA}, a .{SHARD_LABEL} file in a shard) or none"
        )


def _records(root: str, column: str) -> Iterator[_Record]:
    path = Path(root).expanduser()
    if path.is_dir():
        return _folder_records(path, column)
    if path.suffix == ".tar" or "{" in root:
        return _shard_records(root)
    raise CaptionError(f"{root} does not exist; {LAYOUT_HINT}")


# ---- Image folder with metadata.jsonl


def _folder_records(root: Path, column: str) -> Iterator[_Record]:
    meta = root / METADATA
    if not meta.is_file():
        found = "no files" if not any(root.iterdir()) else f"no {METADATA}"
        raise CaptionError(f"{root} has {found}; {LAYOUT_HINT}")
    try:
        lines = meta.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise CaptionError(f"{meta} is not UTF-8 text; save it as UTF-8, one JSON object per line") from None
    records = [_metadata_record(root, meta, i, line, column) for i, line in enumerate(lines, 1) if line.strip()]
    named = {Path(r.name).resolve() for r in records}  # every line read before any image is decoded
    unnamed = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.resolve() not in named)
    if unnamed:
        rel = unnamed[0].relative_to(root).as_posix()
        raise CaptionError(
            f'{unnamed[0]} has no caption: {meta} has no line with "file_name": "{rel}" ({len(unnamed)} such '
            "images); add a line for each, or move them out of the folder"
        )
    yield from records


def _metadata_record(root: Path, meta: Path, number: int, line: str, column: str) -> _Record:
    """One line of metadata.jsonl as a record (its file checked to exist, its caption and class to be usable)."""
    where = f"{meta} line {number}"
    try:
        entry = json.loads(line)
    except ValueError as e:
        raise CaptionError(f"{where} is not JSON ({e.msg}); write one JSON object per line") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
        raise CaptionError(f'{where} has no "file_name"; each line names its image: {{"file_name": "0001.png", ...}}')
    if column not in entry:
        keys = ", ".join(sorted(entry)) or "none"
        raise CaptionError(
            f'{where} has no "{column}" (its keys: {keys}); add the caption as "{column}" or name the caption key '
            "with --data.caption_column"
        )
    file = root / entry["file_name"]
    if not file.is_file():
        raise CaptionError(f"{where}: {entry['file_name']!r} is not a file under {root}; fix the path or the line")
    caption = _caption(entry[column], where)
    return _Record(str(file), file, caption, _label(entry.get(LABEL_KEY), where))


def _caption(value: object, where: str) -> str:
    """A caption with its whitespace collapsed; not text or empty is an error naming ``where``."""
    if not isinstance(value, str):
        raise CaptionError(f"{where}: the caption is a {type(value).__name__}, not text; write it as a string")
    text = " ".join(value.split())
    if not text:
        raise CaptionError(f"{where}: the caption is empty; write what the image shows, or remove the image")
    return text


def _label(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CaptionError(f"{where}: the class {value!r} is not a class index (an integer >= 0); fix or remove it")
    return value


# ---- WebDataset tar shards


def expand_shards(pattern: str) -> list[Path]:
    """The shard files a brace pattern names (``train-{000..009}.tar``, ``{a,b}.tar``), each checked to exist."""
    from braceexpand import braceexpand

    paths = [Path(p).expanduser() for p in braceexpand(pattern)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        more = f" and {len(missing) - 1} more of the {len(paths)} shards" if len(missing) > 1 else ""
        raise CaptionError(f"shard {missing[0]} does not exist{more}; fix the pattern {pattern!r} or the files")
    return paths


def _webdataset():
    try:
        import webdataset
    except ImportError:
        raise CaptionError(
            f"reading tar shards needs the webdataset package: pip install webdataset (or use a folder with {METADATA})"
        ) from None
    return webdataset


def _shard_records(pattern: str) -> Iterator[_Record]:
    wds = _webdataset()
    shards = [str(p) for p in expand_shards(pattern)]
    # Every process reads every shard (the engine splits the decoded images), so no node or worker splitting.
    dataset = wds.WebDataset(shards, shardshuffle=False, empty_check=False, nodesplitter=None, workersplitter=None)
    samples = iter(dataset)
    while True:
        try:
            sample = next(samples)
        except StopIteration:
            return
        except Exception as e:  # tarfile.ReadError, duplicate keys ...: from inside the library, name the shards
            raise CaptionError(
                f"{pattern}: the shards cannot be read ({_reason(e)}); fix or remove the bad one"
            ) from None
        yield _shard_record(sample)


def _reason(error: BaseException) -> str:
    """The first line of what went wrong (webdataset appends the stream and the URL to an error's arguments)."""
    text = str(error.args[0] if error.args else "").strip()
    return text.splitlines()[0] if text else type(error).__name__


def _shard_record(sample: dict) -> _Record:
    name = f"{sample.get('__url__', '?')}:{sample['__key__']}"
    image = next((sample[ext] for ext in SHARD_IMAGES if ext in sample), None)
    if image is None:
        others = ", ".join(f".{k}" for k in sorted(sample) if not k.startswith("__")) or "nothing"
        raise CaptionError(f"{name} has no image (it has {others}); add a .jpg or .png with the same key")
    if "txt" not in sample:
        raise CaptionError(f"{name} has no caption: add {sample['__key__']}.txt beside its image in the shard")
    caption = _caption(_text(sample["txt"], f"{name}.txt"), f"{name}.txt")
    label = sample.get(SHARD_LABEL)
    if label is not None:
        text = _text(label, f"{name}.{SHARD_LABEL}").strip()
        label = _label(int(text) if text.isdigit() else text, f"{name}.{SHARD_LABEL}")
    return _Record(name, image, caption, label)


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CaptionError(f"{where} is not UTF-8 text; save it as UTF-8") from None


# ---- Decoding


class _NamedBytes(io.BytesIO):
    """A shard member's bytes that print as its name, so that image errors name the shard and key."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.label = name

    def __str__(self) -> str:
        return self.label


def decode(name: str, image: Path | bytes, size: int, channels: int) -> Tensor:
    """uint8 (channels, size, size): the shorter side resized to ``size`` (bilinear), the centre cropped.

    Raises ``ImageError`` naming ``name`` when the file cannot be decoded."""
    from PIL import Image, ImageOps

    source = _NamedBytes(image, name) if isinstance(image, bytes) else image
    img = ImageOps.fit(open_image(source, channels), (size, size), method=Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8).reshape(size, size, channels)  # (H, W) or (H, W, C) -> (H, W, C)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
