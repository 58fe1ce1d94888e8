"""Sample order: resumable, and identical for any number of processes.

The order of an epoch is a pure function of (seed, epoch), and a global batch is cut into micro-batches the
same way whatever the process count, so a resumed, a 1-process and an N-process run see the same samples.
"""

from __future__ import annotations

import torch
from torch import Tensor


class OrderError(ValueError):
    """A batch size that does not fit the data or the processes; the message says what to change."""


def epoch_order(num_samples: int, seed: int, epoch: int) -> Tensor:
    """The sample order of one epoch: a permutation fixed by (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_samples, generator=g)


def steps_per_epoch(num_samples: int, batch_size: int) -> int:
    """Optimizer steps per epoch; the last incomplete batch is dropped (as timm does for training)."""
    steps = num_samples // batch_size
    if steps == 0:
        raise OrderError(f"the training split has {num_samples} samples, fewer than one batch of {batch_size}")
    return steps


def micro_batches(order: Tensor, step: int, batch_size: int, chunks: int) -> list[list[int]]:
    """The global batch of ``step`` cut into ``chunks`` equal micro-batches (chunk k goes to one process/micro-step)."""
    if batch_size % chunks:
        raise OrderError(
            f"batch_size {batch_size} does not split into {chunks} equal micro-batches "
            "(processes x optim.accum_steps); choose a batch size divisible by it"
        )
    idx = order[step * batch_size : (step + 1) * batch_size]
    return [c.tolist() for c in idx.view(chunks, -1)]  # (batch,) -> (chunks, batch / chunks)


def eval_batches(num_samples: int, batch_size: int, rank: int, world: int) -> list[list[int]]:
    """This process's share of the evaluation set, in order, in batches (every sample exactly once overall)."""
    mine = list(range(rank, num_samples, world))
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
