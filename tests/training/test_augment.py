import torch
import torch.nn.functional as F

from training.augment import Augmentation, augment, stroke_width

NONE = Augmentation(rotation_deg=0, scale=(1.0, 1.0), shear_deg=0, translate_px=0, elastic_px=0, thicker=0, thinner=0)


def bar() -> torch.Tensor:
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    return x


def test_augment_keeps_shape_and_moves_pixels():
    x = bar()
    y = augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert F.l1_loss(y, x) > 0.01
    assert 0.5 < y.sum() / x.sum() < 1.5  # roughly the same amount of ink


def test_augment_with_every_range_zero_is_the_identity():
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(augment(x, torch.Generator().manual_seed(0), NONE), x, atol=1e-5, rtol=0)


def test_augment_is_reproducible_with_a_seeded_generator():
    x = bar()
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


def test_stroke_width_dilation_adds_ink_and_erosion_removes_it():
    x = bar()
    thicker = stroke_width(x, Augmentation(thicker=1.0, thinner=0.0), torch.Generator().manual_seed(0))
    thinner = stroke_width(x, Augmentation(thicker=0.0, thinner=1.0), torch.Generator().manual_seed(0))
    assert (thicker >= x).all() and thicker.sum() > x.sum()
    assert (thinner <= x).all() and thinner.sum() < x.sum()


def test_augmentation_describes_itself_for_the_card():
    text = Augmentation().describe()
    assert "dilated" in text and "eroded" in text and "elastic" in text and "rotation ±15°" in text
