"""Prompts for a classification data set turned into text-to-image (AsCAN §3.3.2: ImageNet as "a photo of a <class
name>", with a random synonym of the class name each time).

Each Fashion-MNIST class has several names (noun phrases with their article, so every template reads as English),
and prompts are template x name. A second, **held-out** set of names and templates is never used in training:
a model that draws the right garment for "a studio shot of a pair of jeans" when it only ever saw "trousers",
"pants" and "slacks" in other sentences follows the encoder's meaning, not memorised strings. The held-out names
share no word with any training prompt (checked in tests/test_diffusion_text.py).

Two more sets of unseen names, made from WordNet by scripts/t2i_prompt_sets.py and committed beside this module
(fmnist_prompt_sets.json), share no word with the training or held-out names nor with each other: **validation**,
on which settings are chosen, and **reported**, only ever reported. The held-out set, on which names were once
chosen, stays for comparison with earlier results; no setting is chosen on it. All three use the held-out templates.

Training draws, per sample and seeded by the engine's generator, one of its class's training prompts uniformly;
evaluation cycles deterministically through the prompts of each class of the set it evaluates.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import product
from pathlib import Path

import torch
from torch import Tensor

from ...config import one_of

# Per class, in label order: (training names, held-out names). Names carry their article ("a", "an", "a pair of").
FMNIST_NAMES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("a t-shirt", "a top", "a tank top", "a short-sleeved top"), ("a sleeveless vest", "a singlet")),
    (("a pair of trousers", "a pair of pants", "a pair of slacks"), ("a pair of jeans", "a pair of leggings")),
    (("a pullover", "a sweater", "a jumper"), ("a sweatshirt", "a knitted jersey")),
    (("a dress", "a gown", "a frock"), ("a sundress", "an evening outfit")),
    (("a coat", "a jacket", "a parka"), ("a raincoat", "an overcoat")),
    (("a sandal", "a flip-flop", "a strappy summer shoe"), ("an open-toed slipper", "an espadrille")),
    (("a shirt", "a blouse", "a button-down shirt"), ("a collared overshirt", "a denim overshirt")),
    (("a sneaker", "a running shoe", "a trainer"), ("an athletic lace-up", "a canvas lace-up")),
    (("a bag", "a handbag", "a purse", "a tote bag"), ("a backpack", "a satchel")),
    (("an ankle boot", "a boot", "a bootie", "a chelsea boot"), ("a suede bootee", "a riding bootee")),
)  # fmt: skip

# More training names per class (``text.train_names: many``), closer to the paper's "a random synonym each time":
# with three or four names a class, the denoiser can key on the exact words; with eight or nine it has to follow
# what the encoder makes of them. None shares a word with a held-out name (tests/test_diffusion_text.py).
FMNIST_MORE_NAMES: tuple[tuple[str, ...], ...] = (
    ("a tee", "a crop top", "a camisole", "a halter top"),
    ("a pair of chinos", "a pair of joggers", "a pair of sweatpants", "a pair of cargo pants", "a pair of culottes"),
    ("a cardigan", "a hoodie", "a turtleneck", "a fleece", "a woolly sweater"),
    ("a maxi dress", "a cocktail dress", "a ball gown", "a pinafore", "a kaftan"),
    ("a trench coat", "an anorak", "a blazer", "a windbreaker", "a puffer jacket"),
    ("a gladiator sandal", "a beach sandal", "a wedge sandal", "a slingback", "a pool slide"),
    ("a flannel shirt", "an oxford shirt", "a work shirt", "a polo shirt", "a plaid shirt"),
    ("a tennis shoe", "a gym shoe", "a skate shoe", "a basketball shoe", "a jogging shoe"),
    ("a clutch", "a shoulder bag", "a duffel bag", "a messenger bag", "a briefcase"),
    ("a combat boot", "a cowboy boot", "a hiking boot", "a desert boot", "a heeled boot"),
)  # fmt: skip
TRAIN_NAME_SETS = ("few", "many")  # the training names: FMNIST_NAMES' own, or with FMNIST_MORE_NAMES

TRAIN_TEMPLATES = (
    "a photo of {}",
    "a picture of {}",
    "{}, product photo",
    "an image of {}",
    "{} on a plain background",
    "a black and white photo of {}",
    "{}",
)
WORDNET_SPLITS = ("validation", "reported")  # unseen names from WordNet: choose settings / only report
PROMPT_SPLITS = ("held_out", "train", *WORDNET_SPLITS)
PROMPT_SETS_FILE = Path(__file__).with_name("fmnist_prompt_sets.json")  # written by scripts/t2i_prompt_sets.py
HELD_OUT_TEMPLATES = (
    "a studio shot of {}",
    "{} for sale, catalog image",
    "a close-up photograph showing {}",
)


@dataclass(frozen=True)
class PromptSet:
    """Prompts and the class each one names, grouped by class (``prompts[offsets[k]:offsets[k + 1]]`` is class k)."""

    prompts: tuple[str, ...]
    labels: tuple[int, ...]

    def __post_init__(self) -> None:
        if list(self.labels) != sorted(self.labels):
            raise ValueError("a PromptSet is grouped by class: its labels must be sorted")

    @property
    def num_classes(self) -> int:
        return max(self.labels) + 1 if self.labels else 0

    def counts(self) -> Tensor:
        """Prompts per class: (num_classes,)."""
        return torch.bincount(torch.tensor(self.labels), minlength=self.num_classes)

    def offsets(self) -> Tensor:
        """Index of each class's first prompt: (num_classes,)."""
        return torch.cumsum(self.counts(), 0) - self.counts()

    def draw(self, labels: Tensor, gen: torch.Generator) -> Tensor:
        """One prompt index per label, uniform among that class's prompts, from the CPU generator ``gen``: (B,)."""
        labels = labels.cpu()
        u = torch.rand(len(labels), generator=gen)  # (B,) in [0, 1)
        counts = self.counts()[labels]
        return self.offsets()[labels] + (u * counts).long().clamp_max(counts - 1)

    def cycle(self, labels: Tensor, indices: Sequence[int]) -> Tensor:
        """Fixed prompt indices: sample ``i`` of class k gets class k's prompt number ``i // classes`` (cyclic)."""
        labels = labels.cpu()
        turn = torch.as_tensor(list(indices)) // self.num_classes
        return self.offsets()[labels] + turn % self.counts()[labels]


