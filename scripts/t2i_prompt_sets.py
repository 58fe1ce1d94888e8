"""The validation and reported-only prompt sets of Fashion-MNIST text-to-image, made from WordNet.

    python scripts/t2i_prompt_sets.py            # writes src/hybridvision/diffusion/text/fmnist_prompt_sets.json
    python scripts/t2i_prompt_sets.py --check    # exit 1 if the committed file is not what this script writes

Reads Debian's WordNet 3.0 (``apt-get install wordnet-base``: /usr/share/wordnet/data.noun, index.noun and
index.adj, parsed here; no nltk). For each class a fixed list of synsets, chosen by reading their glosses
(``CLASS_SYNSETS``), gives the candidate names: their lemmas and those of the synsets below them, less the
subtrees in ``CUT``. ``RULES`` then drop, each with its reason written into the file: proper nouns, lemmas that
read as an adjective, historical garments (by their gloss), lemmas that are candidates of two classes, lemmas that
share a word with a training name (few or many), a held-out name or a template, or are a spelling of one of those
words, lemmas with a word that names another class, lemmas whose commonest sense or another sense is something
else (a person, an animal, a place, a plant, a food, or a garment of another kind), and every lemma of a synset
after the first kept (one name per synset). Where WordNet leaves a class fewer than ``2 * MIN_PER_SET`` names,
``SUPPLEMENT`` adds fixed names of ours, marked as such, through the same rules.

The names of each class are then split, seeded (``SEED``), into **validation** (for choosing settings) and
**reported** (only reported, never used to choose anything): names that share a word stay on one side, so no word
is in both sets, and each class gets as many names in one set as in the other (at most ``MAX_PER_SET``; the rest
is recorded as unused). Names carry their article: "a", "an", or "a pair of" for the trousers class and for
plural-only lemmas. Both sets use the held-out templates. The file records the WordNet version, digests of the
files read, the synsets used, every dropped candidate with its reason, and the two sets, which
``hybridvision.diffusion.text.prompts`` reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hybridvision.data.idx import FASHION_MNIST_CLASSES
from hybridvision.diffusion.text.prompts import (
    FMNIST_MORE_NAMES,
    FMNIST_NAMES,
    HELD_OUT_TEMPLATES,
    PROMPT_SETS_FILE,
    TRAIN_TEMPLATES,
)
from hybridvision.fileio import save_text

WORDNET_DIR = Path("/usr/share/wordnet")
SEED = 0  # the split of each class's names into validation and reported
MIN_PER_SET = 2  # names per class in each set, at least (SUPPLEMENT fills up to it)
MAX_PER_SET = 4  # names per class in each set, at most (the rest is recorded as unused)
PAIRED = (1,)  # classes whose every name is "a pair of" a plural (trousers)
OTHER_READINGS = {18: "a person", 5: "an animal", 15: "a place", 20: "a plant", 13: "a food"}  # lexicographer files
HISTORICAL = re.compile(r"former|century|centuries|Middle Ages|ancient|Renaissance|Graeco-Roman|regime|hussar")


@dataclass(frozen=True)
class Pick:
    """A WordNet noun synset: its offset in data.noun and its first lemma (a check that the offset is the one meant)."""

    offset: str  # eight digits, as in data.noun
    lemma: str  # the synset's first lemma, as written in data.noun
    below: bool = True  # whether its hyponyms (transitively, less CUT) are candidates too


# Per class, in label order: the synsets whose lemmas (and hyponyms' lemmas) are candidate names.
CLASS_SYNSETS: tuple[tuple[Pick, ...], ...] = (
    (  # T-shirt/top
        Pick("03595614", "jersey", below=False),  # "a close-fitting pullover shirt" (below it: turtleneck)
        Pick("04223299", "singlet"),  # "a collarless men's undergarment for the upper part of the body"
        Pick("04390577", "tank_top"),  # "a tight-fitting sleeveless shirt with wide shoulder straps"
        Pick("02926426", "bustier"),  # "a close-fitting and strapless top without sleeves"
        Pick("03480579", "halter"),  # "a woman's top that fastens behind the back and neck"
        Pick("02944146", "camisole"),  # "a short sleeveless undergarment for women"
    ),
    (Pick("04489008", "trouser"),),  # Trouser: "a garment extending from the waist to the knee or ankle"
    (Pick("04370048", "sweater"),),  # Pullover: "a crocheted or knitted garment covering the upper part of the body"
    (Pick("03236735", "dress"),),  # Dress: "a one-piece garment for a woman; has skirt and bodice"
    (Pick("03057021", "coat"),),  # Coat: "an outer garment that has sleeves and covers the body from shoulder down"
    (Pick("04133789", "sandal"),),  # Sandal: "a shoe consisting of a sole fastened by straps to the foot"
    (
        Pick("04197391", "shirt"),  # Shirt: "a garment worn on the upper half of the body"
        Pick("02854926", "blouse"),  # "a top worn by women"
    ),
    (  # Sneaker
        Pick("03472535", "gym_shoe"),  # "a canvas shoe with a pliable rubber sole"
        Pick("04120489", "running_shoe"),  # "a light comfortable shoe designed for running"
        Pick("03041449", "cleats"),  # "shoes with leather or metal projections on the soles"
    ),
    (  # Bag
        Pick("02774152", "bag"),  # "a container used for carrying money and small personal items" (handbag)
        Pick("02769748", "backpack"),  # "a bag carried by a strap on your back or shoulder"
        Pick("02970408", "carryall"),  # "a capacious bag or basket" (tote)
        Pick("04146343", "schoolbag"),  # "a bag for carrying school books and supplies"
        Pick("03709823", "mailbag"),  # "letter carrier's shoulder bag"
        Pick("03414029", "gamebag"),  # "a canvas or leather bag for carrying game"
        Pick("02967294", "carpetbag"),  # "traveling bag made of carpet"
        Pick("04518764", "valise"),  # "a small overnight bag for short trips"
        Pick("04544450", "waist_pack"),  # "a small pouch ... worn around the waist"
    ),
    (  # Ankle boot
        Pick("02872752", "boot"),  # "footwear that covers the whole foot and lower leg"
        Pick("03027625", "chukka"),  # "a shoe that comes up to the ankle and is laced"
        Pick("03090710", "congress_boot"),  # "an ankle high shoe with elastic gussets in the sides"
    ),
)  # fmt: skip

# Subtrees left out, with why (from their glosses).
CUT: tuple[tuple[Pick, str], ...] = (
    (Pick("03595614", "jersey"), "a T-shirt: the T-shirt/top class, not the shirt class"),
    (Pick("04390577", "tank_top"), "the T-shirt/top class, not the shirt class"),
    (Pick("04205318", "short_pants"), "shorts end at or above the knee; the class's trousers are full length"),
    (Pick("02896442", "breeches"), "breeches end above the knee"),
    (Pick("03660124", "Levi's"), "a brand"),
    (Pick("03521544", "hip_boot"), "thigh-high, not an ankle boot"),
    (Pick("04228581", "ski_boot"), "sports equipment, not an ankle boot"),
)

# Garments, footwear and bags: a candidate with a sense among these outside its own class's synsets is ambiguous.
WEARABLES = (
    Pick("03051540", "clothing"),
    Pick("03380867", "footwear"),
    Pick("02773037", "bag"),
    Pick("02774152", "bag"),
    Pick("02774630", "baggage"),
)

# Names of ours where WordNet 3.0 leaves a class fewer than 2 * MIN_PER_SET names, fixed before any measurement
# (retail and regional words for the garment; each still passes RULES).
SUPPLEMENT: tuple[tuple[str, ...], ...] = (
    ("racerback",),  # T-shirt/top: WordNet keeps undershirt, bustier, underbodice
    (),
    ("crewneck", "roll-neck", "quarter-zip"),  # Pullover: WordNet keeps slipover only
    (),
    (),
    ("toe-post",),  # Sandal: WordNet keeps huarache, zori, scuffer
    (),
    ("sandshoe", "daps", "tackies"),  # Sneaker: WordNet keeps cleats only
    (),
    ("shootie",),  # Ankle boot: WordNet keeps buskin, chukka, congress gaiter
)


@dataclass(frozen=True)
class Synset:
    """One noun synset of data.noun."""

    offset: str  # eight digits
    lexfile: int  # lexicographer file number (6: noun.artifact, 18: noun.person, ...)
    lemmas: tuple[str, ...]  # as written (underscores for spaces, capitals kept)
    hyponyms: tuple[str, ...]  # offsets of the synsets directly below ("~" pointers)
    gloss: str


@dataclass(frozen=True)
class WordNet:
    """The noun synsets, the senses of each noun (most frequent first) and the adjectives."""

    synsets: dict[str, Synset]  # offset -> synset
    senses: dict[str, tuple[int, tuple[str, ...]]]  # lowercased lemma -> (tagged sense count, synset offsets)
    adjectives: frozenset[str]  # lemmas of index.adj
    version: str  # e.g. "WordNet 3.0"
    digests: dict[str, str]  # file name -> sha256 of the bytes read


def parse_synset(line: str) -> Synset:
    """A data.noun line: offset lex_filenum ss_type w_cnt (word lex_id)* p_cnt (ptr offset pos src/tgt)* | gloss."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    count = int(fields[3], 16)
    lemmas = tuple(fields[4 + 2 * i] for i in range(count))
    at = 4 + 2 * count
    pointers = [fields[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(int(fields[at]))]
    hyponyms = tuple(p[1] for p in pointers if p[0] == "~" and p[2] == "n")
    return Synset(fields[0], int(fields[1]), lemmas, hyponyms, gloss.strip())


def parse_senses(line: str) -> tuple[str, tuple[int, tuple[str, ...]]]:
    """An index.noun line: lemma pos synset_cnt p_cnt ptr* sense_cnt tagsense_cnt offset*."""
    fields = line.split()
    count, pointers = int(fields[2]), int(fields[3])
    tagged = int(fields[5 + pointers])
    return fields[0], (tagged, tuple(fields[6 + pointers : 6 + pointers + count]))


def read_wordnet(folder: Path = WORDNET_DIR) -> WordNet:
    """data.noun, index.noun and index.adj of ``folder`` (license lines, which start with two spaces, skipped)."""
    raw = {name: (folder / name).read_bytes() for name in ("data.noun", "index.noun", "index.adj")}
    lines = {name: [x for x in data.decode("latin-1").splitlines() if x[:2] != "  "] for name, data in raw.items()}
    header = raw["data.noun"][:4000].decode("latin-1")
    version = m.group(0) if (m := re.search(r"WordNet \d+\.\d+", header)) else "unknown"
    return WordNet(
        synsets={s.offset: s for s in map(parse_synset, lines["data.noun"])},
        senses=dict(map(parse_senses, lines["index.noun"])),
        adjectives=frozenset(x.split()[0] for x in lines["index.adj"]),
        version=version,
        digests={name: hashlib.sha256(data).hexdigest() for name, data in raw.items()},
    )


# ---- Words


def words(name: str) -> list[str]:
    """The words of a name or lemma, lowercased: split at spaces, underscores and hyphens."""
    return [w for w in re.split(r"[\s_-]+", name.lower()) if w]


def stem(word: str) -> str:
    """A word without a plural ending, so "jeans" and "jean", "shoes" and "shoe" count as one word."""
    if re.search(r"(ch|sh|ss|x)es$", word):
        return word[:-2]
    if word.endswith("s") and not re.search(r"(ss|us|is)$", word) and len(word) > 3:
        return word[:-1]
    return word


def stems(name: str) -> set[str]:
    """The stemmed words of a name (article included, if it has one) or lemma."""
    return {stem(w) for w in words(name)}


def spelling(word: str) -> str:
    """A crude sound key: words with the same key are spellings of one word ("caftan", "kaftan"; "bootee", "bootie")."""
    key = re.sub(r"ph", "f", word)
    key = re.sub(r"c(?=[aou]|$)|ck|q", "k", key).replace("y", "i").replace("ee", "i")
    return re.sub(r"(.)\1+", r"\1", key).removesuffix("e")


def noun(name: str) -> str:
    """A name without its article: "a pair of jeans" -> "jeans"."""
    return re.sub(r"^(a pair of|an|a) ", "", name)


def looks_plural(text: str) -> bool:
    return text.endswith("s") and not re.search(r"(ss|us|is)$", text)


def plural(text: str) -> str:
    """English plural of a lemma (regular nouns; one already plural stays as it is)."""
    if looks_plural(text):
        return text
    if re.search(r"[^aeiou]y$", text):
        return text[:-1] + "ies"
    return text + ("es" if re.search(r"(ch|sh|s|x|z)$", text) else "s")


def with_article(lemma: str, paired: bool) -> str:
    """A lemma as a name with its article: "a pair of" a plural (trousers, cleats), "an" before a vowel sound."""
    text = lemma.replace("_", " ")
    if paired or looks_plural(text):
        return f"a pair of {plural(text)}"
    vowel = re.match(r"[aeiou]", text) and not re.match(r"(uni|use|eu|one)", text)
    return f"{'an' if vowel else 'a'} {text}"


# ---- Candidates


def below(wn: WordNet, pick: Pick, cut: frozenset[str] = frozenset()) -> list[Synset]:
    """The synset of ``pick`` and, if it asks, every synset under it (depth first), less the subtrees in ``cut``."""
    synset = wn.synsets.get(pick.offset)
    if synset is None or synset.lemmas[0] != pick.lemma:
        found = synset.lemmas[0] if synset else "nothing"
        raise SystemExit(f"WordNet synset {pick.offset} is {found}, not {pick.lemma}: another WordNet version?")
    found, todo = [], [synset]
    while todo:
        s = todo.pop(0)
        if s.offset in cut and s.offset != pick.offset:
            continue
        found.append(s)
        if pick.below:
            todo[:0] = [wn.synsets[h] for h in s.hyponyms]
    return found


def class_synsets(wn: WordNet) -> list[list[Synset]]:
    """Per class, its synsets (each once, in the order found)."""
    cut = frozenset(pick.offset for pick, _ in CUT)
    for pick, _ in CUT:
        below(wn, Pick(pick.offset, pick.lemma, below=False))  # the offset is the synset meant
    out = []
    for picks in CLASS_SYNSETS:
        seen: dict[str, Synset] = {}
        for pick in picks:
            seen |= {s.offset: s for s in below(wn, pick, cut) if s.offset not in seen}
        out.append(list(seen.values()))
    return out


def reserved_words() -> dict[str, str]:
    """Every word (stemmed) of the training names (few and many), held-out names and templates -> where it is.
    A name's closed form counts too ("back pack" is "backpack")."""
    found: dict[str, str] = {}
    for template in (*TRAIN_TEMPLATES, *HELD_OUT_TEMPLATES):
        found |= {w: f"the template {template!r}" for w in stems(template.replace("{}", " ")) if w not in found}
    names = [("training", n) for train, _ in FMNIST_NAMES for n in train]
    names += [("training", n) for more in FMNIST_MORE_NAMES for n in more]
    names += [("held-out", n) for _, held in FMNIST_NAMES for n in held]
    for kind, name in names:
        bare = noun(name)
        found |= {w: f"the {kind} name {name!r}" for w in {*stems(bare), stem(re.sub(r"[\s-]", "", bare))}}
    return found


def class_words() -> list[set[str]]:
    """Per class, what names it: the last word of each training and held-out name, and that word's hyphen parts
    ("t-shirt": "t-shirt" and "shirt"), stemmed."""
    out = []
    for (train, held), more in zip(FMNIST_NAMES, FMNIST_MORE_NAMES):
        heads = {noun(n).split()[-1] for n in (*train, *held, *more)}
        out.append({stem(w) for h in heads for w in (h, *words(h))})
    return out


@dataclass(frozen=True)
class Context:
    """What the rules look at: the WordNet read, and per class what names it."""

    wn: WordNet
    classes_of: dict[str, set[int]]  # candidate lemma -> the classes whose synsets hold it
    own: list[frozenset[str]]  # per class, the offsets of its synsets
    heads: list[set[str]]  # per class, the stemmed words that name it (class_words)
    singles: list[set[str]]  # per class, its one-word candidate lemmas, stemmed
    reserved: dict[str, str]  # reserved_words()
    wearables: frozenset[str]  # offsets of every garment, footwear and bag synset


def context(wn: WordNet, synsets: list[list[Synset]]) -> Context:
    classes_of: dict[str, set[int]] = {}
    for k, found in enumerate(synsets):
        for s in found:
            for lemma in s.lemmas:
                classes_of.setdefault(lemma, set()).add(k)
    return Context(
        wn=wn,
        classes_of=classes_of,
        own=[frozenset(s.offset for s in found) for found in synsets],
        heads=class_words(),
        singles=[{stem(x) for s in found for x in s.lemmas if len(words(x)) == 1} for found in synsets],
        reserved=reserved_words(),
        wearables=frozenset(s.offset for pick in WEARABLES for s in below(wn, pick)),
    )


# ---- Rules: each says why a candidate lemma of class k (from synset s, None for SUPPLEMENT) goes, or ""


def proper_noun(ctx: Context, lemma: str, k: int, s: Synset | None) -> str:
    if lemma != lemma.lower():
        return "a proper noun (capitalised)"
    if s and any(x != x.lower() and lemma in words(x) for x in s.lemmas):
        return "a word of the proper noun in its synset"
    return "" if re.fullmatch(r"[a-z]+([ _-][a-z]+)*", lemma) else "not a plain word"


def adjective(ctx: Context, lemma: str, k: int, s: Synset | None) -> str:
    return "reads as an adjective (index.adj)" if lemma in ctx.wn.adjectives else ""


def historical(ctx: Context, lemma: str, k: int, s: Synset | None) -> str:
    m = HISTORICAL.search(s.gloss) if s else None
    return f"a historical garment (gloss: {m.group(0)!r})" if m else ""


def several_classes(ctx: Context, lemma: str, k: int, s: Synset | None) -> str:
    classes = sorted(ctx.classes_of.get(lemma, {k}) | {k})
    return f"a candidate of classes {classes}" if len(classes) > 1 else ""


def shares_a_word(ctx: Context, lemma: str, k: int, s: Synset | None) -> str:
    closed = stem(re.sub(r"[\s_-]", "", lemma))
    for w in sorted({*stems(lemma), closed}):
        if w in ctx.reserved:
            return f"shares {w!r} with {ctx.reserved[w]}"
        same = [r for r in ctx.reserved if spelling(r) == spelling(w)]
        if same:
            return f"{w!r} is a spelling of {same[0]!r}, in {ctx.reserved[same[0]]}"
    return ""


def names_another_class(ctx: Context, lemma: str, k: int, s: Synset | None) -> str:
    """A word of the lemma is a one-word name of another class, or begins or ends with a word that names another
    class and not this one ("coatdress": coat; "undershirt" stays, the T-shirt class is named by "shirt" too)."""
    for w in sorted(stems(lemma)):
        for j in range(len(ctx.heads)):
            whole = w in ctx.heads[j] | ctx.singles[j]
            part = [h for h in ctx.heads[j] - ctx.heads[k] if len(h) > 2 and (w.startswith(h) or w.endswith(h))]
            if j != k and (whole or part):
                return f"{w!r} names class {j} ({FASHION_MNIST_CLASSES[j]})" + ("" if whole else f": {part[0]!r}")
    return ""


def senses_of(wn: WordNet, lemma: str) -> tuple[int, tuple[str, ...]]:
    """(tagged sense count, offsets) of a lemma in index.noun, or of its singular (a plural name of ours)."""
    form = re.sub(r"[\s-]+", "_", lemma.lower())
    if form not in wn.senses:
        form = "_".join(stem(w) for w in words(lemma))
    return wn.senses.get(form, (0, ()))


def reads_otherwise(ctx: Context, lemma: str, k: int, s: Synset | None) -> str:
    """Its commonest tagged sense is not its class's, or a sense is a person, animal, place, plant, food, or
    a garment, shoe or bag of another kind."""
    tagged, offsets = senses_of(ctx.wn, lemma)
    if tagged and offsets[0] not in ctx.own[k]:
        first = ctx.wn.synsets[offsets[0]]
        return f"its commonest sense is {first.offset} {first.lemmas[0]}: {first.gloss[:50]}"
    for offset in offsets:
        other = ctx.wn.synsets[offset]
        kind = OTHER_READINGS.get(other.lexfile)
        if not kind and offset in ctx.wearables and offset not in ctx.own[k]:
            kind = "another garment, shoe or bag"
        if kind:
            return f"it also names {kind} ({offset} {other.lemmas[0]}: {other.gloss[:50]})"
    return ""


RULES: tuple[Callable[[Context, str, int, Synset | None], str], ...] = (
    proper_noun,
    adjective,
    historical,
    several_classes,
    shares_a_word,
    names_another_class,
    reads_otherwise,
)


def drop_reason(ctx: Context, lemma: str, k: int, s: Synset | None) -> str:
    return next((why for rule in RULES if (why := rule(ctx, lemma, k, s))), "")


def candidates(ctx: Context, synsets: list[Synset], k: int) -> tuple[dict[str, str], dict[str, str]]:
    """Class k's kept lemmas (-> synset offset, or "supplement"), one per synset, and its dropped ones (-> why)."""
    kept: dict[str, str] = {}
    dropped: dict[str, str] = {}
    pairs = [(lemma, s) for s in synsets for lemma in s.lemmas] + [(n, None) for n in SUPPLEMENT[k]]
    for lemma, s in pairs:
        if lemma in kept or lemma in dropped:
            continue
        why = drop_reason(ctx, lemma, k, s)
        if not why and s and s.offset in kept.values():
            why = f"one name per synset ({s.offset})"
        if not why and any(stems(lemma) == stems(m) for m in kept):
            why = "the same words as a name already kept"
        if why:
            dropped[lemma] = why
        else:
            kept[lemma] = s.offset if s else "supplement"
    return kept, dropped


def drop_shared_across_classes(kept: list[dict[str, str]], dropped: list[dict[str, str]]) -> None:
    """Lemmas with a word that is in names of two classes go too: such a word names neither."""
    where: dict[str, set[int]] = {}
    for k, mine in enumerate(kept):
        for lemma in mine:
            for w in stems(lemma):
                where.setdefault(w, set()).add(k)
    for k, mine in enumerate(kept):
        for lemma in list(mine):
            shared = sorted(w for w in stems(lemma) if len(where[w]) > 1)
            if shared:
                dropped[k][lemma] = f"{shared[0]!r} is in names of classes {sorted(where[shared[0]])}"
                del mine[lemma]


# ---- The split


def components(names: Sequence[str]) -> list[list[str]]:
    """Names grouped so that names sharing a word (articles aside) are in one group, in first-seen order."""
    groups: list[list[str]] = []
    for name in names:
        joined = [g for g in groups if any(stems(noun(name)) & stems(noun(other)) for other in g)]
        groups = [g for g in groups if g not in joined] + [[n for g in joined for n in g] + [name]]
    return groups


def split_class(names: Sequence[str], rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    """(validation, reported, unused): groups of word-sharing names shuffled, each to the side with fewer names;
    both sides then cut to the same length, at most MAX_PER_SET."""
    groups = components(sorted(names))
    rng.shuffle(groups)
    sides: tuple[list[str], list[str]] = ([], [])
    for group in groups:
        sides[len(sides[1]) < len(sides[0])].extend(group)
    size = min(len(sides[0]), len(sides[1]), MAX_PER_SET)
    return sides[0][:size], sides[1][:size], sorted(sides[0][size:] + sides[1][size:])


# ---- The file


def build(folder: Path = WORDNET_DIR) -> dict:
    """The prompt-set record: sources, rules, per class the synsets, candidates, drops and the two sets."""
    wn = read_wordnet(folder)
    synsets = class_synsets(wn)
    ctx = context(wn, synsets)
    found = [candidates(ctx, mine, k) for k, mine in enumerate(synsets)]
    kept, dropped = [f[0] for f in found], [f[1] for f in found]
    drop_shared_across_classes(kept, dropped)
    rng = random.Random(SEED)
    classes = []
    for k, mine in enumerate(kept):
        names = {with_article(lemma, k in PAIRED): source for lemma, source in mine.items()}
        validation, reported, unused = split_class(list(names), rng)
        if len(validation) < MIN_PER_SET:
            raise SystemExit(f"class {k} ({FASHION_MNIST_CLASSES[k]}) keeps {sorted(names)}: add to SUPPLEMENT")
        classes.append(
            {
                "label": k,
                "class": FASHION_MNIST_CLASSES[k],
                "synsets": [{"offset": s.offset, "lemmas": list(s.lemmas), "gloss": s.gloss} for s in synsets[k]],
                "kept": names,
                "dropped": dict(sorted(dropped[k].items())),
                "validation": validation,
                "reported": reported,
                "unused": unused,
            }
        )
    return record(wn, classes)


def record(wn: WordNet, classes: list[dict]) -> dict:
    return {
        "about": "Fashion-MNIST text-to-image prompt sets from WordNet; written by scripts/t2i_prompt_sets.py",
        "roles": {
            "validation": "names for choosing settings (training options, guidance, checkpoints)",
            "reported": "names only reported, never used to choose anything",
        },
        "source": {"wordnet": wn.version, "sha256": wn.digests},
        "seed": SEED,
        "names_per_set": {"min": MIN_PER_SET, "max": MAX_PER_SET},
        "templates": list(HELD_OUT_TEMPLATES),
        "cut": [{"offset": p.offset, "lemma": p.lemma, "why": why} for p, why in CUT],
        "supplement": [list(names) for names in SUPPLEMENT],
        "validation": [c["validation"] for c in classes],
        "reported": [c["reported"] for c in classes],
        "classes": classes,
    }


def dumps(data: dict) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wordnet", type=Path, default=WORDNET_DIR, help="folder of data.noun, index.noun, index.adj")
    parser.add_argument("--out", type=Path, default=PROMPT_SETS_FILE, help="JSON file to write or --check")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(None if argv is None else list(argv))
    if not (args.wordnet / "data.noun").is_file():
        raise SystemExit(f"{args.wordnet}/data.noun not found: install Debian's wordnet-base or pass --wordnet DIR")
    data = build(args.wordnet)
    text = dumps(data)
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out} is {'up to date' if same else 'NOT what this script writes: run it without --check'}")
        return 0 if same else 1
    save_text(text, args.out)
    for c in data["classes"]:
        print(f"{c['label']} {c['class']}: validation {c['validation']}, reported {c['reported']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
