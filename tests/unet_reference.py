"""The AsCAN UNet's outputs for fixed weights and inputs: what the parity test compares the current model with.

``tests/data/ascan_unet_reference.safetensors`` holds them as computed by the UNet before it became a diffusers
model (commit 4dd872e, a plain ``nn.Module``), on one CPU thread, with the state-dict names and shapes in its
metadata. To write it again from another implementation: ``PYTHONPATH=<its src> python tests/unet_reference.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

REFERENCE = Path(__file__).parent / "data" / "ascan_unet_reference.safetensors"


def seeded_model(name: str, seed: int) -> torch.nn.Module:
    """``name`` with every parameter drawn from N(0, 0.1^2) by a seeded generator (zero-initialised layers too)."""
    from hybridvision.factory import create_model

    model = create_model(name).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


@torch.no_grad()
def outputs() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Each case's output, and each model's state-dict names and shapes."""
    gen = torch.Generator().manual_seed(1)
    x, t = torch.randn(3, 1, 16, 16, generator=gen), torch.tensor([5, 400, 999])
    states, mask = torch.randn(3, 4, 16, generator=gen), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    class_model, text_model = seeded_model("ascan_unet_test", 0), seeded_model("ascan_unet_t2i_test", 1)
    cases = {
        "class": class_model(x, t, class_labels=torch.tensor([0, 4, 10]), return_dict=True).sample,
        "null": class_model(x, 500.5, return_dict=True).sample,
        "text": text_model(x, t, encoder_hidden_states=states, encoder_attention_mask=mask, return_dict=True).sample,
        "no_prompt": text_model(x, 7, return_dict=True).sample,
    }
    names = {
        name: json.dumps({k: list(v.shape) for k, v in model.state_dict().items()})
        for name, model in (("ascan_unet_test", class_model), ("ascan_unet_t2i_test", text_model))
    }
    return cases, names


if __name__ == "__main__":
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    cases, names = outputs()
    save_file({k: v.contiguous() for k, v in cases.items()}, str(REFERENCE), metadata=names)
    print(f"wrote {REFERENCE} with {sorted(cases)}", file=sys.stderr)
