"""Typed configs of class-conditional diffusion: training (a ``RunConfig``) and evaluation of a trained run.

Defaults: ``ascan_unet_fmnist`` on Fashion-MNIST at 32x32 in pixel space. Every field is a ``--key value`` flag of
``hybridvision diffusion train|eval`` or a key of a YAML recipe (configs/diffusion/).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from ..config import at_least, check, in_unit, one_of, parse_device
from ..data import FASHION_MNIST_DIR
from ..engine.config import RESUMABLE, OptimConfig, RunConfig
from ..registry import get_entry
from .eval.judge import DEFAULT_CLASSIFIER
from .sampling.samplers import SampleConfig
from .sampling.schedule import NoiseConfig
from .text.prompts import PROMPT_SPLITS, TRAIN_NAME_SETS

TEXT_FORMS = ("tokens", "sentence")  # a prompt as its word pieces, or as one token: its sentence vector

CONDITIONINGS = ("class", "text")

TASK = "diffusion"  # what model.json records of a diffusion run


DATASETS = ("fmnist", "captions")  # idx files with class labels, or captioned images (data/captions.py)


@dataclass(frozen=True)
class DiffusionDataConfig:
    """Images and their labels (idx files: Fashion-MNIST) or captions (``dataset: captions``); pixels map to
    [-1, 1]. Captioned images are a folder with metadata.jsonl (the Hub's imagefolder layout) or WebDataset tar
    shards; they need ``conditioning: text``."""

    dataset: str = "fmnist"  # "fmnist" (idx files of root) or "captions" (captioned images at root)
    root: str = FASHION_MNIST_DIR  # captions: a folder with metadata.jsonl, or shards such as "s/train-{000..009}.tar"
    train_split: str = "train"  # fmnist: the idx split trained on
    eval_split: str = "t10k"  # fmnist: held-out images: validation loss and FID reference statistics
    eval_root: str = ""  # captions: held-out captioned images (validation loss, FID reference); "" = root's own
    caption_column: str = "text"  # captions: the key of metadata.jsonl that holds the caption
    channels: int = 3  # captions: images are read as RGB (3) or grey (1), whatever their mode
    train_subset: int = 0  # only the first N training images (0 = all); for quick runs and tests
    eval_subset: int = 0  # only the first N evaluation images (0 = all)
    hflip: float = 0.0  # horizontal-flip probability (off: Fashion-MNIST's shoes all face one way)
    upsample: int = 1  # images are enlarged this many times (bilinear) before padding to img_size (28 -> 56 in 64)

    def __post_init__(self) -> None:
        at_least(self, 0, "train_subset", "eval_subset", prefix="data.")
        at_least(self, 1, "upsample", prefix="data.")
        in_unit(self, "hflip", prefix="data.")
        one_of("data.dataset", self.dataset, DATASETS)
        check(self.channels in (1, 3), f"data.channels is 1 (grey) or 3 (RGB), got {self.channels}")
        check(self.caption_column != "", "data.caption_column names the caption key of metadata.jsonl, e.g. text")
        check(
            self.dataset != "captions" or self.upsample == 1,
            "data.upsample enlarges Fashion-MNIST's 28 px images; captioned images are resized to img_size: drop it",
        )


@dataclass(frozen=True)
class TextConfig:
    """Text conditioning (``conditioning: text``): a frozen encoder, its cached prompt embeddings, the prompts."""

    encoder: str = "minilm"  # "minilm" (bundled all-MiniLM-L6-v2) or a local transformers folder (T5, CLIP text)
    max_length: int = 0  # tokens per prompt (0 = the encoder's limit); longer prompts are truncated with a warning
    cache_dir: str = ""  # prompt embeddings (safetensors); "" = <out_dir>/text_cache, shared by the runs there
    eval_prompts: str = "held_out"  # prompts of the evaluations: "held_out", "validation", "reported" or "train"
    noise: float = 0.0  # training: Gaussian noise on each prompt's tokens, up to this share of their RMS (0 = off)
    train_names: str = "few"  # training names per class: "few" (3-4) or "many" (8-9; diffusion/prompts.py)
    token_dropout: float = 0.0  # training: each real token but the first is masked out with this probability
    sentence_token: float = 0.0  # training: a prompt is given as one token, its sentence vector, with this probability
    form: str = "tokens"  # how evaluations and sampling give a prompt: "tokens" (its word pieces) or "sentence"

    def __post_init__(self) -> None:
        at_least(self, 0, "max_length", prefix="text.")
        check(0.0 <= self.noise <= 10.0, f"text.noise is a share of the tokens' RMS in [0, 10], got {self.noise}")
        check(
            0.0 <= self.token_dropout < 1.0, f"text.token_dropout is a probability in [0, 1), got {self.token_dropout}"
        )
        check(
            0.0 <= self.sentence_token <= 1.0,
            f"text.sentence_token is a probability in [0, 1], got {self.sentence_token}",
        )
        one_of("text.form", self.form, TEXT_FORMS)
        check(self.encoder != "", "text.encoder must be 'minilm' or a transformers model folder")
        one_of("text.eval_prompts", self.eval_prompts, PROMPT_SPLITS)
        one_of("text.train_names", self.train_names, TRAIN_NAME_SETS)


@dataclass(frozen=True)
class LatentConfig:
    """Latent space (AsCAN: the SDXL VAE): a diffusers ``AutoencoderKL`` folder; data encoded once and cached."""

    vae: str = ""  # AutoencoderKL save_pretrained folder; "" = pixel space (the default for small data)
    cache_dir: str = ""  # encoded data sets (safetensors); "" = <out_dir>/latent_cache
    batch_size: int = 64  # images per VAE call when encoding and decoding

    def __post_init__(self) -> None:
        at_least(self, 1, "batch_size", prefix="latent.")


def _optim() -> OptimConfig:
    # AdamW beta2 0.99 and weight decay 0.01 (AsCAN App. A.6-A.7); lr for small UNets at batch 128.
    return OptimConfig(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.01, warmup_epochs=0.25, min_lr=1e-5)


def _eval_sampling() -> SampleConfig:
    # Cheap and deterministic for the evaluations during training; `diffusion eval` defaults to the paper's Heun-30.
    return SampleConfig(sampler="ddim", steps=20, cfg="constant", cfg_scale=2.0)


# What evaluates a run, not what it trains: --resume may change these (flat keys, as config.yaml is compared).
EVAL_KEYS = frozenset(
    ("eval_samples", "eval_seed", "val_images", "classifier", "fid_stats", "grid_every")
    + ("judge_size", "text.eval_prompts", "text.cache_dir", "latent.cache_dir", "latent.batch_size")
    + tuple(f"sample.{f.name}" for f in fields(SampleConfig))
)


@dataclass(frozen=True)
class DiffusionTrainConfig(RunConfig):
    """One class-conditional diffusion training run (the engine's fields, then model, noise, data, evaluation)."""

    model: str = "ascan_unet_fmnist"
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra create_model overrides (dims, down ...)
    conditioning: str = "class"  # "class" (labels) or "text" (prompts through a frozen encoder; see `text`)
    img_size: int = 32  # images are zero-padded to this size (Fashion-MNIST: 28 -> 32)
    batch_size: int = 128
    eval_batch_size: int = 250  # images per sampling / validation batch
    label_dropout: float = 0.1  # share of labels (prompts) replaced by the null label (the empty prompt): CFG
    noise: NoiseConfig = field(default_factory=lambda: NoiseConfig(beta_end=0.02))
    data: DiffusionDataConfig = field(default_factory=DiffusionDataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    optim: OptimConfig = field(default_factory=_optim)
    sample: SampleConfig = field(default_factory=_eval_sampling)  # how evaluations sample
    eval_samples: int = 500  # images sampled per evaluation, balanced over classes (0: validation loss only)
    eval_seed: int = 0  # the evaluation's noise: every evaluation starts from the same noise
    val_images: int = 1000  # held-out images of the validation loss (fixed noise and timesteps)
    classifier: str = DEFAULT_CLASSIFIER  # save_pretrained folder of the judge (conditional accuracy, FID)
    fid_stats: str = ""  # reference statistics; "" = <classifier>/t10k_stats.safetensors, else computed
    grid_every: int = 1  # write a sample grid (one row per class) every N evaluations (0 = never)
    judge_size: int = 32  # the classifier's input size: larger samples are area-downsampled to it (64 -> 32)

    RESUMABLE: ClassVar[frozenset[str]] = RESUMABLE | EVAL_KEYS  # evaluation never changes training

    def __post_init__(self) -> None:
        super().__post_init__()
        get_entry(self.model)  # an unknown name fails here, with the closest names, before anything runs
        check(self.img_size >= 8, f"img_size must be >= 8, got {self.img_size}")
        check(0 <= self.label_dropout < 1, f"label_dropout must be in [0, 1), got {self.label_dropout}")
        one_of("conditioning", self.conditioning, CONDITIONINGS)
        check(
            self.data.dataset != "captions" or self.conditioning == "text",
            "data.dataset captions trains on captions: add --conditioning text",
        )
        at_least(self, 0, "eval_samples", "eval_seed", "val_images", "grid_every", "judge_size")


@dataclass(frozen=True)
class DiffusionEvalConfig:
    """``hybridvision diffusion eval RUN``: conditional accuracy and FID of a trained run's samples."""

    n: int = 1000  # images sampled, balanced over classes (compare FID only at equal n)
    weights: str = "ema"  # "ema" or "model"
    sample: SampleConfig = field(default_factory=SampleConfig)  # the paper's Heun-30, CFG 1.78
    seed: int = 0
    batch_size: int = 250
    classifier: str = DEFAULT_CLASSIFIER
    fid_stats: str = ""  # "" = <classifier>/t10k_stats.safetensors, else computed from data.eval_split
    data: DiffusionDataConfig = field(default_factory=DiffusionDataConfig)
    grid_per_class: int = 10  # the grid: one row per class with this many images (0 = no grid)
    prompts: str = "held_out"  # text runs: the "held_out", "validation", "reported" or "train" prompts
    text_form: str = ""  # text runs: give prompts as "tokens" or as one "sentence" token ("" = the run's text.form)
    judge_size: int = 32  # the classifier's input size: larger samples are area-downsampled to it (64 -> 32)
    device: str = "auto"
    threads: int = 0  # torch intra-op threads (0 = torch's default)
    out: str = ""  # JSON of the numbers (default: RUN/eval_<sampler>_<cfg>.json; the grid beside it)

    def __post_init__(self) -> None:
        one_of("weights", self.weights, ("ema", "model"))
        one_of("prompts", self.prompts, PROMPT_SPLITS)
        one_of("text_form", self.text_form, ("", *TEXT_FORMS))
        at_least(self, 1, "n", "batch_size")
        at_least(self, 0, "seed", "grid_per_class", "threads", "judge_size")
        parse_device(self.device)


def cache_dir(cfg: DiffusionTrainConfig, kind: str) -> Path:
    """Where the run's ``kind`` ("text" or "latent") cache lives: the configured folder or <out_dir>/<kind>_cache."""
    return Path(getattr(cfg, kind).cache_dir or Path(cfg.out_dir) / f"{kind}_cache")


def text_info(cfg: DiffusionTrainConfig) -> dict[str, Any]:
    """What a saved text model records of its conditioning: the encoder and its cache, and the training names."""
    text = cfg.text
    return {
        "encoder": text.encoder,
        "max_length": text.max_length,
        "cache_dir": str(cache_dir(cfg, "text")),
        "train_names": text.train_names,
        "form": text.form,
    }
