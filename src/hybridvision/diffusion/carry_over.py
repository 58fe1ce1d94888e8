"""Multi-stage training (AsCAN §3.3.2: 256² -> 512² -> 1024², each stage from the previous one's weights).

``carry_over`` loads into a fresh denoiser every weight of a previous run whose name and shape fit, and names the
rest. At another resolution everything fits: convolutions do not depend on the map size and the UNet's 2-D RoPE
has no size-bound table (its angles are computed for each H x W). What cannot carry over (another width, a class
table into a text model, another input channel count) starts fresh and is listed, by module, in a warning and in
the run's summary. A checkpoint of which nothing fits is an error: it is another kind of model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import CheckpointError, read_state_dict

log = logging.getLogger(__name__)


def _modules(keys: Sequence[str]) -> list[str]:
    """Parameter names grouped by their module (``down.1.blocks.0.attn.qkv.weight`` -> ``down.1.blocks.0.attn.qkv``)."""
    return sorted({k.rsplit(".", 1)[0] for k in keys})


def carry_over(model: nn.Module, source: str | Path, *, use_ema: bool = True) -> dict[str, Any]:
    """Load what fits of ``source`` (a run's final/ or checkpoint, or a weights file) into ``model``; a report."""
    state = read_state_dict(source, use_ema=use_ema)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    name = getattr(model, "model_name", type(model).__name__)
    if not fits:
        raise CheckpointError(
            f"nothing in {source} fits {name} (no parameter name and shape in common): --init-from needs a run of "
            "the same kind of denoiser (an AsCAN UNet for an AsCAN UNet)"
        )
    fresh = [k for k in own if k not in fits]  # keep their new initialisation
    dropped = [k for k in state if k not in fits]  # in the source, not usable here
    model.load_state_dict({**own, **fits})
    report = {"source": str(source), "carried": len(fits), "fresh": _modules(fresh), "dropped": _modules(dropped)}
    if fresh or dropped:
        shapes = [f"{k} {tuple(state[k].shape)} -> {tuple(own[k].shape)}" for k in dropped if k in own][:4]
        log.warning(
            "init from %s: %d tensors carried over; not carried over (fresh init): %s; dropped from the source: %s%s",
            source, len(fits), ", ".join(report["fresh"][:8]) or "none", ", ".join(report["dropped"][:8]) or "none",
            f" (shape changes: {'; '.join(shapes)})" if shapes else "",
        )  # fmt: skip
    else:
        log.info("init from %s: all %d tensors carried over", source, len(fits))
    return report
