"""Items shown the way the Fashion-MNIST scenes show them: scaled, cut by the frame, partly covered by another item.

A classifier that initialises a scenes segmenter meets its items at other sizes, at the canvas' edge and under
later items' ink. ``zoom`` scales each image about a random point (an item larger than the frame is cut by it);
``occlude`` paints another image of the batch over a chosen share of the images, as the scenes draw a later item:
its solid ink (above ``ink``) replaces what lies below, its faint rim blends by maximum. Each occluder is placed at
``tries`` random positions and sizes; the first that covers a share of the item's own solid ink inside ``share``
is drawn, and where none does, the image stays uncovered, so a covered item always keeps enough of itself for
its label (which never changes). Every draw comes from the batch's CPU generator: the same seed, the same batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _uniform(shape: tuple[int, ...], bounds: tuple[float, float], gen: torch.Generator) -> Tensor:
    return torch.empty(shape).uniform_(bounds[0], bounds[1], generator=gen)


def place(x: Tensor, scale: Tensor, centre: Tensor) -> Tensor:
    """Images (N, C, H, W) drawn at ``scale`` (N,) times their size with their centre at ``centre`` (N, 2) (x, y in
    normalised coordinates, -1..1 across the frame), black outside them: one bilinear ``grid_sample``.

    The map is a scale and a shift per image, so its grid is built by broadcasting (``affine_grid``'s batched
    matrix product costs several times the resampling at these sizes).
    """
    n, _, h, w = x.shape
    ys = (torch.arange(h, device=x.device) * 2 + 1) / h - 1  # pixel centres, align_corners=False
    xs = (torch.arange(w, device=x.device) * 2 + 1) / w - 1
    scale, centre = scale.to(x.device), centre.to(x.device)
    gx = (xs[None, :] - centre[:, :1]) / scale[:, None]  # (N, W): output -> input, (out - centre) / scale
    gy = (ys[None, :] - centre[:, 1:]) / scale[:, None]  # (N, H)
    grid = torch.stack([gx[:, None, :].expand(n, h, w), gy[:, :, None].expand(n, h, w)], -1)  # (N, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def zoom(x: Tensor, scale: tuple[float, float], gen: torch.Generator) -> Tensor:
    """Each image (B, C, H, W) on [0, 1] scaled by a factor in ``scale``, its centre moved by up to the room the
    scaling leaves (or takes: a larger item is cut by the frame at a random place)."""
    b = x.shape[0]
    s = _uniform((b,), scale, gen)
    room = (s - 1).abs()[:, None]  # (B, 1): how far the centre may move, in normalised units
    centre = (torch.rand(b, 2, generator=gen) * 2 - 1) * room
    return place(x, s, centre)


def solid(x: Tensor, ink: float) -> Tensor:
    """Pixels whose brightest channel lies above ``ink`` (on [0, 1]): (..., C, H, W) -> bool (..., H, W)."""
    return x.amax(-3) > ink


def occlude(
    x: Tensor,
    prob: float,
    share: tuple[float, float],
    scale: tuple[float, float],
    ink: float,
    tries: int,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Cover about ``prob`` of the images (B, C, H, W) on [0, 1] with another image of the batch, so that a share
    in ``share`` of their solid ink is hidden; the occluder is drawn at ``scale`` times its size.

    Returns the images and the share of each one's solid ink that was covered (0 where none was).
    """
    b, c, h, w = x.shape
    device, rows = x.device, torch.arange(b, device=x.device)
    chosen = (torch.rand(b, generator=gen) < prob).to(device)
    other = (torch.arange(b) + int(torch.randint(1, max(b, 2), (1,), generator=gen))) % b  # another image (b > 1)
    sizes = _uniform((b * tries,), scale, gen)
    centres = torch.rand(b * tries, 2, generator=gen) * 2 - 1
    occ = place(x[other.to(device)].repeat_interleave(tries, 0), sizes, centres)  # (B * T, C, H, W)
    occ = occ.view(b, tries, c, h, w)  # (B * T, C, H, W) -> (B, T, C, H, W)
    item = solid(x, ink)  # (B, H, W)
    covered = (solid(occ, ink) & item[:, None]).flatten(2).sum(2) / item.flatten(1).sum(1, keepdim=True).clamp(min=1)
    fits = (covered >= share[0]) & (covered <= share[1])  # (B, T)
    first = fits.float().argmax(1)  # the first try that fits (0 when none does)
    use = chosen & fits.any(1)
    pick = occ[rows, first]  # (B, C, H, W)
    top = solid(pick, ink)[:, None]  # (B, 1, H, W)
    painted = torch.where(top, pick, torch.maximum(x, pick))
    out = torch.where(use[:, None, None, None], painted, x)
    return out, torch.where(use, covered[rows, first], 0.0)
