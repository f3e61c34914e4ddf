"""Are the explanations right, and how fast are they: the figures behind docs/explain.md.

The deletion test, on the first N MNIST test digits and every committed model, with the service's own
functions (service/explain.py) and onnxruntime, no HTTP: the target is the predicted class; for k = 0, 5, ...,
50% of the 784 pixels, the top k by attribution (ties: the lower pixel index first) are set to 0 and the
model's probability of the target is read. Two rankings per method: "all pixels" ranks the 784 pixels as the
map does (a background pixel ranked high is zeroed for nothing), "ink only" ranks the ink (pixels > 0) alone,
as the random baseline does, and deletes at most all of it. The baseline, "random ink", zeroes as many ink
pixels chosen at random (seeded); a digit with less ink than k loses all of it. The area under the mean
probability over k in [0, 0.5] (trapezoid) sums a curve up: lower falls faster, so is more faithful.

--speed times the real /explain (bench/servers.py starts `python -m service` on the committed models):
sequential requests of bench/digit.png per model and method, after a warm-up. Every run also draws, through
the same server's /explain.png, a drawn 7 (tests/service/images.py) explained by both methods on both models.

    python -m bench.explain [--digits 500] [--checks] [--speed] [--docs docs]   # 35-65 s on 2 cores

prints Markdown tables and writes docs/explain-deletion.png (the curves) and docs/explain-seven.png.
tests/service/test_explain_faithfulness.py asserts on measure()'s results.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bench.load import DIGIT_PNG, multipart
from bench.servers import COMMITTED_REPOSITORY, Server, service_env
from bench.trust import read_mnist_test
from service.explain import (
    DEFAULT_PATCH,
    DEFAULT_STRIDE,
    GradCam,
    check_occlusion,
    log_probabilities,
    occluded,
    occlusion_map,
    plan_gradcam,
)
from service.repository import load_runtime, scan
from service.runtime import ModelRuntime

FRACTIONS = np.linspace(0.0, 0.5, 11)  # k: 0, 5, ..., 50% of the pixels
PIXELS = 28 * 28
CHUNK = 2048  # images per onnxruntime run: large enough to amortise a call, small enough for memory
METHODS = ("occlusion", "gradcam")
RANDOM = "random ink"
RANKINGS = ("all pixels", "ink only")
COLOURS = {"occlusion": (200, 40, 40), "gradcam": (30, 90, 200), RANDOM: (110, 110, 110)}
WARM_UP = 20  # requests per cell before the timed ones

Scorer = Callable[[np.ndarray], np.ndarray]  # (P, classes) probabilities -> (P, classes) scores


def service_scores(probabilities: np.ndarray) -> np.ndarray:
    """What /explain's occlusion scores: the log of the probability served."""
    return log_probabilities(probabilities)


def probability_scores(probabilities: np.ndarray) -> np.ndarray:
    """The alternative: the probability itself."""
    return probabilities.astype(np.float64)


# ---- the models and the digits -----------------------------------------------------------------------


def load_models(repository: Path = COMMITTED_REPOSITORY) -> dict[str, ModelRuntime]:
    """Each model's newest version, loaded and verified as the service loads it."""
    return {name: load_runtime(versions[-1]) for name, versions in sorted(scan(repository).items())}


def read_digits(count: int) -> np.ndarray:
    """The first count MNIST test digits as the model takes them: (count, 1, 28, 28) float32 in [0, 1]."""
    images, _labels = read_mnist_test(count)
    return (images[:, None] / np.float32(255.0)).astype(np.float32)


def run_chunked(runtime: ModelRuntime, images: np.ndarray, outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
    """runtime.run over any number of images, CHUNK at a time."""
    parts = [runtime.run(np.ascontiguousarray(images[i : i + CHUNK]), outputs) for i in range(0, len(images), CHUNK)]
    return {name: np.concatenate([part[name] for part in parts]) for name in outputs}


def predicted(runtime: ModelRuntime, images: np.ndarray) -> np.ndarray:
    """(N,) the class each image is answered."""
    name = runtime.contract.probabilities
    return run_chunked(runtime, images, (name,))[name].argmax(axis=1)


# ---- the attributions --------------------------------------------------------------------------------


def with_occlusions(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(G, 1, 28, 28) -> (G * (1 + P), 1, 28, 28), each image followed by its P occluded copies (the service's
    defaults), and the (P, 28, 28) masks of where each copy's patch lies."""
    found = [occluded(image, DEFAULT_PATCH, DEFAULT_STRIDE) for image in images]
    batch = [np.concatenate([image[None], copies]) for image, (copies, _) in zip(images, found, strict=True)]
    return np.concatenate(batch), found[0][1]


def occlusion_maps(
    runtime: ModelRuntime, images: np.ndarray, targets: np.ndarray, scorer: Scorer = service_scores
) -> np.ndarray:
    """(N, 28, 28) occlusion as /explain computes it, many digits and their copies to a run."""
    group = max(1, CHUNK // (1 + check_occlusion(DEFAULT_PATCH, DEFAULT_STRIDE) ** 2))
    name = runtime.contract.probabilities
    maps = []
    for start in range(0, len(images), group):
        batch, masks = with_occlusions(images[start : start + group])
        scores = scorer(runtime.run(batch, (name,))[name])  # (G * (1 + P), classes)
        scores = scores.reshape(-1, 1 + len(masks), scores.shape[-1])
        chosen = scores[np.arange(len(scores)), :, targets[start : start + group]]  # (G, 1 + P)
        maps += [occlusion_map(float(row[0]), row[1:], masks) for row in chosen]
    return np.stack(maps)


def gradcam_plan(runtime: ModelRuntime) -> GradCam:
    assert runtime.graph is not None, f"{runtime.name}: its graph is unreadable here"
    plan = plan_gradcam(runtime.contract, runtime.graph)
    assert isinstance(plan, GradCam), f"{runtime.name} has no Grad-CAM: {plan}"
    return plan


def gradcam_maps(runtime: ModelRuntime, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N, 28, 28) Grad-CAM from the model's last convolutional layer, as /explain computes it."""
    plan = gradcam_plan(runtime)
    activations = run_chunked(runtime, images, (plan.layer,))[plan.layer]  # (N, C, H, W)
    return np.stack(
        [
            plan.attribution(cells, image[0], int(target))
            for cells, image, target in zip(activations, images, targets, strict=True)
        ]
    )


# ---- the deletion test -------------------------------------------------------------------------------


def ranked(attribution: np.ndarray, images: np.ndarray, ink_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N, 784) pixel indices, most evidence first (ties: lower index first), and (N,) how many may go."""
    keys = -attribution.reshape(len(attribution), PIXELS)
    ink = images.reshape(len(images), PIXELS) > 0
    if ink_only:
        keys = np.where(ink, keys, np.inf)  # background last, and never reached: the cap is the ink
    caps = ink.sum(axis=1) if ink_only else np.full(len(images), PIXELS)
    return np.argsort(keys, axis=1, kind="stable"), caps


def random_ink(images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The baseline's order: the ink in a random (seeded) order, then the background, which is never reached."""
    ink = images.reshape(len(images), PIXELS) > 0
    keys = np.where(ink, np.random.default_rng(seed).random(ink.shape), 2.0)
    return np.argsort(keys, axis=1, kind="stable"), ink.sum(axis=1)


def deletion_curve(
    runtime: ModelRuntime, images: np.ndarray, targets: np.ndarray, order: np.ndarray, caps: np.ndarray
) -> np.ndarray:
    """(K,) the mean probability of the target once the first min(k, cap) pixels of each order are zeroed."""
    count = len(images)
    ranks = np.empty_like(order)
    ranks[np.arange(count)[:, None], order] = np.arange(PIXELS)  # pixel -> its place in the order
    deleted = np.minimum(np.round(FRACTIONS * PIXELS).astype(int)[None], caps[:, None])  # (N, K)
    keep = ranks[:, None, :] >= deleted[:, :, None]  # (N, K, 784)
    copies = (images.reshape(count, 1, PIXELS) * keep).reshape(-1, 1, 28, 28).astype(np.float32)
    name = runtime.contract.probabilities
    probabilities = run_chunked(runtime, copies, (name,))[name].reshape(count, len(FRACTIONS), -1)
    return probabilities[np.arange(count), :, targets].mean(axis=0)


def area(curve: np.ndarray) -> float:
    """The area under a deletion curve over k in [0, 0.5]: lower is more faithful."""
    return float(np.trapezoid(curve, FRACTIONS))


@dataclass(frozen=True)
class Deletion:
    """One model's deletion curves, by "method, ranking" and RANDOM: mean probability of the target per k."""

    model: str
    digits: int
    curves: dict[str, np.ndarray]
    seconds: float

    def area(self, curve: str) -> float:
        return area(self.curves[curve])


def measure(runtime: ModelRuntime, images: np.ndarray, seed: int = 0, checks: bool = False) -> Deletion:
    """The deletion test of one model on images: both methods, both rankings, and the random baseline."""
    start = time.perf_counter()
    targets = predicted(runtime, images)
    maps = {"occlusion": occlusion_maps(runtime, images, targets), "gradcam": gradcam_maps(runtime, images, targets)}
    if checks:
        maps["occlusion on probability"] = occlusion_maps(runtime, images, targets, probability_scores)
    curves = {RANDOM: deletion_curve(runtime, images, targets, *random_ink(images, seed))}
    for method, attribution in maps.items():
        for ranking in RANKINGS:
            order = ranked(attribution, images, ink_only=ranking == "ink only")
            curves[f"{method}, {ranking}"] = deletion_curve(runtime, images, targets, *order)
    return Deletion(runtime.name, len(images), curves, time.perf_counter() - start)


# ---- /explain on a real server -----------------------------------------------------------------------


def post(connection: http.client.HTTPConnection, path: str, png: bytes) -> bytes:
    """POST one image to path as the `file` field; the body of the 200 (RuntimeError with any other)."""
    body = multipart("file", [png])
    connection.request("POST", path, body.data, {"Content-Type": body.content_type})
    response = connection.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"POST {path}: {response.status} {data[:300]!r}")
    return data


def explain_path(model: str, method: str, picture: bool = False) -> str:
    return f"/explain{'.png' if picture else ''}?model={model}&method={method}"


@dataclass(frozen=True)
class Timing:
    """One cell: sequential /explain requests, client-side milliseconds and the server's own timings_ms.total."""

    model: str
    method: str
    client_ms: np.ndarray
    server_ms: np.ndarray


def time_explain(connection: http.client.HTTPConnection, model: str, method: str, requests: int) -> Timing:
    """requests sequential POSTs of bench/digit.png on one kept-alive connection, after WARM_UP untimed ones."""
    path, png = explain_path(model, method), DIGIT_PNG.read_bytes()
    for _ in range(WARM_UP):
        post(connection, path, png)
    client, server = np.zeros(requests), np.zeros(requests)
    for index in range(requests):
        start = time.perf_counter()
        answer = post(connection, path, png)
        client[index] = (time.perf_counter() - start) * 1000.0
        server[index] = json.loads(answer)["timings_ms"]["total"]
    return Timing(model, method, client, server)


def explain_seven(connection: http.client.HTTPConnection, model: str, method: str) -> tuple[dict, Image.Image]:
    """The drawn 7 of the tests (tests/service/images.py) through /explain and /explain.png."""
    from tests.service.images import draw_seven, encode  # NOTE: bench imports no test module at import time

    seven = encode(draw_seven())
    answer = json.loads(post(connection, explain_path(model, method), seven))
    picture = Image.open(io.BytesIO(post(connection, explain_path(model, method, picture=True), seven)))
    return answer, picture.convert("RGB")


# ---- pictures ----------------------------------------------------------------------------------------

PANEL, PLOT = (480, 400), (62, 44, 462, 300)  # panel size; plot box (left, top, right, bottom) within it
INK, GRID = (20, 20, 20), (225, 225, 225)


def font(size: int = 13) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)  # Pillow's own FreeType font: no font files needed


def dashed(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], colour: tuple, dash: float = 7) -> None:
    """A polyline drawn as dashes of `dash` pixels with gaps as long, the pattern running on across joints."""
    travelled = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        length = float(np.hypot(x1 - x0, y1 - y0))
        for start in np.arange(-(travelled % (2 * dash)), length, 2 * dash):
            a, b = max(start, 0.0) / length, min(start + dash, length) / length
            if b > a:
                draw.line(
                    [(x0 + a * (x1 - x0), y0 + a * (y1 - y0)), (x0 + b * (x1 - x0), y0 + b * (y1 - y0))], colour, 2
                )
        travelled += length


