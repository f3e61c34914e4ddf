"""When not to trust an answer: the figures behind service/trust.py's thresholds, for every model served.

    .venv/bin/python bench/trust.py                              # the committed models: 35-100 s on 2 cores
    .venv/bin/python bench/trust.py --picture docs/trust-grid.png  # and the picture in docs/trust.md
    .venv/bin/python bench/trust.py --repository /tmp/devrepo      # another model repository

Every image goes through the real pipeline: encoded as PNG, then service.preprocess.prepare_digit_with_ink
and service.trust.reasons, as /predict runs them. It prints, per model: the ECE (15 equal-width bins) on the
MNIST test set, the share of MNIST test digits flagged unsure and the accuracy on the rest, the share flagged
in each family of drawn digits and of non-digits (built here, seeded: dots, dashes, blobs, scribbles, shapes,
letters from fonts), and a drawn 3 photographed on noisy paper (sigma 0, 10, 18) through the crop before
issue 12 and now. The MNIST files come from MNIST_DATA_DIR (default: ../shared/datasets/mnist).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/trust.py` from anywhere

from service import preprocess, trust  # noqa: E402
from service.errors import UnusableImage  # noqa: E402
from service.repository import load_runtime, scan  # noqa: E402
from service.runtime import ModelRuntime  # noqa: E402
from service.trust import InkStats, ink_reasons, reasons  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_PIXELS = 16_000_000  # the service's default limit; nothing here comes near it
CANVAS, BRUSH = 320, 26  # the page's drawing pad and brush (service/static/app.js), white on black
ECE_BINS = 15
FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts"))
REFUSED = "refused (422 no digit found)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--repository", type=Path, default=REPO_ROOT / "models", help="model repository (default models)"
    )
    parser.add_argument("--mnist", type=int, default=10_000, help="MNIST test images to run (default all 10000)")
    parser.add_argument("--per-family", type=int, default=200, help="images per built family (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the built images (default 0)")
    parser.add_argument("--picture", type=Path, help="also draw the non-digits, flagged or not, as a PNG grid here")
    parser.add_argument("--features", type=Path, help="also write every image's ink measurements as CSV here")
    return parser.parse_args()


def log(message: str) -> None:
    print(f"[trust {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def png(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --- MNIST -------------------------------------------------------------------------------------------------


def mnist_dir() -> Path:
    return Path(os.environ.get("MNIST_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets" / "mnist"))


def read_mnist_test(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 28, 28) uint8 images and (count,) labels of the MNIST test set."""
    with gzip.open(mnist_dir() / "t10k-images-idx3-ubyte.gz") as file:
        file.read(16)  # IDX header: magic, count, rows, cols
        images = np.frombuffer(file.read(count * 784), np.uint8).reshape(count, 28, 28)
    with gzip.open(mnist_dir() / "t10k-labels-idx1-ubyte.gz") as file:
        file.read(8)
        labels = np.frombuffer(file.read(count), np.uint8).astype(np.int64)
    return images, labels


