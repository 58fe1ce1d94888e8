"""Latent space through a pluggable VAE: a diffusers ``AutoencoderKL`` read from a local folder (AsCAN: the SDXL VAE).

The data set is encoded once (the posterior mean: the encoding is deterministic, so it can be cached) and kept in a
safetensors file keyed by the VAE's digest and the images' digest; training then noises latents
``z = (mean - shift_factor) * scaling_factor`` (diffusers' convention: unit-variance latents for the schedule) and
samples are decoded back to [-1, 1] pixels before they are judged or saved. Grey images meet an RGB VAE as three
equal channels and come back as the channels' mean. Pixel space stays the default: a VAE that downsamples 8x has
nothing to gain on 28x28 images.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from torch import Tensor

from ..fileio import save_tensors
from ._diffusers import diffusers
from .pixels import from_uint8
from .text.encoders import weights_digest

log = logging.getLogger(__name__)


class Vae:
    """A frozen ``AutoencoderKL``: [-1, 1] images (B, C, H, W) <-> scaled latents (B, c, H / f, W / f)."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no VAE at {path} (config.json missing): pass a folder written by AutoencoderKL.save_pretrained"
            )
        self.model = diffusers().AutoencoderKL.from_pretrained(str(path)).eval().requires_grad_(False).to(device)
        c = self.model.config
        self.scale, self.shift = float(c.scaling_factor), float(getattr(c, "shift_factor", None) or 0.0)
        self.channels, self.in_chans = int(c.latent_channels), int(c.in_channels)
        self.factor = 2 ** (len(c.block_out_channels) - 1)  # one 2x downsample per encoder block but the last
        self.name = f"{path.name}-{weights_digest(path)}"
        self.path = path

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """[-1, 1] images -> scaled latents (the posterior mean)."""
        if x.shape[1] == 1 and self.in_chans == 3:
            x = x.expand(-1, 3, -1, -1)  # (B, 1, H, W) -> (B, 3, H, W): grey as RGB
        z = self.model.encode(x.to(self.device)).latent_dist.mode()  # (B, c, H / f, W / f)
        return ((z - self.shift) * self.scale).float()

    @torch.no_grad()
    def decode(self, z: Tensor, channels: int = 0) -> Tensor:
        """Scaled latents -> [-1, 1] images with ``channels`` channels (0 = the VAE's)."""
        return vae_decode(self.model, z, channels)


def vae_decode(model, z: Tensor, channels: int = 0) -> Tensor:
    """Scaled latents -> [-1, 1] images through an ``AutoencoderKL`` ``model``, with ``channels`` channels (0 = the
    VAE's; 1 = the mean of its RGB: grey data). The one decoding of ``Vae`` and the ``AsCANPipeline``."""
    c = model.config
    scale, shift = float(c.scaling_factor), float(getattr(c, "shift_factor", None) or 0.0)
    device = next(model.parameters()).device
    x = model.decode(z.to(device) / scale + shift).sample.float()  # (B, C, H, W)
    return x.mean(1, keepdim=True) if channels == 1 and x.shape[1] != 1 else x  # RGB -> grey


def images_digest(images: Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]


def encode_images(vae: Vae, images: Tensor, cache_dir: str | Path, batch_size: int = 64) -> Tensor:
    """uint8 images (N, C, H, W) -> float32 latents (N, c, H / f, W / f), read from the cache when encoded before."""
    if images.shape[-1] % vae.factor or images.shape[-2] % vae.factor:
        raise ValueError(
            f"images of {tuple(images.shape[-2:])} do not divide by the VAE's {vae.factor}x downsampling: "
            "choose an img_size that is a multiple of it"
        )
    path = Path(cache_dir).expanduser() / f"latents_{vae.name}_{images_digest(images)}.safetensors"
    if path.is_file():
        from safetensors.torch import load_file

        return load_file(str(path))["latents"]
    log.info("encoding %d images with %s (once: %s)", len(images), vae.name, path)
    chunks = [vae.encode(from_uint8(images[i : i + batch_size])).cpu() for i in range(0, len(images), batch_size)]
    latents = torch.cat(chunks)
    save_tensors({"latents": latents}, path, metadata={"vae": str(vae.path), "scaling_factor": str(vae.scale)})
    return latents


def decode_latents(vae: Vae, z: Tensor, channels: int, batch_size: int = 64) -> Tensor:
    """Latents -> [-1, 1] images with ``channels`` channels, in batches of ``batch_size``."""
    return torch.cat([vae.decode(z[i : i + batch_size], channels) for i in range(0, len(z), batch_size)])
