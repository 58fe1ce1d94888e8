"""Processes and devices: one code path for a single process and for ``torchrun --nproc_per_node=N``.

Under torchrun (``WORLD_SIZE`` > 1) the process group uses NCCL on CUDA and gloo on CPU. Models are wrapped in
DDP, or sharded with FSDP (``distributed: fsdp``) when they do not fit one device. State dicts always go
through ``torch.distributed.checkpoint.state_dict``, which returns full, unsharded tensors with the plain
parameter names for all three cases, so checkpoints do not depend on how a run was launched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from ..config import check, parse_device

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """The device a string names ("auto": this process's GPU when CUDA is present, else the CPU)."""
    kind, index = parse_device(name)
    if kind == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    check(
        kind != "cuda" or torch.cuda.is_available(),
        f"device {name!r} was asked for but CUDA is not available; use --device cpu",
    )
    return torch.device(kind, index)


def setup(device_name: str) -> Dist:
    """Join the process group when launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local, device)


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of unmapping it (Linux/glibc only; returns success).

    CPU training allocates and frees megabyte-sized activations every step. By default glibc serves each from a
    fresh ``mmap`` and unmaps it on free, so every step pays page faults and zeroing again for all of them;
    with the heap kept, the same pages are reused, which raises training img/s markedly on small models (measured
    by ``benchmarks/train_speed.py``: results/speed/cpu-train-speed.json).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 31) == 1
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    log.info("glibc keeps freed memory for reuse: %s", ok)
    return ok


def cleanup(job: Dist) -> None:
    if job.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(model: nn.Module, job: Dist, mode: str) -> nn.Module:
    """DDP or FSDP around ``model`` when there is more than one process; ``model`` itself otherwise."""
    if not job.active:
        return model
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for stage in getattr(model, "stages", []):
            fully_shard(stage)
        return fully_shard(model)
    ids = [job.device.index] if job.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sum_across(t: Tensor, job: Dist) -> Tensor:
    if job.active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def max_across(value: float, job: Dist) -> float:
    """The largest value over processes (every process then takes the same decision, e.g. a time budget)."""
    if not job.active:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t)


def union_across(items: set, job: Dist) -> set:
    """The union of every process's set (e.g. unreadable files each one met)."""
    return set(concat_across(sorted(items), job))


def concat_across(items: list, job: Dist) -> list:
    """Every process's list, concatenated in rank order (e.g. each one's detections); this process's alone when
    there is one."""
    if not job.active:
        return list(items)
    gathered: list = [None] * job.world
    dist.all_gather_object(gathered, list(items))
    return [x for part in gathered for x in part]


def sync_buffers(model: nn.Module, job: Dist) -> None:
    """Give every process rank 0's buffers (BatchNorm statistics) before evaluating or saving."""
    if job.active:
        for b in model.buffers():
            dist.broadcast(b, src=0)


def barrier(job: Dist) -> None:
    if job.active:
        dist.barrier()


def model_state(model: nn.Module) -> dict[str, Tensor]:
    return get_model_state_dict(model, options=_FULL)


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return get_optimizer_state_dict(model, optimizer, options=_FULL)


def load_states(model: nn.Module, optimizer: torch.optim.Optimizer, weights: dict, opt_state: dict) -> None:
    opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=False)
    set_model_state_dict(model, weights, options=opts)
    set_optimizer_state_dict(model, optimizer, opt_state, options=opts)
    match_param_layout(optimizer)


@torch.no_grad()
def match_param_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded moment buffers their parameter's strides (checkpoints store them contiguous).

    Fused AdamW walks a parameter and its buffers in memory order, so an ``exp_avg`` stored NCHW next to a
    channels_last weight would be updated against the wrong elements.
    """
    for p, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, Tensor) and value.shape == p.shape and value.stride() != p.stride():
                state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def clip_gradients(model: nn.Module, max_norm: float) -> Tensor:
    """Clip the global gradient norm; under FSDP the norm of the sharded gradients is gathered first."""
    params = [p for p in model.parameters() if p.grad is not None]
    norm = nn.utils.get_total_norm([p.grad for p in params])
    if hasattr(norm, "full_tensor"):  # a DTensor (FSDP): each process holds part of the sum
        norm = norm.full_tensor()
    nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm
