"""Uploaded bytes -> MNIST-style (28, 28) digit: formats, modes, polarity, layout and refusals."""

from __future__ import annotations

import io
import resource

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from service.config import Settings
from service.errors import BadRequest, ServiceError, UnsupportedImage, UnusableImage
from service.preprocess import mnist_recipe, mnist_recipe_with_ink, prepare_digit, prepare_digit_with_ink
from tests.service.images import encode, png_header_claiming, read_mnist_test_images, three_on_paper

# The limit a server has unless MNIST_MAX_IMAGE_PIXELS says otherwise.
DEFAULT_MAX_PIXELS: int = Settings.model_fields["max_image_pixels"].default


def prepare(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """prepare_digit at the service's default pixel limit."""
    return prepare_digit(data, max_pixels=max_pixels)


# --- images made in memory --------------------------------------------------------------------------


def seven_mask(size: tuple[int, int] = (120, 120), offset: tuple[int, int] = (0, 0)) -> Image.Image:
    """Mode "L" mask of a thick, softly edged "7": 255 on the stroke, 0 elsewhere."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    x, y = offset
    draw.line([(x + 20, y + 15), (x + 95, y + 15), (x + 45, y + 105)], fill=255, width=12)
    draw.line([(x + 40, y + 60), (x + 80, y + 60)], fill=255, width=10)
    return mask.filter(ImageFilter.GaussianBlur(1.0))


def bar_mask(size: tuple[int, int] = (120, 120)) -> Image.Image:
    """Mode "L" mask of a tall upright bar, a "1": 255 on the bar, 0 elsewhere."""
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle([52, 10, 68, 110], fill=255)
    return mask


def ink_on_paper(mask: Image.Image) -> Image.Image:
    """Black ink on white paper, mode "L"."""
    return Image.eval(mask, lambda value: 255 - value)


def mnist_like() -> np.ndarray:
    """(28, 28) uint8 white-on-black ring with soft edges in a 20x20 box, centred by mass like MNIST."""
    big = Image.new("L", (160, 160), 0)
    ImageDraw.Draw(big).ellipse([20, 0, 140, 159], outline=255, width=22)
    digit = np.asarray(big.resize((20, 20), Image.Resampling.BOX))
    mass = digit.astype(np.float64)
    row = (mass.sum(axis=1) @ np.arange(20)) / mass.sum()
    col = (mass.sum(axis=0) @ np.arange(20)) / mass.sum()
    top, left = round(14 - row), round(14 - col)
    frame = np.zeros((28, 28), dtype=np.uint8)
    frame[top : top + 20, left : left + 20] = digit
    return frame


def reference(mask: Image.Image) -> np.ndarray:
    """What the recipe makes of a clean white-on-black mask: the target every variant should match."""
    return mnist_recipe(np.asarray(mask, dtype=np.float32) / 255)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(image.shape)
    return float((rows * image).sum() / image.sum()), float((cols * image).sum() / image.sum())


def ink_box(image: np.ndarray, level: float = 0.1) -> tuple[int, int]:
    """(height, width) of the box around pixels brighter than level."""
    rows = np.flatnonzero((image > level).any(axis=1))
    cols = np.flatnonzero((image > level).any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


SEVEN = seven_mask()
SEVEN_REFERENCE = reference(SEVEN)


def assert_shows_seven(output: np.ndarray) -> None:
    assert output.shape == (28, 28)
    assert correlation(output, SEVEN_REFERENCE) > 0.9


# --- MNIST images pass through untouched -----------------------------------------------------------


def test_prepare_digit_keeps_mnist_like_png_unchanged() -> None:
    digit = mnist_like()
    output = prepare(encode(Image.fromarray(digit)))
    np.testing.assert_array_equal(output, digit.astype(np.float32) / 255)


def test_prepare_digit_keeps_real_mnist_test_images_unchanged() -> None:
    images = read_mnist_test_images(100)
    for image in images:
        output = prepare(encode(Image.fromarray(image)))
        np.testing.assert_allclose(output, image.astype(np.float32) / 255, atol=1e-6)


def test_prepare_digit_inverts_black_on_white_mnist_like_png() -> None:
    digit = mnist_like()
    output = prepare(encode(Image.fromarray(255 - digit)))
    np.testing.assert_allclose(output, digit.astype(np.float32) / 255, atol=1e-6)


# --- photos and scans -------------------------------------------------------------------------------


def photo_of_seven(width: int = 400, height: int = 300, offset: tuple[int, int] = (230, 150)) -> bytes:
    """Dark "7" off-centre on white paper darkening to grey across the sheet, with noise, as a JPEG."""
    columns = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    paper = 0.97 - 0.25 * columns - 0.1 * rows  # (H, W)
    ink = np.asarray(seven_mask((width, height), offset), dtype=np.float32) / 255
    noise = np.random.default_rng(0).normal(0.0, 0.02, (height, width))
    pixels = paper * (1 - ink) + 0.12 * ink + noise
    return encode(Image.fromarray(np.clip(pixels * 255, 0, 255).astype(np.uint8)), "JPEG", quality=85)


def test_prepare_digit_turns_dark_ink_on_light_paper_white_on_black() -> None:
    output = prepare(photo_of_seven())
    assert output[0].max() == 0 and output[-1].max() == 0  # black background, no paper left
    assert_shows_seven(output)


def test_prepare_digit_centres_off_centre_digit_by_mass() -> None:
    output = prepare(photo_of_seven())
    row, col = centre_of_mass(output)
    assert abs(row - 14) <= 1.0 and abs(col - 14) <= 1.0


def test_prepare_digit_scales_longest_side_to_twenty_pixels() -> None:
    output = prepare(photo_of_seven())
    assert 18 <= max(ink_box(output)) <= 21


def test_prepare_digit_enlarges_small_digit_to_twenty_pixels() -> None:
    small = ink_on_paper(SEVEN.resize((12, 12), Image.Resampling.BOX))
    canvas = Image.new("L", (64, 64), 255)
    canvas.paste(small, (5, 40))
    assert 18 <= max(ink_box(prepare(encode(canvas)))) <= 21


def test_prepare_digit_ignores_gradient_on_blank_paper_beside_digit() -> None:
    output = prepare(photo_of_seven())
    assert correlation(output, SEVEN_REFERENCE) > 0.95


# Photos of paper: white paper clipped at 255 hides its noise from the border's MAD (the crop once took in the
# specks: the 3 came out 14 px tall, 11 px on a bigger sheet), uneven light and grey ink on grey paper.
NOISY_PHOTOS = {
    "noise-sigma-10": lambda: three_on_paper(10),
    "noise-sigma-18": lambda: three_on_paper(18),
    "uneven-light-noise-18": lambda: three_on_paper(18, paper=230, light=0.6),
    "low-contrast-noise-18": lambda: three_on_paper(18, paper=200, ink=150),
    "low-contrast-uneven-light-noise-10": lambda: three_on_paper(10, paper=190, ink=130, light=0.5),
}


@pytest.mark.parametrize("kind", sorted(NOISY_PHOTOS))
def test_prepare_digit_crops_noisy_photo_to_twenty_pixels(kind: str) -> None:
    assert 19 <= max(ink_box(prepare(NOISY_PHOTOS[kind]()))) <= 20


def correlation_within_a_pixel(a: np.ndarray, b: np.ndarray) -> float:
    """The best correlation of a and b shifted by up to one pixel: the centring rounds to whole pixels."""
    shifts = [(row, col) for row in (-1, 0, 1) for col in (-1, 0, 1)]
    return max(correlation(np.roll(a, shift, axis=(0, 1)), b) for shift in shifts)


@pytest.mark.parametrize("kind", sorted(NOISY_PHOTOS))
def test_prepare_digit_shows_noisy_photo_like_clean_one(kind: str) -> None:
    assert correlation_within_a_pixel(prepare(NOISY_PHOTOS[kind]()), prepare(three_on_paper())) > 0.9


@pytest.mark.anyio
@pytest.mark.parametrize("kind", sorted(NOISY_PHOTOS))
async def test_predict_digit_reads_noisy_photo_with_committed_classic_model(
    committed_client: httpx.AsyncClient, kind: str
) -> None:
    response = await committed_client.post("/predict?model=mnist_cnn", files={"file": ("3.png", NOISY_PHOTOS[kind]())})
    body = response.json()
    assert (body["digit"], body["unsure"]) == (3, False), body["unsure_reasons"]
    assert body["confidence"] > 0.9


def test_prepare_digit_with_ink_returns_the_digit_prepare_digit_returns() -> None:
    data = three_on_paper(10)
    digit, ink = prepare_digit_with_ink(data, max_pixels=DEFAULT_MAX_PIXELS)
    np.testing.assert_array_equal(digit, prepare(data))
    assert 0.55 < ink.box_share < 0.65  # the 3 is 240 px of its 400 px sheet: measured before scaling


def test_mnist_recipe_with_ink_measures_mnist_digit_in_its_own_frame() -> None:
    digit, ink = mnist_recipe_with_ink(mnist_like().astype(np.float32) / 255)
    np.testing.assert_array_equal(digit, mnist_like().astype(np.float32) / 255)
    assert ink.box_share == 20 / 28


# --- colour modes and transparency ------------------------------------------------------------------


def rgba_strokes(stroke: tuple[int, int, int], hidden: tuple[int, int, int]) -> Image.Image:
    """Canvas drawing: stroke colour where the mask is, alpha = mask, hidden colour under alpha 0."""
    colour = Image.composite(Image.new("RGB", SEVEN.size, stroke), Image.new("RGB", SEVEN.size, hidden), SEVEN)
    colour.putalpha(SEVEN)
    return colour


@pytest.mark.parametrize(
    ("stroke", "hidden"),
    [
        ((0, 0, 0), (0, 0, 0)),  # black strokes, transparent pixels black: invisible without alpha
        ((0, 0, 0), (255, 255, 255)),
        ((255, 255, 255), (255, 255, 255)),  # white strokes: invisible on the hidden colour
        ((30, 60, 220), (0, 0, 0)),  # coloured pen
    ],
    ids=["black-on-black", "black-on-white", "white-on-white", "blue-on-black"],
)
def test_prepare_digit_reads_rgba_canvas_strokes_on_transparent_background(
    stroke: tuple[int, int, int], hidden: tuple[int, int, int]
) -> None:
    assert_shows_seven(prepare(encode(rgba_strokes(stroke, hidden))))


def test_prepare_digit_reads_la_strokes_on_transparent_background() -> None:
    image = Image.merge("LA", (Image.new("L", SEVEN.size, 0), SEVEN))
    assert_shows_seven(prepare(encode(image)))


def palette_seven() -> Image.Image:
    """Mode "P": index 0 white paper, index 1 black ink."""
    image = Image.new("P", SEVEN.size, 0)
    image.putpalette([255, 255, 255, 0, 0, 0])
    image.paste(1, mask=SEVEN.point(lambda value: 255 if value > 127 else 0))
    return image


def test_prepare_digit_reads_palette_png_with_transparency() -> None:
    image = palette_seven()
    image.putpalette([0, 0, 0, 0, 0, 0])  # paper now as black as the ink: only transparency tells
    assert_shows_seven(prepare(encode(image, transparency=0)))


def test_prepare_digit_reads_palette_png_without_transparency() -> None:
    assert_shows_seven(prepare(encode(palette_seven())))


def test_prepare_digit_reads_one_bit_image() -> None:
    image = ink_on_paper(SEVEN).point(lambda value: 255 if value > 127 else 0).convert("1")
    assert_shows_seven(prepare(encode(image)))


def test_prepare_digit_scales_sixteen_bit_png_instead_of_clipping() -> None:
    # Paper 40000 and ink 2000 would both clip to 255 (blank) under Pillow's own I;16 -> L.
    values = 40000 - (np.asarray(SEVEN, dtype=np.float32) / 255 * 38000)
    image = Image.fromarray(values.astype(np.uint16))
    assert image.mode == "I;16"
    assert_shows_seven(prepare(encode(image)))


def test_prepare_digit_reads_float_tiff() -> None:
    image = Image.fromarray(1.0 - np.asarray(SEVEN, dtype=np.float32) / 255)  # mode F, 0..1
    assert_shows_seven(prepare(encode(image, "TIFF")))


def test_prepare_digit_reads_cmyk_jpeg() -> None:
    black = Image.merge("CMYK", (*[Image.new("L", SEVEN.size, 0)] * 3, SEVEN))
    assert_shows_seven(prepare(encode(black, "JPEG", quality=95)))


@pytest.mark.parametrize("fmt", ["JPEG", "BMP", "WEBP", "TIFF", "GIF", "PNG"])
def test_prepare_digit_reads_rgb_in_each_format(fmt: str) -> None:
    image = Image.merge("RGB", [ink_on_paper(SEVEN)] * 3)
    assert_shows_seven(prepare(encode(image, fmt)))


def test_prepare_digit_uses_first_frame_of_animated_gif() -> None:
    first, second = ink_on_paper(SEVEN), ink_on_paper(bar_mask())
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    Image.open(io.BytesIO(data)).seek(1)  # the GIF really holds a second frame (EOFError otherwise)
    output = prepare(data)
    assert_shows_seven(output)
    assert correlation(output, reference(bar_mask())) < 0.5


# --- EXIF orientation -------------------------------------------------------------------------------


def stored_sideways_bar() -> tuple[Image.Image, Image.Exif]:
    """A tall black bar on white, stored turned 90 degrees, with the Orientation (6) that undoes it."""
    stored = ink_on_paper(bar_mask((120, 160))).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    return stored, exif


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_prepare_digit_turns_image_upright_by_exif_orientation(fmt: str) -> None:
    stored, exif = stored_sideways_bar()
    height, width = ink_box(prepare(encode(stored, fmt, exif=exif)))
    assert height > 2 * width


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_prepare_digit_keeps_image_as_stored_when_exif_is_broken() -> None:
    stored, _ = stored_sideways_bar()
    height, width = ink_box(prepare(encode(stored, "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")))
    assert width > 2 * height


# --- refusals ---------------------------------------------------------------------------------------


def test_prepare_digit_rejects_blank_image() -> None:
    with pytest.raises(UnusableImage, match="no digit found"):
        prepare(encode(Image.new("L", (64, 64), 255)))


def test_prepare_digit_rejects_uniform_grey_image() -> None:
    with pytest.raises(UnusableImage, match="no digit found"):
        prepare(encode(Image.new("RGB", (64, 48), (128, 128, 128)), "JPEG"))


def test_prepare_digit_rejects_photo_of_blank_paper() -> None:
    noise = np.random.default_rng(1).normal(0.85, 0.03, (240, 320))
    paper = Image.fromarray(np.clip(noise * 255, 0, 255).astype(np.uint8))
    with pytest.raises(UnusableImage, match="no digit found"):
        prepare(encode(paper, "JPEG"))


def test_prepare_digit_rejects_pure_noise() -> None:
    noise = np.random.default_rng(4).integers(0, 256, (40, 40), dtype=np.uint8)
    with pytest.raises(UnusableImage, match="no digit found"):
        prepare(encode(Image.fromarray(noise)))


def test_prepare_digit_rejects_empty_upload() -> None:
    with pytest.raises(BadRequest, match="empty upload"):
        prepare(b"")


@pytest.mark.parametrize(
    "data",
    [np.random.default_rng(2).bytes(2000), b"this is not an image, just some text\n" * 20],
    ids=["random-bytes", "text"],
)
def test_prepare_digit_rejects_bytes_that_are_no_image(data: bytes) -> None:
    with pytest.raises(UnsupportedImage, match="PNG, JPEG, GIF, BMP, WebP or TIFF"):
        prepare(data)


def test_prepare_digit_rejects_format_outside_the_supported_list() -> None:
    with pytest.raises(UnsupportedImage):
        prepare(encode(ink_on_paper(SEVEN), "PPM"))  # Pillow reads PPM, the service does not


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_prepare_digit_rejects_truncated_image_with_service_error(fmt: str) -> None:
    noise = np.random.default_rng(3).integers(0, 256, (200, 200), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    with pytest.raises(ServiceError) as caught:
        prepare(data[: len(data) // 2])
    assert not isinstance(caught.value, OSError)
    assert "truncated or corrupt" in str(caught.value)


def test_prepare_digit_rejects_decompression_bomb_header_before_decoding() -> None:
    data = png_header_claiming(50_000, 50_000)  # 2.5 gigapixels declared in 65 bytes
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(UnusableImage, match="2,500,000,000 pixels"):
        prepare(data)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000  # no 2.5 GB frame


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_prepare_digit_rejects_header_when_pillow_bomb_warning_is_an_error() -> None:
    with pytest.raises(UnusableImage, match="100,000,000 pixels"):
        prepare(png_header_claiming(10_000, 10_000))  # over Image.MAX_IMAGE_PIXELS: Pillow warns


def test_prepare_digit_rejects_header_over_default_pixel_limit() -> None:
    with pytest.raises(UnusableImage, match="7000x7000"):
        prepare(png_header_claiming(7000, 7000))  # 49 MP: under Pillow's own guard, over ours


def test_prepare_digit_rejects_image_over_given_max_pixels() -> None:
    with pytest.raises(UnusableImage, match="over the limit of 5,000 pixels"):
        prepare(encode(ink_on_paper(SEVEN)), max_pixels=5_000)


def test_prepare_digit_rejects_zero_width_header() -> None:
    with pytest.raises(ServiceError):
        prepare(png_header_claiming(0, 10))


def test_mnist_recipe_rejects_non_2d_array() -> None:
    with pytest.raises(ValueError, match="grayscale array"):
        mnist_recipe(np.zeros((28, 28, 3), dtype=np.float32))


# --- output contract --------------------------------------------------------------------------------


def contract_inputs() -> list[bytes]:
    dot = Image.new("L", (9, 9), 255)
    dot.putpixel((2, 6), 0)
    return [
        encode(Image.fromarray(mnist_like())),
        photo_of_seven(),
        encode(rgba_strokes((0, 0, 0), (0, 0, 0))),
        encode(Image.fromarray(np.array([[255, 0, 255]], dtype=np.uint8))),  # one row, three pixels
        encode(ink_on_paper(SEVEN).resize((1000, 12))),  # very wide
        encode(ink_on_paper(SEVEN).resize((7, 600))),  # very tall
        encode(dot, "BMP"),  # one pixel of ink
    ]


@pytest.mark.parametrize("data", contract_inputs())
def test_prepare_digit_returns_float32_28x28_in_unit_range(data: bytes) -> None:
    output = prepare(data)
    assert output.dtype == np.float32
    assert output.shape == (28, 28)
    assert output.min() >= 0.0 and output.max() <= 1.0