def make_prompts(names: Sequence[Sequence[str]], templates: Sequence[str]) -> PromptSet:
    """Every template with every name of every class, class after class."""
    prompts, labels = [], []
    for k, class_names in enumerate(names):
        for template, name in product(templates, class_names):
            prompts.append(template.format(name))
            labels.append(k)
    return PromptSet(tuple(prompts), tuple(labels))


@cache
def wordnet_names(split: str) -> tuple[tuple[str, ...], ...]:
    """Per class, the names of the "validation" or "reported" set (fmnist_prompt_sets.json)."""
    if split not in WORDNET_SPLITS:
        raise ValueError(f"WordNet prompt sets are {WORDNET_SPLITS}, got {split!r}")
    data = json.loads(PROMPT_SETS_FILE.read_text(encoding="utf-8"))
    return tuple(tuple(names) for names in data[split])


def fmnist_prompts(split: str, names: str = "few") -> PromptSet:
    """Fashion-MNIST prompts: "train" (training names x training templates), or "held_out", "validation" or
    "reported" (that set's names x the held-out templates).

    ``names`` picks the training names ("few": FMNIST_NAMES' own, "many": with FMNIST_MORE_NAMES); the other
    sets are the same for both."""
    one_of("training names", names, TRAIN_NAME_SETS)
    one_of("prompt split", split, PROMPT_SPLITS)
    if split == "train":
        more = FMNIST_MORE_NAMES if names == "many" else ((),) * len(FMNIST_NAMES)
        return make_prompts([(*train, *extra) for (train, _), extra in zip(FMNIST_NAMES, more)], TRAIN_TEMPLATES)
    if split == "held_out":
        return make_prompts([held for _, held in FMNIST_NAMES], HELD_OUT_TEMPLATES)
    return make_prompts(wordnet_names(split), HELD_OUT_TEMPLATES)  # validation, reported


# ---- Prompts from users


class PromptError(ValueError):
    """A prompt that cannot be used; the message says what is wrong and how to fix it."""


EMPTY_HINT = (
    "give a description such as 'a photo of a sneaker', or allow empty prompts (--allow-empty) to sample "
    "unconditionally: the empty prompt is the null prompt of classifier-free guidance"
)


def clean_prompt(prompt: object, *, allow_empty: bool = False, where: str = "the prompt") -> str:
    """``prompt`` with its whitespace collapsed; bytes, non-text, control characters and (unless allowed) empty
    prompts raise ``PromptError`` naming the fix."""
    if isinstance(prompt, (bytes, bytearray)):
        raise PromptError(f"{where} is bytes, not text: decode it first (e.g. prompt.decode('utf-8'))")
    if not isinstance(prompt, str):
        raise PromptError(f"{where} is a {type(prompt).__name__}, not text: pass a string such as 'a photo of a bag'")
    if "\ufffd" in prompt:
        raise PromptError(f"{where} contains U+FFFD, the mark of bytes that were not valid UTF-8: fix its encoding")
    control = [c for c in prompt if unicodedata.category(c) == "Cc" and c not in "\t\n\r"]
    if control:
        raise PromptError(f"{where} contains the control character {control[0]!r}: prompts are plain text, remove it")
    text = " ".join(prompt.split())
    if not text and not allow_empty:
        raise PromptError(f"{where} is empty{' (only whitespace)' if prompt else ''}: {EMPTY_HINT}")
    return text


def clean_prompts(prompts: Sequence[object], *, allow_empty: bool = False) -> list[str]:
    if not prompts:
        raise PromptError("no prompts given: pass --prompt TEXT (repeatable) or --prompts-file FILE, one per line")
    return [clean_prompt(p, allow_empty=allow_empty, where=f"prompt {i + 1}") for i, p in enumerate(prompts)]


def read_prompts_file(path: str | Path, *, allow_empty: bool = False) -> list[str]:
    """One prompt per line of a UTF-8 text file; blank lines are skipped (they separate, they do not ask)."""
    path = Path(path)
    if path.is_dir():
        raise PromptError(f"prompts file {path} is a directory: give a text file with one prompt per line")
    if not path.is_file():
        raise PromptError(f"prompts file {path} does not exist: write one prompt per line into a text file")
    data = path.read_bytes()
    if b"\x00" in data:
        raise PromptError(f"{path} is not a text file (it holds NUL bytes): write one prompt per line, UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PromptError(f"{path} is not UTF-8 text (line {line}): save it as UTF-8, one prompt per line") from None
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not lines:
        raise PromptError(f"{path} holds no prompts: write one prompt per line")
    return [clean_prompt(line, allow_empty=allow_empty, where=f"{path} line {i}") for i, line in lines]
