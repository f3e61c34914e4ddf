"""Training-time augmentation, batched: stroke width, random affine warp and a slight elastic distortion.

Aimed at digits that are not MNIST's (canvas drawings, photos, other people's hands): thicker and thinner
strokes, wider affine ranges than the usual MNIST recipe and a smooth local wobble.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)
    shear_deg: float = 10.0
    translate_px: float = 3.0
    elastic_px: float = 1.0  # std of the displacement at each node of a coarse 4 x 4 grid, bicubically smoothed
    thicker: float = 0.25  # share of images whose strokes are dilated (3 x 3 max), blended in by U(0, 1)
    thinner: float = 0.2  # share eroded (3 x 3 min), blended in by U(0, 0.7): a full erosion breaks thin strokes
    thinner_max: float = 0.7

    def describe(self) -> str:
        return (
            f"per image: stroke width ({self.thicker:.0%} dilated 3x3 blended by U(0, 1), {self.thinner:.0%} "
            f"eroded 3x3 blended by U(0, {self.thinner_max})), then one warp: random affine (rotation "
            f"±{self.rotation_deg:g}°, scale {self.scale[0]:g}–{self.scale[1]:g}, shear ±{self.shear_deg:g}°, "
            f"translation ±{self.translate_px:g} px) plus elastic distortion ({self.elastic_px:g} px std on a "
            "4x4 grid, bicubic)"
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "description": self.describe()}


def stroke_width(x: torch.Tensor, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Thicken or thin the strokes of some images in x (N, 1, 28, 28) by blending with a 3x3 dilation/erosion."""
    n = x.shape[0]
    pick = torch.rand(n, generator=generator)
    amount = torch.rand(n, generator=generator)
    dilate = torch.where(pick < aug.thicker, amount, 0.0).view(n, 1, 1, 1).to(x.device)
    erode = torch.where(pick > 1 - aug.thinner, amount * aug.thinner_max, 0.0).view(n, 1, 1, 1).to(x.device)
    thick = F.max_pool2d(x, 3, stride=1, padding=1)  # (N, 1, 28, 28)
    thin = -F.max_pool2d(-x, 3, stride=1, padding=1)  # (N, 1, 28, 28)
    return x + dilate * (thick - x) + erode * (thin - x)


def warp_grid(shape: torch.Size, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """A sampling grid (N, 28, 28, 2): a random affine map plus a smooth random displacement field."""
    n, _, h, w = shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-aug.rotation_deg, aug.rotation_deg) * math.pi / 180
    shear = uniform(-aug.shear_deg, aug.shear_deg) * math.pi / 180
    scale = uniform(*aug.scale)
    half = w / 2  # grid units: 14 px per 1.0
    tx, ty = uniform(-aug.translate_px, aug.translate_px) / half, uniform(-aug.translate_px, aug.translate_px) / half
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin + torch.tan(shear) * cos, tx], dim=1),
            torch.stack([sin, cos, ty], dim=1),
        ],
        dim=1,
    )  # (N, 2, 3)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)  # (N, 28, 28, 2)
    if aug.elastic_px > 0:
        coarse = torch.randn(n, 2, 4, 4, generator=generator) * (aug.elastic_px / half)  # (N, 2, 4, 4)
        field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)  # (N, 2, 28, 28)
        grid = grid + field.permute(0, 2, 3, 1)
    return grid


def augment(x: torch.Tensor, generator: torch.Generator, aug: Augmentation | None = None) -> torch.Tensor:
    """Augment each image in x (N, 1, 28, 28), in [0, 1]: stroke width, then one batched grid_sample."""
    aug = aug or Augmentation()
    x = stroke_width(x, aug, generator)
    grid = warp_grid(x.shape, aug, generator).to(x.device)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