def mnist_on_paper(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit as a photo: black on white, 4-10x larger, off-centre on a bigger sheet, the light falling
    by up to 40% across it, grey noise of sigma 0-20 (0-255)."""
    side = round(28 * rng.uniform(4, 10))
    big = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC), np.float32)
    sheet = np.zeros((side + 80, side + 120), np.float32)
    top, left = rng.integers(0, 80), rng.integers(0, 120)
    sheet[top : top + side, left : left + side] = big
    shade = 1 - rng.uniform(0, 0.4) * np.linspace(0, 1, sheet.shape[1], dtype=np.float32)[None, :]
    return (255 - sheet) * shade + rng.normal(0, rng.uniform(0, 20), sheet.shape)


# --- drawings like the page's pad: white strokes of a round 26 px brush on black -----------------------------


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, n: int = 24) -> list[tuple]:
    # Points on an ellipse, angles in degrees, 0 = right, 90 = down (image coordinates).
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a))) for a in np.linspace(start, stop, n)
    ]


# Each digit as strokes (lists of points) in a unit box: x 0..1 across, y 0..1 down.
DIGIT_STROKES: dict[int, list[list[tuple]]] = {
    0: [_arc(0.5, 0.5, 0.45, 0.5, -90, 275)],
    1: [[(0.35, 0.15), (0.55, 0.0), (0.55, 1.0)]],
    2: [_arc(0.5, 0.3, 0.42, 0.3, 190, 370)[:-4] + [(0.05, 1.0), (0.95, 1.0)]],
    3: [_arc(0.47, 0.25, 0.4, 0.25, 200, 450), _arc(0.47, 0.73, 0.47, 0.27, 270, 520)],
    4: [[(0.7, 0.0), (0.05, 0.65), (0.95, 0.65)], [(0.7, 0.3), (0.7, 1.0)]],
    5: [[(0.9, 0.0), (0.2, 0.0), (0.15, 0.45)] + _arc(0.5, 0.68, 0.42, 0.32, 220, 485)],
    6: [[(0.75, 0.0), (0.3, 0.35)] + _arc(0.5, 0.7, 0.4, 0.3, 200, 560)],
    7: [[(0.05, 0.0), (0.95, 0.0), (0.35, 1.0)]],
    8: [_arc(0.5, 0.25, 0.35, 0.25, 90, 450), _arc(0.5, 0.73, 0.45, 0.27, -90, 270)],
    9: [_arc(0.5, 0.3, 0.4, 0.3, 0, 360), [(0.9, 0.3), (0.8, 1.0)]],
}


def draw_strokes(strokes: list[list[tuple]], *, size: int = CANVAS, brush: float = BRUSH) -> Image.Image:
    """Strokes in pixel coordinates as the pad draws them: antialiased (drawn at 4x), round caps and joints."""
    zoom = 4
    image = Image.new("L", (size * zoom, size * zoom), 0)
    draw = ImageDraw.Draw(image)
    radius = brush * zoom / 2
    for stroke in strokes:
        points = [(x * zoom, y * zoom) for x, y in stroke]
        if len(points) > 1:
            draw.line(points, fill=255, width=round(brush * zoom), joint="curve")
        for x, y in (points[0], points[-1]):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)  # round caps
    return image.resize((size, size), Image.Resampling.BOX)


def canvas_digit(digit: int, rng: np.random.Generator, height: tuple[float, float]) -> Image.Image:
    """A digit drawn on the pad: the template jittered, slanted, rotated, height drawn from `height` px."""
    tall = rng.uniform(*height)
    wide = tall * (0.12 if digit == 1 else rng.uniform(0.5, 0.8))
    slant, turn = rng.uniform(-0.3, 0.1), math.radians(rng.uniform(-10, 10))
    cx, cy = rng.uniform(tall / 2 + 20, CANVAS - tall / 2 - 20, size=2) if tall < CANVAS - 60 else (160, 160)
    strokes = []
    for stroke in DIGIT_STROKES[digit]:
        points = []
        for x, y in stroke:
            x, y = x + rng.normal(0, 0.02), y + rng.normal(0, 0.02)
            px, py = (x - 0.5) * (wide if digit != 1 else tall * 0.4) - slant * (y - 0.5) * tall, (y - 0.5) * tall
            points.append(
                (cx + px * math.cos(turn) - py * math.sin(turn), cy + px * math.sin(turn) + py * math.cos(turn))
            )
        strokes.append(points)
    return draw_strokes(strokes)


# --- non-digits --------------------------------------------------------------------------------------------


def dot(rng: np.random.Generator) -> Image.Image:
    """A click on the pad, a dab of a bigger brush, or a dot pen-drawn on a photographed sheet."""
    kind = rng.integers(3)
    x, y = rng.uniform(40, CANVAS - 40, size=2)
    if kind == 0:
        return draw_strokes([[(x, y)]])
    if kind == 1:
        return draw_strokes([[(x, y), (x + rng.normal(0, 3), y + rng.normal(0, 3))]], brush=rng.uniform(10, 60))
    sheet = draw_strokes([[(x, y)]], brush=rng.uniform(6, 40))
    return Image.fromarray(
        np.clip(250 - 0.9 * np.asarray(sheet, np.float32) + rng.normal(0, 6, (CANVAS, CANVAS)), 0, 255).astype(np.uint8)
    )


def dash(rng: np.random.Generator) -> Image.Image:
    """A stroke across, within 35 degrees of horizontal, 40-260 px long, sometimes bent a little."""
    length, angle = rng.uniform(40, 260), math.radians(rng.uniform(-35, 35))
    x, y = CANVAS / 2 + rng.uniform(-30, 30), rng.uniform(60, CANVAS - 60)
    dx, dy = length / 2 * math.cos(angle), length / 2 * math.sin(angle)
    bend = rng.normal(0, 0.08 * length)
    points = [(x - dx, y - dy), (x - bend * math.sin(angle), y + bend * math.cos(angle)), (x + dx, y + dy)]
    return draw_strokes([points], brush=rng.uniform(8, 34))


def blob(rng: np.random.Generator) -> Image.Image:
    """A filled shape: an ellipse, a polygon or a fat smear, 50-280 px across."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    width, height = rng.uniform(50, 280), rng.uniform(50, 280)
    x, y = CANVAS / 2 + rng.uniform(-20, 20), CANVAS / 2 + rng.uniform(-20, 20)
    kind = rng.integers(3)
    if kind == 0:
        draw.ellipse([x - width / 2, y - height / 2, x + width / 2, y + height / 2], fill=255)
    elif kind == 1:
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(5, 9)))
        draw.polygon([(x + width / 2 * math.cos(a), y + height / 2 * math.sin(a)) for a in angles], fill=255)
    else:
        points = [(x + rng.uniform(-width, width) / 4, y + rng.uniform(-height, height) / 4) for _ in range(6)]
        return draw_strokes([points], brush=max(width, height) / 2.5)
    return image


