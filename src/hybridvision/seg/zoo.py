"""``upernet_<backbone>``: a named segmentation model for every backbone (``create_model("upernet_ascan_t")``).

The names are registered with the backbones whenever ``hybridvision`` is imported; their table is
``hybridvision.models.zoo``. This module stays importable so that ``--import hybridvision.seg.zoo`` in existing
``hybridvision bench`` commands keeps working; ``register_variants`` covers backbones registered later.
"""

from __future__ import annotations

from ..models.zoo import register_segmentors as register_variants

__all__ = ["register_variants"]
