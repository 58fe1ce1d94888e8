"""The MAC counter counts attention matmuls (FlopCounterMode misses CPU SDPA) and agrees across devices."""

from __future__ import annotations

import torch

import hybridvision as hv
from hybridvision.macs import count_macs, model_cost
from hybridvision.models.blocks import Attention


def test_sdpa_is_counted_on_cpu():
    attn = Attention(32, num_heads=4, head_dim=8, rel_pos_size=(7, 7)).eval()
    B, N = 2, 49
    linear = B * N * 32 * 96 + B * N * 32 * 32  # qkv + proj
    sdpa = 2 * B * 4 * N * N * 8  # q.k^T and attn.v
    macs, _ = count_macs(attn, (B, 32, 7, 7))
    assert macs == linear + sdpa


def test_cpu_and_meta_counts_agree():
    model = hv.create_model("coatnet_test")
    macs_cpu, per = count_macs(model, (1, 3, 64, 64))
    assert macs_cpu == model_cost("coatnet_test").macs
    assert sum(per.values()) == macs_cpu and set(per) >= {"stem", "stages.0", "head"}


def test_conv_macs_are_exact():
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, groups=2)
    assert count_macs(conv, (1, 8, 10, 10))[0] == 10 * 10 * 16 * (8 // 2) * 9
