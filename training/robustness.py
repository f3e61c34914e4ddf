"""Accuracy under corruptions, in the spirit of MNIST-C (Mu & Gilmer, 2019): the MNIST test set, each image
corrupted (seeded, the same for every model), fed to the model as the 28x28 [0, 1] input it takes.

The model alone is measured, not the service's preprocessing: translation and scale would mostly be undone by
the service's crop-and-centre step, and inverted contrast by its polarity check, so those rows say how much
the model relies on that step. Run: python -m training evaluate --robustness [MODEL ...].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SEED = 2026


@dataclass(frozen=True)
class Corruption:
    name: str
    description: str
    apply: Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (N, 1, 28, 28) in [0, 1] -> same


def _affine(x: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    # matrices (N, 2, 3) map output to input coordinates in [-1, 1]; outside the image is background (0).
    grid = F.affine_grid(matrices, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _signs(n: int, rng: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=rng).float() * 2 - 1  # (N,) of -1 or +1


def rotate(degrees: float) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    def apply(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        angle = _signs(len(x), rng) * math.radians(degrees)
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        return _affine(x, torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1))

    return apply


def scale(factor: float) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    def apply(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        eye = torch.tensor([[1.0 / factor, 0.0, 0.0], [0.0, 1.0 / factor, 0.0]])
        return _affine(x, eye.expand(len(x), 2, 3))

    return apply


def shear(amount: float) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    def apply(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        k = _signs(len(x), rng) * amount
        one, zero = torch.ones_like(k), torch.zeros_like(k)
        return _affine(x, torch.stack([torch.stack([one, k, zero], 1), torch.stack([zero, one, zero], 1)], 1))

    return apply


def translate(pixels: float) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    def apply(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        shift = _signs(len(x), rng) * (2 * pixels / 28)  # in [-1, 1] units
        horizontal = torch.rand(len(x), generator=rng) < 0.5
        tx, ty = torch.where(horizontal, shift, 0.0), torch.where(horizontal, 0.0, shift)
        one, zero = torch.ones_like(tx), torch.zeros_like(tx)
        return _affine(x, torch.stack([torch.stack([one, zero, tx], 1), torch.stack([zero, one, ty], 1)], 1))

    return apply


def thicken(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)  # 3x3 dilation: strokes ~2 px wider


def thin(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    eroded = -F.max_pool2d(-x, 2, stride=1)  # 2x2 erosion: strokes ~1 px narrower
    return F.pad(eroded, (0, 1, 0, 1))


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    return (k[:, None] * k[None, :])[None, None]  # (1, 1, K, K)


def blur(sigma: float) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    kernel = _gaussian_kernel(sigma)

    def apply(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return F.conv2d(x, kernel, padding=kernel.shape[-1] // 2)

    return apply


def motion_blur(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    kernel = torch.full((1, 1, 1, 7), 1 / 7)  # 7 px horizontal smear
    return F.conv2d(x, kernel, padding=(0, 3))


def gaussian_noise(sigma: float) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    def apply(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return (x + sigma * torch.randn(x.shape, generator=rng)).clamp(0, 1)

    return apply


def salt_and_pepper(share: float) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    def apply(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        hit = torch.rand(x.shape, generator=rng) < share
        return torch.where(hit, (torch.rand(x.shape, generator=rng) < 0.5).float(), x)

    return apply


def low_contrast(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    return 0.3 + 0.4 * x  # grey paper, grey ink: the digit spans 0.3-0.7


def inverted(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    return 1 - x


def dotted_line(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    # A random straight dotted line across each image, as in MNIST-C's dotted_line.
    n = len(x)
    out = x.clone()
    ends = torch.randint(0, 28, (n, 4), generator=rng)
    for i in range(n):
        r0, c0, r1, c1 = ends[i].tolist()
        steps = max(abs(r1 - r0), abs(c1 - c0), 1)
        for s in range(0, steps + 1, 2):
            out[i, 0, r0 + (r1 - r0) * s // steps, c0 + (c1 - c0) * s // steps] = 1.0
    return out


def outline(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    # Only the strokes' edges (like MNIST-C's canny_edges): dilation minus the image.
    return (F.max_pool2d(x, 3, stride=1, padding=1) - x).clamp(0, 1) * 2


CORRUPTIONS = (
    Corruption("clean", "the MNIST test set as it is", lambda x, rng: x),
    Corruption("rotate 30", "rotated by 30 degrees, either way", rotate(30)),
    Corruption("scale 0.6", "shrunk to 60% about the centre", scale(0.6)),
    Corruption("scale 1.3", "enlarged to 130% (the ends of long strokes leave the frame)", scale(1.3)),
    Corruption("shear 0.4", "sheared horizontally by 0.4, either way", shear(0.4)),
    Corruption("translate 5", "shifted 5 px up, down, left or right", translate(5)),
    Corruption("thick strokes", "strokes dilated by a 3x3 maximum (about 2 px wider)", thicken),
    Corruption("thin strokes", "strokes eroded by a 2x2 minimum (about 1 px narrower)", thin),
    Corruption("blur", "Gaussian blur, sigma 1.2 px", blur(1.2)),
    Corruption("motion blur", "a 7 px horizontal smear", motion_blur),
    Corruption("noise", "Gaussian noise, sigma 0.3, clipped to [0, 1]", gaussian_noise(0.3)),
    Corruption("salt and pepper", "10% of pixels set to black or white", salt_and_pepper(0.1)),
    Corruption("low contrast", "grey ink on grey paper: 0.3 + 0.4 x", low_contrast),
    Corruption("dotted line", "a random dotted line drawn across the digit", dotted_line),
    Corruption("outline", "only the strokes' edges (dilation minus the image), like Canny edges", outline),
    Corruption("inverted", "black digit on white (the service's preprocessing would undo this)", inverted),
)


def corrupted_sets(images: np.ndarray) -> dict[str, np.ndarray]:
    """Each corruption applied to images (N, 1, 28, 28) float32 in [0, 1], seeded: the same for every model."""
    x = torch.from_numpy(images)
    sets = {}
    for corruption in CORRUPTIONS:
        rng = torch.Generator().manual_seed(SEED)
        sets[corruption.name] = corruption.apply(x, rng).clamp(0, 1).contiguous().numpy().astype(np.float32)
    return sets


def robustness(models: list[Path], images: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, float]]:
    """corruption -> model path -> accuracy."""
    from training.export import onnx_outputs

    table: dict[str, dict[str, float]] = {}
    for name, corrupted in corrupted_sets(images).items():
        table[name] = {}
        for model in models:
            predicted = onnx_outputs(model, corrupted)["probabilities"].argmax(axis=1)
            table[name][str(model)] = float((predicted == labels).mean())
    return table


def markdown(table: dict[str, dict[str, float]], names: dict[str, str]) -> str:
    """The table as markdown: one row per corruption (with its description), one column per model."""
    models = list(next(iter(table.values())))
    lines = [
        "| corruption | what it does | " + " | ".join(names.get(m, m) for m in models) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in models) + " |",
    ]
    described = {c.name: c.description for c in CORRUPTIONS}
    for name, row in table.items():
        cells = " | ".join(f"{100 * row[m]:.2f}%" for m in models)
        lines.append(f"| {name} | {described[name]} | {cells} |")
    corrupted = [name for name in table if name != "clean"]
    means = " | ".join(f"{100 * np.mean([table[n][m] for n in corrupted]):.2f}%" for m in models)
    lines.append(f"| **mean of the corruptions** | | {means} |")
    return "\n".join(lines)


def card_of(model: Path) -> Path:
    """The card beside a model in the repository layout (<name>/<version>/model.onnx -> card.json)."""
    return model.with_name("card.json")


def report(models: list[Path], data_dir: Path | None, *, write_cards: bool = False) -> str:
    """The robustness table of the given ONNX models as markdown; with write_cards, each card gains it too."""
    import json

    from training.data import load_split
    from training.evaluate import test_images

    split = load_split("test", data_dir)
    table = robustness(models, test_images(split), split.labels)
    names = {}
    for model in models:
        card_path = card_of(model)
        card = json.loads(card_path.read_text()) if card_path.exists() else {}
        names[str(model)] = card.get("name", model.parent.name)
        if write_cards and card:
            described = {c.name: c.description for c in CORRUPTIONS}
            card["robustness"] = {
                "method": "the MNIST test set, each image corrupted (seed 2026) and fed to the model as its 28x28 "
                "input; the service's preprocessing is not applied (training/robustness.py)",
                "accuracy": {
                    name: {"accuracy": round(row[str(model)], 4), "corruption": described[name]}
                    for name, row in table.items()
                },
            }
            card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return markdown(table, names)