def scribble(rng: np.random.Generator) -> Image.Image:
    """A zigzag of 8-25 random points in a box 120-300 px: crossing out, testing the pen."""
    side = rng.uniform(120, 300)
    x0, y0 = (CANVAS - side) / 2, (CANVAS - side) / 2
    points = [(x0 + rng.uniform(0, side), y0 + rng.uniform(0, side)) for _ in range(rng.integers(8, 26))]
    return draw_strokes([points], brush=rng.uniform(8, 30))


def shape(rng: np.random.Generator) -> Image.Image:
    """An outlined or drawn figure: a cross, an x, a triangle, a square, a star, a tick, an arrow, a smile."""
    s = rng.uniform(120, 280)
    c = CANVAS / 2

    def at(points: list[tuple]) -> list[tuple]:
        return [(c + (x - 0.5) * s, c + (y - 0.5) * s) for x, y in points]

    figures = [
        [[(0.5, 0), (0.5, 1)], [(0, 0.5), (1, 0.5)]],
        [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
        [[(0.5, 0), (1, 1), (0, 1), (0.5, 0)]],
        [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]],
        [[(0.5, 0), (0.2, 1), (1, 0.35), (0, 0.35), (0.8, 1), (0.5, 0)]],
        [[(0, 0.55), (0.35, 1), (1, 0)]],
        [[(0, 0.5), (1, 0.5)], [(0.7, 0.2), (1, 0.5), (0.7, 0.8)]],
        [_arc(0.5, 0.5, 0.5, 0.5, 0, 360), [(0.35, 0.35)], [(0.65, 0.35)], _arc(0.5, 0.5, 0.3, 0.3, 20, 160)],
    ]
    return draw_strokes([at(stroke) for stroke in figures[rng.integers(len(figures))]], brush=rng.uniform(10, 30))


def fonts() -> list[Path]:
    found = sorted({path for folder in FONT_DIRS if folder.is_dir() for path in folder.rglob("*.ttf")})
    return [path for path in found if "Math" not in path.name]


