"""Classifier heads."""

from __future__ import annotations

from torch import Tensor, nn


class ClassifierHead(nn.Module):
    """[Pre-pool map layer] -> global average pool -> [LayerNorm] -> [Linear + tanh pre-logits (MaxViT)]
    -> [dropout] -> Linear.

    ``pre_pool`` runs on the map before pooling (AsCAN, EfficientNet: a 1x1 conv-BN-act to an embedding width);
    ``in_dim`` is then its output width. ``num_classes=0`` keeps only the pooled features; ``reset`` swaps the
    classifier.
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        *,
        pre_pool: nn.Module | None = None,
        norm: bool = False,
        norm_eps: float = 1e-6,
        hidden_dim: int = 0,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.pre_pool = pre_pool if pre_pool is not None else nn.Identity()
        self.norm = nn.LayerNorm(in_dim, eps=norm_eps) if norm else nn.Identity()
        self.pre_logits = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.Tanh()) if hidden_dim else nn.Identity()
        self.num_features = hidden_dim or in_dim
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.pre_pool(x).mean((2, 3))  # (B, C, H, W) -> (B, C)
        x = self.drop(self.pre_logits(self.norm(x)))  # (B, F)
        return x if pre_logits else self.fc(x)  # (B, num_classes)

    def reset(self, num_classes: int) -> None:
        ref = next(self.parameters(), None)
        device = ref.device if ref is not None else None
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes, device=device) if num_classes else nn.Identity()