def axes(draw: ImageDraw.ImageDraw, title: str) -> Callable[[float, float], tuple[float, float]]:
    """Grid, ticks and labels of one panel; the map from (k, probability) to the panel's pixels."""
    left, top, right, bottom = PLOT

    def at(k: float, p: float) -> tuple[float, float]:
        return left + (right - left) * k / FRACTIONS[-1], bottom - (bottom - top) * p

    for k in FRACTIONS[::2]:
        x = at(k, 0)[0]
        draw.line([(x, top), (x, bottom)], GRID)
        draw.text((x, bottom + 5), f"{k:.0%}", INK, font(), anchor="ma")
    for p in np.linspace(0, 1, 5):
        y = at(0, p)[1]
        draw.line([(left, y), (right, y)], GRID)
        draw.text((left - 6, y), f"{p:.2f}", INK, font(), anchor="rm")
    draw.rectangle(PLOT, outline=INK)
    draw.text(((left + right) / 2, 12), title, INK, font(15), anchor="mm")
    draw.text(((left + right) / 2, bottom + 24), "pixels zeroed (k, share of the 784)", INK, font(), anchor="ma")
    draw.text((left, top - 8), "p(target)", INK, font(), anchor="ms")
    return at


def legend(draw: ImageDraw.ImageDraw, top: float) -> None:
    """Colour: the method; solid: the map ranks all 784 pixels, dashed: it ranks the ink only."""
    x = PLOT[0]
    for name, colour in COLOURS.items():
        draw.line([(x, top + 7), (x + 24, top + 7)], colour, 3)
        draw.text((x + 30, top), name, INK, font())
        x += 40 + int(draw.textlength(name, font()))
    draw.line([(PLOT[0], top + 29), (PLOT[0] + 24, top + 29)], INK, 2)
    draw.text((PLOT[0] + 30, top + 22), "all pixels ranked", INK, font())
    dashed(draw, [(PLOT[0] + 160, top + 29), (PLOT[0] + 184, top + 29)], INK)
    draw.text((PLOT[0] + 190, top + 22), "ink only ranked", INK, font())