def glyph(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> Image.Image:
    """text in font, black on white, with a margin."""
    image = Image.new("L", (240, 240), 255)
    ImageDraw.Draw(image).text((120, 120), text, font=font, fill=0, anchor="mm")
    return image


def font_list(size: int = 150) -> list[ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    paths = fonts()
    if not paths:
        return [ImageFont.load_default(size)]  # Pillow's own font (FreeType): offline, no TTF needed
    return [ImageFont.truetype(str(path), size) for path in paths]


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Letters a digit can be written as: a model cannot tell these from the digit, nor can a reader.
LOOKALIKES = set("OoDQIlJiSsZzBbGgqT")


def letters(count: int, rng: np.random.Generator) -> tuple[list[Image.Image], list[Image.Image]]:
    """count letters in random fonts: (all letters, those that look like no digit)."""
    font_choices = font_list()
    every, unlike = [], []
    for _ in range(count):
        letter = LETTERS[rng.integers(len(LETTERS))]
        image = glyph(letter, font_choices[rng.integers(len(font_choices))])
        every.append(image)
        if letter not in LOOKALIKES:
            unlike.append(image)
    return every, unlike


def font_digits(rng: np.random.Generator, count: int) -> tuple[list[Image.Image], list[int]]:
    font_choices = font_list()
    labels = [int(rng.integers(10)) for _ in range(count)]
    return [glyph(str(label), font_choices[rng.integers(len(font_choices))]) for label in labels], labels


def noisy_three(sigma: float, seed: int = 0) -> bytes:
    """A 3 drawn with an 8 px pen, half as tall as its 400 px sheet of white paper, grey noise of sigma (0-255)
    added: a phone photo of a digit on paper."""
    strokes = [
        [(200 + (x - 0.5) * 200, 200 + (y - 0.5) * 200) for x, y in stroke]
        for stroke in (_arc(0.5, 0.3, 0.3, 0.22, 200, 450), _arc(0.5, 0.72, 0.35, 0.26, 270, 520))
    ]
    ink = np.asarray(draw_strokes(strokes, size=400, brush=8), np.float32)
    return png(255 - ink + np.random.default_rng(seed).normal(0, sigma, ink.shape))


# --- running images through the pipeline ------------------------------------------------------------------


@dataclass
class Family:
    """Images of one kind, with their labels where they are digits."""

    name: str
    images: list[bytes]
    labels: list[int] | None = None
    digits: np.ndarray = field(init=False)  # (N, 1, 28, 28) what the model sees
    inks: list[InkStats | None] = field(init=False)  # None: refused (no digit found)

    def prepare(self) -> None:
        self.digits = np.zeros((len(self.images), 1, 28, 28), np.float32)
        self.inks = []
        for index, data in enumerate(self.images):
            try:
                self.digits[index, 0], ink = preprocess.prepare_digit_with_ink(data, max_pixels=MAX_PIXELS)
            except UnusableImage:
                ink = None
            self.inks.append(ink)


def build_families(args: argparse.Namespace) -> tuple[list[Family], list[Family]]:
    """(digit families, non-digit families)."""
    rng = np.random.default_rng(args.seed)
    count = args.per_family
    mnist, labels = read_mnist_test(args.mnist)
    paper_index = rng.choice(len(mnist), size=min(count, len(mnist)), replace=False)
    drawn = [(int(rng.integers(10))) for _ in range(count)]
    small = [(int(rng.integers(10))) for _ in range(count)]
    glyphs, glyph_labels = font_digits(rng, count)
    digits = [
        Family("MNIST test", [png(image) for image in mnist], labels.tolist()),
        Family(
            "MNIST as photos", [png(mnist_on_paper(mnist[i], rng)) for i in paper_index], labels[paper_index].tolist()
        ),
        Family("drawn on the pad (150-290 px)", [png(canvas_digit(d, rng, (150, 290))) for d in drawn], drawn),
        Family("drawn small (90-150 px)", [png(canvas_digit(d, rng, (90, 150))) for d in small], small),
        Family("font digits", [png(image) for image in glyphs], glyph_labels),
    ]
    others = [
        Family(name, [png(make(rng)) for _ in range(count)])
        for name, make in (("dots", dot), ("dashes", dash), ("blobs", blob), ("scribbles", scribble), ("shapes", shape))
    ]
    every, unlike = letters(count, rng)
    others += [Family("letters", [png(i) for i in every]), Family("letters unlike digits", [png(i) for i in unlike])]
    return digits, others


def probabilities(runtime: ModelRuntime, digits: np.ndarray) -> np.ndarray:
    """(N, 10) from the model, in batches of 500."""
    name = runtime.contract.probabilities
    return np.concatenate([runtime.run(digits[i : i + 500], (name,))[name] for i in range(0, len(digits), 500)])


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: |accuracy - mean confidence| in each equal-width confidence bin, weighted by its share."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)  # bin b holds [b / bins, (b + 1) / bins)
    return float(
        sum(
            (which == b).mean() * abs(correct[which == b].mean() - confidence[which == b].mean())
            for b in np.unique(which)
        )
    )


def flags(family: Family, probs: np.ndarray) -> list[list[str]]:
    """Each image's reasons as /predict would give them; a refused image counts as flagged."""
    return [[REFUSED] if ink is None else reasons(ink, row) for ink, row in zip(family.inks, probs, strict=True)]


def describe(family: Family, probs: np.ndarray) -> str:
    """One table row: flagged share, by which reason, and (for digits) accuracy overall and on the unflagged."""
    why = flags(family, probs)
    flagged = np.array([bool(w) for w in why])
    counts: dict[str, int] = {}
    for reasons_of_one in why:
        for reason in reasons_of_one:
            key = "low confidence" if reason.startswith("low confidence") else reason
            counts[key] = counts.get(key, 0) + 1
    parts = ", ".join(f"{key} {n}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    row = f"| {family.name} | {len(why)} | {flagged.mean():.2%} | {parts or '-'} |"
    if family.labels is not None:
        correct = probs.argmax(axis=1) == np.array(family.labels)
        kept = correct[~flagged].mean() if (~flagged).any() else float("nan")
        row += f" {correct.mean():.2%} | {kept:.2%} |"
    else:
        row += " | |"
    return row


# --- the crop before issue 12, to show what changed ---------------------------------------------------------


def _old_remove_background(image: np.ndarray) -> np.ndarray:
    # service/preprocess.py _remove_background as it was: the border's MAD alone says whether there is noise.
    level, sigma = preprocess._border_level(image)
    if sigma > 0:
        image = preprocess._flatten_lighting(image)
        level, sigma = preprocess._border_level(image)
        sigma = max(sigma, preprocess._MIN_PHOTO_SIGMA)
    floor = level + preprocess._NOISE_SIGMAS * sigma
    peak = float(image.max())
    ink = np.clip((image - floor) / (peak - floor), 0.0, 1.0)
    return ink.astype(np.float32)


@contextlib.contextmanager
def old_crop() -> Iterator[None]:
    # NOTE: swaps a private function of the service for the old one, in this process only, for the "before" column.
    current = preprocess._remove_background
    preprocess._remove_background = _old_remove_background
    try:
        yield
    finally:
        preprocess._remove_background = current


def ink_height(digit: np.ndarray) -> int:
    rows = np.flatnonzero((digit > 0.1).any(axis=1))
    return int(rows[-1] - rows[0] + 1)


def noisy_photos(runtime: ModelRuntime) -> list[str]:
    rows = [
        "| sigma | before: box, digit, confidence | now: box, digit, confidence | now: unsure |",
        "|---|---|---|---|",
    ]
    for sigma in (0, 10, 18):
        data = noisy_three(sigma)
        cells = []
        for context in (old_crop, contextlib.nullcontext):
            with context():
                digit, ink = preprocess.prepare_digit_with_ink(data, max_pixels=MAX_PIXELS)
            row = probabilities(runtime, digit[None, None])[0]
            cells.append(f"{ink_height(digit)} px, {row.argmax()}, {row.max():.3f}")
        rows.append(f"| {sigma} | {cells[0]} | {cells[1]} | {reasons(ink, row) or 'no'} |")
    return rows


# --- the report --------------------------------------------------------------------------------------------


def confidence_sweep(runtime: ModelRuntime, digits: list[Family], others: list[Family]) -> list[str]:
    """The share flagged (ink or confidence) at other confidence thresholds: what MIN_CONFIDENCE trades."""
    thresholds = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    rows = ["| images | " + " | ".join(f"< {t}" for t in thresholds) + " |", "|---|" + "---:|" * len(thresholds)]
    for family in [digits[0], *others]:
        probs = probabilities(runtime, family.digits)
        by_ink = np.array([ink is None or bool(ink_reasons(ink)) for ink in family.inks])
        cells = [f"{(by_ink | (probs.max(axis=1) < t)).mean():.2%}" for t in thresholds]
        rows.append(f"| {family.name} | " + " | ".join(cells) + " |")
    return rows


def report_model(runtime: ModelRuntime, digits: list[Family], others: list[Family]) -> list[str]:
    mnist = digits[0]
    probs = probabilities(runtime, mnist.digits)
    labels = np.array(mnist.labels)
    confidence = probs.max(axis=1)
    calibration = runtime.card.get("calibration", {})
    lines = [
        f"### {runtime.name} version {runtime.version}",
        "",
        f"- sha256 {runtime.sha256[:12]}; card: calibrated {calibration.get('calibrated')}, "
        f"temperature {calibration.get('temperature')}, "
        f"test metrics {runtime.card.get('metrics', {}).get('test_accuracy')}",
        f"- MNIST test ({len(labels)}): accuracy {(probs.argmax(1) == labels).mean():.2%}, mean confidence "
        f"{confidence.mean():.4f}, median {np.median(confidence):.4f}, max {confidence.max():.4f}, "
        f"ECE ({ECE_BINS} bins) {expected_calibration_error(probs, labels):.4f}",
        "",
        "| images | n | flagged | reasons | accuracy | accuracy unflagged |",
        "|---|---:|---:|---|---:|---:|",
    ]
    lines += [describe(family, probabilities(runtime, family.digits)) for family in digits + others]
    lines += ["", f"Flagged at other confidence thresholds (now {trust.MIN_CONFIDENCE}), ink reasons included:", ""]
    lines += confidence_sweep(runtime, digits, others)
    lines += [
        "",
        "A drawn 3 on noisy paper (box: the digit's height in the 28x28 input):",
        "",
        *noisy_photos(runtime),
        "",
    ]
    return lines


def thresholds() -> str:
    names = ("MIN_BOX_SHARE", "MIN_AREA", "MAX_THICKNESS", "LINE_ELONGATION", "LINE_TILT", "MAX_LOOPS", "MAX_LENGTH")
    return "Thresholds: " + ", ".join(f"{name} {getattr(trust, name)}" for name in (*names, "MIN_CONFIDENCE"))


def ink_only(families: list[Family]) -> list[str]:
    """The model-free half of the signal: the share of each family its ink alone flags."""
    rows = ["| images | flagged by the ink alone |", "|---|---:|"]
    for family in families:
        flagged = [ink is None or bool(ink_reasons(ink)) for ink in family.inks]
        rows.append(f"| {family.name} | {np.mean(flagged):.2%} |")
    return rows


def write_features(path: Path, families: list[Family]) -> None:
    with path.open("w") as file:
        file.write("family,index,label," + ",".join(InkStats.__slots__) + "\n")
        for family in families:
            for index, ink in enumerate(family.inks):
                if ink is not None:
                    label = family.labels[index] if family.labels else ""
                    values = ",".join(str(v) for v in ink.rounded().values())
                    file.write(f"{family.name},{index},{label},{values}\n")


def draw_picture(path: Path, families: list[Family], runtime: ModelRuntime, columns: int = 12) -> None:
    """The first images of each family, a row each: a red frame round those flagged, green round the rest."""
    tile, label = 64, 200
    sheet = Image.new("RGB", (label + columns * tile, len(families) * tile), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(13)
    for row, family in enumerate(families):
        draw.text((6, row * tile + tile // 2), family.name, fill=(0, 0, 0), font=font, anchor="lm")
        why = flags(family, probabilities(runtime, family.digits))[:columns]
        for column, (data, reasons_of_one) in enumerate(zip(family.images[:columns], why, strict=False)):
            x, y = label + column * tile, row * tile
            thumb = Image.open(io.BytesIO(data)).convert("L").resize((tile - 8, tile - 8), Image.Resampling.BOX)
            if np.asarray(thumb).mean() < 128:
                thumb = Image.eval(thumb, lambda v: 255 - v)  # pad drawings shown as ink on paper, like the rest
            sheet.paste(thumb, (x + 4, y + 4))
            colour = (200, 30, 30) if reasons_of_one else (30, 150, 60)
            draw.rectangle([x + 1, y + 1, x + tile - 2, y + tile - 2], outline=colour, width=3)
    sheet.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path, optimize=True)


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    log("building the image families")
    digits, others = build_families(args)
    log("preprocessing")
    for family in digits + others:
        family.prepare()
    folders = scan(args.repository)
    runtimes = [load_runtime(versions[-1]) for versions in folders.values()]
    print(f"## bench/trust.py, {time.strftime('%Y-%m-%d')}, repository {args.repository}\n")
    print(thresholds() + "\n")
    print("\n".join(ink_only(digits + others)) + "\n")
    for runtime in runtimes:
        log(f"running {runtime.name}")
        print("\n".join(report_model(runtime, digits, others)))
    if args.picture:
        draw_picture(args.picture, digits[1:] + others[:-2] + others[-1:], runtimes[0])
    if args.features:
        write_features(args.features, digits + others)
    log(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
