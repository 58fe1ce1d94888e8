"""The AsCAN UNet (Kag et al., NeurIPS 2024, §3.3.1 and App. A.6): an asymmetric conv-attention denoiser.

Down levels, a middle and mirrored up levels with additive skip connections (the paper: "skip connections add
Down features into Up features"), built from the shared blocks: C = ``FusedMBConv`` (GroupNorm) with the time
embedding added between its norm and activation ("similar to SDXL"); T = ``ParallelTransformerBlock`` whose
self-attention (2-D RoPE, RMSNorm on q and k) and cross-attention run in parallel with the MLP (Fig. 2c).
Layouts are strings per level, like the classifier's: more C at high resolution, more T at low.

Class labels become context tokens for the cross-attention (the paper conditions its ImageNet model that way)
through an embedding table with one extra learned row, the null label of classifier-free guidance. Text
conditioning (``context="text"``) takes a frozen encoder's token embeddings and mask instead and adapts them by two
T blocks (``adapter.TextAdapter``, App. A.6); its null is the encoder's empty prompt. With ``pooled_text`` the
prompt's pooled vector is also added to the time embedding (SDXL's pooled text embedding; the paper names only
cross-attention), so every block, C blocks too, sees the prompt as a whole, in the space a sentence encoder is
trained in. Every
residual branch and the output conv start at zero, so the untrained network predicts exactly zero.

A diffusers model: ``ModelMixin`` and ``ConfigMixin`` give it ``save_pretrained`` / ``from_pretrained`` in
diffusers' format (``config.json`` + ``diffusion_pytorch_model.safetensors``), ``enable_gradient_checkpointing``
and the dtype/device moves of every diffusers model. Our typed ``AsCANUNetConfig`` stays the source of truth:
``unet.config`` is it, and diffusers' config (what ``config.json`` holds) is its fields as plain values
(``typed_config``). Calling convention (diffusers'): ``unet(sample, timestep, encoder_hidden_states=None,
class_labels=None, return_dict=True)`` returns ``UNet2DOutput`` (``return_dict=False``: the tuple ``(sample,)``);
class models take ``class_labels=`` instead of (or without) ``encoder_hidden_states``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...config import to_dict
from ...models.blocks import (
    Attention,
    CrossAttention,
    FusedMBConv,
    ParallelTransformerBlock,
    Stage,
    build_blocks,
    drop_path_rates,
    init_conv_fan_out,
    init_transformer,
    make_norm2d,
)
from ...models.contract import InputError
from .._diffusers import diffusers, diffusers_module
from .adapter import PooledTextEmbedding, TextAdapter
from .layers import TimeEmbedding, Upsample
from .typed_config import init_signature, typed_config
from .unet_config import CONTEXTS, AsCANUNetConfig, DenoiserConfig, check_size

__all__ = ["CONTEXTS", "AsCANUNet", "AsCANUNetConfig", "DenoiserConfig", "UNetOutput", "check_size"]

_diffusers = diffusers()
# Module-level names: diffusers' pipeline loader finds a component's loading methods by looking them up in the
# component's module (model_index.json records "hybridvision.diffusion.models.unet").
ModelMixin, ConfigMixin = _diffusers.ModelMixin, _diffusers.ConfigMixin
UNetOutput = diffusers_module("models.unets.unet_2d").UNet2DOutput  # diffusers' output of a UNet: ``.sample``

# ---- Model


class AsCANUNet(ModelMixin, ConfigMixin):
    """Epsilon-prediction UNet of C (FusedMBConv) and T (parallel self/cross-attention) blocks.

    Built from an ``AsCANUNetConfig`` (``AsCANUNet(config)``, what the registry does) or from its fields as
    keywords (``AsCANUNet(dims=(8, 16), ...)``, what diffusers' ``from_config`` does with ``config.json``).
    """

    _supports_gradient_checkpointing = True

    def __init__(self, config: AsCANUNetConfig | None = None, **fields: Any) -> None:
        super().__init__()
        cfg = typed_config(AsCANUNetConfig, config, fields)
        self.register_to_config(**to_dict(cfg))
        self._typed_config = cfg
        self.gradient_checkpointing = False  # set by enable_gradient_checkpointing(): recompute each block
        dims, n = cfg.dims, len(cfg.dims)
        rates = iter(drop_path_rates(cfg.drop_path_rate, [len(p) for p in (*cfg.down, cfg.mid, *cfg.up_layout)]))
        self.time_embed = TimeEmbedding(dims[0], cfg.emb_dim)
        text = cfg.context == "text"
        self.class_embed = None if text else nn.Embedding(cfg.num_classes + 1, cfg.class_tokens * cfg.context_dim)
        self.stem = nn.Conv2d(cfg.in_chans, dims[0], 3, padding=1)
        self.down = nn.ModuleList(
            self._stage(cfg.down[i], dims[max(i - 1, 0)], i, next(rates), 2 if i else 1) for i in range(n)
        )
        self.mid = self._stage(cfg.mid, dims[-1], n - 1, next(rates), 1)
        self.up = nn.ModuleList(self._stage(cfg.up_layout[i], dims[i], i, next(rates), 1) for i in range(n))
        self.upsample = nn.ModuleList(Upsample(dims[i], dims[i - 1]) for i in range(1, n))
        out_chans = cfg.out_chans or cfg.in_chans
        self.out = nn.Sequential(make_norm2d("group", dims[0]), nn.SiLU(), nn.Conv2d(dims[0], out_chans, 3, padding=1))
        self._init_weights()
        # Built last, so a class model's modules and their random init are what they were before text existed.
        adapter = dict(depth=cfg.adapter_depth, num_heads=cfg.adapter_heads, mlp_ratio=cfg.mlp_ratio)
        self.text_adapter = TextAdapter(dim=cfg.context_dim, **adapter) if text else None
        self.pooled_text = PooledTextEmbedding(cfg.context_dim, cfg.emb_dim) if cfg.pooled_text else None

    @property
    def config(self) -> AsCANUNetConfig:
        """The typed config (diffusers' plain-value copy, which ``config.json`` holds: ``_internal_dict``)."""
        return self._typed_config

    def __getattr__(self, name: str) -> Any:
        # torch's lookup, not diffusers' shim that serves config fields as attributes: fields `down`, `mid`, `up`
        # share their names with submodules.
        return nn.Module.__getattr__(self, name)

    def _stage(self, layout: str, in_dim: int, level: int, rates: list[float], stride: int) -> Stage:
        cfg, dim, heads = self.config, self.config.dims[level], self.config.heads(level)

        def conv(i: int, o: int, s: int, dpr: float) -> nn.Module:
            return FusedMBConv(
                i, o, stride=s, expand_ratio=cfg.expand_ratio, norm="group", emb_dim=cfg.emb_dim, drop_path_rate=dpr
            )

        def attn(i: int, o: int, s: int, dpr: float) -> nn.Module:
            head = dict(num_heads=heads, head_dim=cfg.head_dim, qk_norm=True)
            return ParallelTransformerBlock(
                i,
                o,
                attn=Attention(i, o, rope=True, **head),
                cross_attn=CrossAttention(i, o, context_dim=cfg.context_dim, **head),
                stride=s,
                mlp_ratio=cfg.mlp_ratio,
                emb_dim=cfg.emb_dim,
                emb_mode="scale_shift",  # adaLN on the shared x^ (our choice; the paper names only C's injection)
                drop_path_rate=dpr,
            )

        return Stage(build_blocks(layout, in_dim, dim, {"C": conv, "T": attn}, rates, stride=stride))

    def _init_weights(self) -> None:
        """Family init (conv fan-out / ViT Xavier), then every residual branch and the output at zero."""
        for stage in (*self.down, self.mid, *self.up):
            for block in stage.blocks:
                is_t = isinstance(block, ParallelTransformerBlock)
                (init_transformer if is_t else init_conv_fan_out)(block)
                # Zero the last layer of each residual branch: every block starts as its shortcut (ADM, DiT).
                last = [block.attn.proj, block.cross_attn.proj, block.mlp.fc2] if is_t else [block.conv_project.norm]
                for layer in last:
                    nn.init.zeros_(layer.weight)
                    nn.init.zeros_(layer.bias)
        if self.class_embed is not None:
            nn.init.normal_(self.class_embed.weight, std=1.0)
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @property
    def null_class(self) -> int:
        """The label of the learned unconditional token (classifier-free guidance)."""
        return self.config.num_classes

    # ---- Inputs

    def check_sample(self, x: Tensor) -> None:
        """Raise InputError with the fix when ``x`` is not a batch this UNet can denoise."""
        cfg = self.config
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != cfg.in_chans:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputError(f"expected a (B, {cfg.in_chans}, H, W) sample, got {shape}")
        check_size(x, cfg.stride)

    def class_context(self, labels: Tensor) -> Tensor:
        """Context tokens of class labels (``null_class`` = unconditional): (B,) -> (B, class_tokens, context_dim)."""
        n = self.config.num_classes
        if labels.dim() != 1 or labels.dtype.is_floating_point:
            raise InputError(f"class_labels must be a (B,) integer tensor, got {labels.dtype} {tuple(labels.shape)}")
        # Checked in eager mode on the CPU, and on an accelerator outside training (a device sync per call, which a
        # training step on the data set's labels need not pay); never on the meta device (cost counting).
        device = labels.device.type
        checked = not torch.compiler.is_compiling() and (device == "cpu" or (device != "meta" and not self.training))
        bad = labels[(labels < 0) | (labels > n)] if checked else labels[:0]
        if len(bad):
            raise InputError(
                f"class label {int(bad[0])} is out of range: this model knows classes 0..{n - 1}, and {n} is the "
                "null (unconditional) label"
            )
        return self.class_embed(labels).view(len(labels), self.config.class_tokens, -1)  # (B, L, D)

    def _context(
        self, batch: int, device: torch.device, states: Tensor | None, labels: Tensor | None, mask: Tensor | None
    ) -> Tensor:
        if states is not None and labels is not None:
            raise InputError("pass encoder_hidden_states or class_labels, not both")
        if self.text_adapter is not None:
            return self._text_context(batch, device, states, labels, mask)
        if states is None:
            labels = torch.full((batch,), self.null_class, device=device) if labels is None else labels.to(device)
            states = self.class_context(labels)
        if states.dim() != 3 or states.shape[0] != batch or states.shape[2] != self.config.context_dim:
            raise InputError(
                f"encoder_hidden_states must be (B={batch}, L, {self.config.context_dim}), got {tuple(states.shape)}"
            )
        return states

    def _text_context(
        self, batch: int, device: torch.device, states: Tensor | None, labels: Tensor | None, mask: Tensor | None
    ) -> Tensor:
        """The text adapter's tokens; with no prompt, one zero token (what `info` and `bench` count)."""
        dim = self.config.context_dim
        if labels is not None:
            raise InputError(
                "this UNet is text-conditioned (context='text'): pass encoder_hidden_states (B, L, "
                f"{dim}) from its text encoder and encoder_attention_mask (B, L), not class_labels"
            )
        if states is None:
            states, mask = torch.zeros(batch, 1, dim, device=device), None
        if states.dim() != 3 or states.shape[0] != batch or states.shape[2] != dim:
            raise InputError(f"encoder_hidden_states must be (B={batch}, L, {dim}), got {tuple(states.shape)}")
        return self.text_adapter(states, mask)  # (B, L, D) -> (B, L, D)

    @staticmethod
    def _timesteps(timestep: Tensor | float | None, batch: int, device: torch.device) -> Tensor:
        t = torch.as_tensor(0 if timestep is None else timestep, device=device)
        return t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)  # () or (B,) -> (B,)

    # ---- Forward

    def forward(
        self,
        sample: Tensor,
        timestep: Tensor | float | None = None,
        encoder_hidden_states: Tensor | None = None,
        class_labels: Tensor | None = None,
        return_dict: bool = True,
        *,
        encoder_attention_mask: Tensor | None = None,
    ) -> Any:
        """Predicted noise for ``sample`` (B, C, H, W) at ``timestep`` (a number or (B,), integer or float).

        Conditioning is ``encoder_hidden_states`` (B, L, context_dim) with an optional ``encoder_attention_mask``
        (B, L; 1 = keep), or ``class_labels`` (B,); with neither, the null label (unconditional). A text UNet
        (``context="text"``) runs the encoder's tokens through its text adapter first. A missing
        ``timestep`` means t = 0: ``model(x)`` is then one denoiser evaluation, which is what ``hybridvision
        info`` and ``bench`` count and time. Returns ``UNet2DOutput`` (``.sample``), or ``(sample,)`` with
        ``return_dict=False``, as every diffusers UNet.
        """
        self.check_sample(sample)
        B = sample.shape[0]
        if encoder_hidden_states is not None:  # an encoder's float32 tokens meet a model moved to another dtype
            encoder_hidden_states = encoder_hidden_states.to(sample.dtype)
        emb = self.time_embed(self._timesteps(timestep, B, sample.device))  # (B, E)
        mask = encoder_attention_mask.bool() if encoder_attention_mask is not None else None  # (B, L)
        context = self._context(B, sample.device, encoder_hidden_states, class_labels, mask)  # (B, L, D)
        mask = None if encoder_hidden_states is None else mask  # a text UNet's default token is unmasked
        if self.pooled_text is not None:  # the prompt as a whole, beside its tokens (no prompt: a zero vector)
            tokens = context.new_zeros(context.shape) if encoder_hidden_states is None else encoder_hidden_states
            emb = emb + self.pooled_text(tokens, mask)  # (B, L, D) -> (B, E)
        cond = (emb, context, mask)
        x = self.stem(sample)  # (B, C0, H, W)
        skips = []
        for stage in self.down:
            x = self._run(stage, x, *cond)  # level i: (B, Ci, H / 2^i, W / 2^i)
            skips.append(x)
        x = self._run(self.mid, x, *cond)
        for i in reversed(range(len(self.up))):
            x = self._run(self.up[i], x + skips[i], *cond)  # additive skip, the paper's "add Down features into Up"
            if i:
                x = self.upsample[i - 1](x)  # (B, Ci, h, w) -> (B, Ci-1, 2h, 2w)
        out = self.out(x)  # (B, out_chans, H, W)
        return UNetOutput(sample=out) if return_dict else (out,)

    def _run(self, stage: Stage, x: Tensor, emb: Tensor, context: Tensor, mask: Tensor | None) -> Tensor:
        """One level's blocks; with gradient checkpointing on (and gradients wanted), each block is recomputed in
        the backward pass through diffusers' ``_gradient_checkpointing_func``, which takes positional inputs."""
        if not (self.gradient_checkpointing and torch.is_grad_enabled()):
            return stage(x, emb=emb, context=context, context_mask=mask)
        x = stage.downsample(x)
        for block in stage.blocks:
            inputs = (x, emb) if isinstance(block, FusedMBConv) else (x, emb, context, mask)
            x = self._gradient_checkpointing_func(block, *inputs)
        return x


AsCANUNet.__init__.__signature__ = init_signature(AsCANUNetConfig)  # the fields diffusers' from_config reads