def deletion_panel(deletion: Deletion) -> Image.Image:
    """One model's curves: p(target) against k, a line per method and ranking."""
    image = Image.new("RGB", PANEL, "white")
    draw = ImageDraw.Draw(image)
    at = axes(draw, f"{deletion.model}: deletion, {deletion.digits} MNIST test digits")
    for name, curve in deletion.curves.items():
        method, _, ranking = name.partition(", ")
        if method not in COLOURS:
            continue  # the checks' extra curves are in the tables only
        points = [at(k, p) for k, p in zip(FRACTIONS, curve, strict=True)]
        if ranking == "ink only":
            dashed(draw, points, COLOURS[method])
        else:
            draw.line(points, COLOURS[method], 3 if method == RANDOM else 2)
    legend(draw, PLOT[3] + 48)
    return image


def side_by_side(tiles: list[Image.Image]) -> Image.Image:
    """Tiles in one row on white, 12 px apart."""
    width = sum(tile.width for tile in tiles) + 12 * (len(tiles) + 1)
    row = Image.new("RGB", (width, max(tile.height for tile in tiles) + 24), "white")
    x = 12
    for tile in tiles:
        row.paste(tile, (x, 12))
        x += tile.width + 12
    return row


def labelled(picture: Image.Image, label: str) -> Image.Image:
    """The picture under a line of text."""
    tile = Image.new("RGB", (picture.width, picture.height + 24), "white")
    ImageDraw.Draw(tile).text((picture.width / 2, 12), label, INK, font(15), anchor="mm")
    tile.paste(picture, (0, 24))
    return tile


# ---- the report --------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def areas_table(results: list[Deletion]) -> str:
    """Per model and method: the area for each ranking, and its ratio to the random baseline's."""
    rows = []
    for result in results:
        baseline = result.area(RANDOM)
        rows.append([result.model, RANDOM, f"{baseline:.4f}", f"{baseline:.4f}", "1.00", "1.00"])
        methods = dict.fromkeys(name.partition(", ")[0] for name in result.curves if name != RANDOM)
        for method in methods:
            found = [result.area(f"{method}, {ranking}") for ranking in RANKINGS]
            rows.append([result.model, method, *(f"{a:.4f}" for a in found), *(f"{a / baseline:.2f}" for a in found)])
    header = ["model", "method", "area, all pixels", "area, ink only", "/ random, all pixels", "/ random, ink only"]
    return table(header, rows)


def curves_table(results: list[Deletion]) -> str:
    rows = [
        [result.model, name, *(f"{p:.3f}" for p in curve)]
        for result in results
        for name, curve in result.curves.items()
    ]
    return table(["model", "curve", *(f"{k:.0%}" for k in FRACTIONS)], rows)


