"""How far a learned read-out of the training prompts carries to held-out prompts, with each text augmentation.

A text-to-image denoiser learns its classes from the training prompts' token embeddings and fails on held-out
class *names* (docs/generation.md). Training one to its first evaluation costs about 28 minutes on 2 CPU cores;
this asks the same question of small classifiers in minutes: each reads the cached all-MiniLM-L6-v2 tokens of the
231 training prompts the way a part of the UNet does, is trained to name their class with one of the training
augmentations of ``diffusion/text_task.py`` (``--text.token_dropout``, ``--text.noise``) applied fresh each step,
and is scored on the 60 held-out prompts. Read-outs:

- ``pooled``: the pooled sentence vector -> Linear -> SiLU -> Linear (the UNet's ``PooledTextEmbedding``), then
  a linear class head;
- ``tokens``: the two-block text adapter (``adapter.TextAdapter``), then one learned query attending over its
  tokens (what a cross-attention layer reads), then an MLP class head.

Nearest-centroid agreement (``diffusion/agreement.py``, no learning) is printed beside them. A read-out is a
proxy, not the denoiser: it says which augmentation widens what a learned map of 231 prompts generalises to.

    python benchmarks/t2i_text_probe.py --cache runs/t2i/text_cache     # -> results/t2i_text_probe.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridvision.diffusion.models.adapter import PooledTextEmbedding, TextAdapter
from hybridvision.diffusion.text.agreement import encoder_agreement
from hybridvision.diffusion.text.cache import EmbeddingCache
from hybridvision.diffusion.text.prompts import fmnist_prompts
from hybridvision.diffusion.text_task import drop_tokens, perturb_tokens
from hybridvision.env import environment
from hybridvision.fileio import save_json

AUGMENTATIONS = {  # name: (token_dropout, noise)
    "none": (0.0, 0.0),
    "dropout 0.3": (0.3, 0.0),
    "noise 0.5": (0.0, 0.5),
    "noise 1.0": (0.0, 1.0),
    "dropout 0.3 + noise 0.5": (0.3, 0.5),
}


class PooledReadout(nn.Module):
    def __init__(self, dim: int, width: int, classes: int) -> None:
        super().__init__()
        self.embed = PooledTextEmbedding(dim, width)
        nn.init.normal_(self.embed.mlp[-1].weight, std=0.02)  # the UNet's zero start would stall a lone head
        self.head = nn.Linear(width, classes)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        return self.head(self.embed(tokens, mask))  # (B, L, D) -> (B, classes)


class TokenReadout(nn.Module):
    def __init__(self, dim: int, width: int, classes: int) -> None:
        super().__init__()
        self.adapter = TextAdapter(dim)
        self.query = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.head = nn.Sequential(nn.Linear(dim, width), nn.SiLU(), nn.Linear(width, classes))

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        x = self.adapter(tokens, mask)  # (B, L, D)
        q = self.query.expand(x.shape[0], -1, -1)  # (B, 1, D)
        read = F.scaled_dot_product_attention(q, x, x, attn_mask=mask[:, None, :])  # (B, 1, D)
        return self.head(read[:, 0])  # (B, D) -> (B, classes)


READOUTS = {"pooled": PooledReadout, "tokens": TokenReadout}


def train_readout(kind: str, aug: tuple[float, float], data: tuple, seed: int, steps: int, batch: int) -> float:
    """Train one read-out on the training prompts with ``aug``; % of held-out prompts it names right."""
    (tokens, mask, labels), (held_tokens, held_mask, held_labels) = data
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = READOUTS[kind](tokens.shape[-1], 256, 10)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    keep = torch.ones(batch, dtype=torch.bool)
    dropout, noise = aug
    for _ in range(steps):
        rows = torch.randint(len(labels), (batch,), generator=gen)  # (batch,)
        x, m = tokens[rows], mask[rows]
        if noise > 0:
            x = perturb_tokens(x, m, keep, noise, gen)
        if dropout > 0:
            m = drop_tokens(m, keep, dropout, gen)
        loss = F.cross_entropy(model(x, m), labels[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        right = model(held_tokens, held_mask).argmax(1) == held_labels
    return 100.0 * float(right.float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default="runs/t2i/text_cache", help="the text-embedding cache folder")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300, help="AdamW steps per read-out, --batch prompts each")
    ap.add_argument("--readouts", default=",".join(READOUTS), help="which read-outs, comma-separated")
    ap.add_argument("--augmentations", default=",".join(AUGMENTATIONS), help="which augmentations, comma-separated")
    ap.add_argument("--batch", type=int, default=64, help="prompts per step (drawn at random from the 231)")
    ap.add_argument("--train_names", default="few", help="few (3-4 per class, 231 prompts) or many (8-9, 574)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/t2i_text_probe.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cache = EmbeddingCache("minilm", args.cache)
    train, held = fmnist_prompts("train", args.train_names), fmnist_prompts("held_out")
    data = tuple((*cache.lookup(s.prompts), torch.tensor(s.labels)) for s in (train, held))
    start, rows = time.perf_counter(), []
    for kind in args.readouts.split(","):
        for name in args.augmentations.split(","):
            aug = AUGMENTATIONS[name]
            accs = torch.tensor([train_readout(kind, aug, data, s, args.steps, args.batch) for s in range(args.seeds)])
            rows.append({"readout": kind, "augmentation": name, "held_out_pct": [round(float(a), 2) for a in accs]})
            rows[-1] |= {"mean": round(float(accs.mean()), 2), "std": round(float(accs.std()), 2)}
            print(f"{kind:7s} {name:24s} held-out {accs.mean():5.1f} ± {accs.std():4.1f}  {accs.tolist()}")
    agreement = encoder_agreement(cache, train, held)["pct"]
    print(f"nearest centroid (no learning): {agreement:.1f}")
    meta = {"train_prompts": len(train.prompts), "held_out_prompts": len(held.prompts), "steps": args.steps}
    meta |= {"batch": args.batch, "seeds": args.seeds, "train_names": args.train_names}
    out = {"rows": rows, "nearest_centroid_pct": agreement, "seconds": round(time.perf_counter() - start, 1)}
    save_json({**meta, **out, "environment": environment()}, Path(args.out))


if __name__ == "__main__":
    main()
