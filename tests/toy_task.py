"""A second task of another shape for the engine's tests: dense per-pixel regression with a tiny conv net.

Inputs are seeded random maps; the target of every pixel is a fixed local filter of its neighbourhood, so the
loss can fall. Runs in-process (``run(ToyTask(cfg))``) or as a script, also under torchrun:
``python tests/toy_task.py --out_dir runs --max_steps 4`` (``--key value`` flags as for ``hybridvision train``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridvision.config import parse_overrides, resolve
from hybridvision.engine import RunConfig, RunResult, Task, run
from hybridvision.engine.distributed import sum_across
from hybridvision.engine.order import eval_batches


@dataclass(frozen=True)
class ToyConfig(RunConfig):
    model: str = "toy_denoiser"
    samples: int = 96
    eval_samples: int = 32
    size: int = 12
    width: int = 8
    epochs: int = 2
    batch_size: int = 8
    budget_minutes: float = 0.0


class ToyNet(nn.Module):
    """conv -> GELU -> conv, same size in and out (NCHW)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)  # a buffer the engine must sync and checkpoint
        self.conv2 = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.gelu(self.norm(self.conv1(x))))


def make_pairs(n: int, size: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=g)
    kernel = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.5, -0.25], [0.0, -0.25, 0.0]]).view(1, 1, 3, 3)
    return x, F.conv2d(x, kernel, padding=1)  # (N, 1, H, W) each


class ToyTask(Task):
    metric = "psnr"
    cfg: ToyConfig

    def setup(self, rt: Any) -> None:
        super().setup(rt)
        self.x, self.y = make_pairs(self.cfg.samples, self.cfg.size, seed=1)
        self.ex, self.ey = make_pairs(self.cfg.eval_samples, self.cfg.size, seed=2)

    def build_model(self) -> nn.Module:
        return ToyNet(self.cfg.width)

    def train_size(self) -> int:
        return len(self.x)

    def batches(self, index_lists: Sequence[Sequence[int]]) -> Iterator[Any]:
        for idx in index_lists:
            t = torch.as_tensor(idx, dtype=torch.long)
            yield self.x[t], self.y[t]

    def loss(self, model: nn.Module, batch: Any, gen: torch.Generator) -> Tensor:
        x, y = batch
        noise = torch.randn(x.shape, generator=gen).to(x.device) * 0.05  # seeded augmentation
        return F.mse_loss(model(x + noise), y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        job = self.rt.dist
        model.eval()
        totals = torch.zeros(2, dtype=torch.float64)  # squared error sum, pixel count
        for idx in eval_batches(len(self.ex), 8, job.rank, job.world):
            pred = model(self.ex[idx].to(job.device)).cpu()
            totals += torch.stack([((pred - self.ey[idx]) ** 2).sum(), torch.tensor(pred.numel())]).double()
        totals = sum_across(totals, job)
        mse = float(totals[0] / totals[1])
        return {"mse": mse, "psnr": float(10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))))}

    def model_config(self, model: nn.Module) -> dict[str, Any]:
        return {"toy": True, "width": self.cfg.width}


def main(argv: list[str]) -> RunResult:
    return run(ToyTask(resolve(ToyConfig, None, parse_overrides(argv))))


if __name__ == "__main__":
    main(sys.argv[1:])