def timings_table(timings: list[Timing]) -> str:
    rows = [
        [
            cell.model,
            cell.method,
            str(len(cell.client_ms)),
            *(f"{np.percentile(cell.client_ms, q):.1f}" for q in (50, 99)),
            f"{np.percentile(cell.server_ms, 50):.1f}",
        ]
        for cell in timings
    ]
    return table(["model", "method", "requests", "p50 ms", "p99 ms", "server total p50 ms"], rows)


def seven_table(answers: dict[tuple[str, str], dict]) -> str:
    rows = []
    for (model, method), answer in answers.items():
        attribution = np.asarray(answer["attribution"]["data"])
        ink = np.asarray(answer["input"]["data"]).reshape(28, 28) > 0
        on_ink = attribution[ink & (attribution > 0)].sum() / max(attribution[attribution > 0].sum(), 1e-12)
        cells = [
            answer["digit"],
            f"{answer['confidence']:.4f}",
            f"{attribution.min():+.3g}",
            f"{attribution.max():+.3g}",
        ]
        rows.append([model, method, *map(str, cells), f"{on_ink:.0%}"])
    return table(["model", "method", "digit", "confidence", "min", "max", "positive mass on ink"], rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=500, help="MNIST test digits, the first N (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline (default 0)")
    parser.add_argument(
        "--checks", action="store_true", help="also occlusion scored on the probability, and the scores' range"
    )
    parser.add_argument("--speed", action="store_true", help="also time /explain on a real server")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per cell (default 200)")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="where the pictures go (default docs)")
    return parser.parse_args()


def checks_table(models: dict[str, ModelRuntime], images: np.ndarray) -> str:
    """The scores' range on these digits, and what a digit becomes once all its ink is zeroed: a blank image."""
    rows, ink = [], (images > 0).reshape(len(images), -1).mean(axis=1)  # the share of pixels inked
    for name, runtime in models.items():
        output = runtime.contract.probabilities
        values = run_chunked(runtime, images, (output,))[output]
        blank = runtime.run(np.zeros((1, 1, 28, 28), np.float32), (output,))[output][0]
        lowest = [f"{values.min():.2g}", f"{log_probabilities(values).min():.1f}"]
        rows.append([name, *lowest, f"{blank.argmax()} ({blank.max():.3f})", f"{ink.mean():.1%}, {ink.max():.1%}"])
    header = ["model", "smallest probability, any class", "its log", "a blank image is"]
    return table([*header, "ink per digit, mean and most"], rows)


def report_deletion(args: argparse.Namespace, models: dict[str, ModelRuntime]) -> None:
    images = read_digits(args.digits)
    results = [measure(runtime, images, args.seed, args.checks) for runtime in models.values()]
    seconds = ", ".join(f"{result.model} {result.seconds:.1f} s" for result in results)
    print(f"## Deletion: the first {args.digits} MNIST test digits, random seed {args.seed} ({seconds})\n")
    print(areas_table(results), "\n\nMean probability of the target per k:\n", curves_table(results), sep="\n")
    if args.checks:
        print("\nChecks:\n", checks_table(models, images), sep="\n")
    side_by_side([deletion_panel(result) for result in results]).save(args.docs / "explain-deletion.png")


def report_server(args: argparse.Namespace, models: dict[str, ModelRuntime]) -> None:
    server = Server.for_service(service_env(COMMITTED_REPOSITORY), None, "--log-level", "warning")
    with tempfile.TemporaryDirectory() as logs, server.running(Path(logs)):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        sevens = {(model, method): explain_seven(connection, model, method) for model in models for method in METHODS}
        print("\n## A drawn 7 (tests/service/images.py draw_seven), /explain at its defaults\n")
        print(seven_table({cell: answer for cell, (answer, _) in sevens.items()}))
        tiles = [labelled(picture, f"{model}, {method}") for (model, method), (_, picture) in sevens.items()]
        side_by_side(tiles).save(args.docs / "explain-seven.png")
        if args.speed:
            timings = [time_explain(connection, model, method, args.requests) for model in models for method in METHODS]
            load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
            print(f"\n## /explain, concurrency 1, {os.cpu_count()} CPUs, load average {load} at the end\n")
            print(timings_table(timings))
        connection.close()


def main() -> None:
    args = parse_args()
    models = load_models()
    report_deletion(args, models)
    report_server(args, models)
    print(f"\nwrote {args.docs / 'explain-deletion.png'} and {args.docs / 'explain-seven.png'}")


if __name__ == "__main__":
    main()
