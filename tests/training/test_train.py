import numpy as np
import torch
import torch.nn.functional as F

from training.data import Split
from training.train import TrainConfig, augment, load_checkpoint, save_checkpoint, train


def synthetic_split(n: int = 512) -> Split:
    """Digits as bright bars at a label-dependent row: learnable in a few steps."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 4 + 2 * label : 6 + 2 * label, 4:24] = 255
    return Split(images, labels.astype(np.int64))


def test_train_lowers_the_loss():
    config = TrainConfig(epochs=3, batch_size=64, lr=3e-3, max_steps=6, augment=False, val_size=64)
    _, record = train(synthetic_split(), config, log=lambda _: None)
    losses = [h["loss"] for h in record["history"]]
    assert losses[-1] < losses[0]


def test_train_is_reproducible_with_a_seed():
    config = TrainConfig(epochs=1, batch_size=64, max_steps=3, val_size=64, seed=7)
    a, _ = train(synthetic_split(), config, log=lambda _: None)
    b, _ = train(synthetic_split(), config, log=lambda _: None)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(pa, pb, msg=name)


def test_augment_keeps_shape_and_moves_pixels():
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    y = augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert F.l1_loss(y, x) > 0.01
    assert 0.5 < y.sum() / x.sum() < 1.5  # roughly the same amount of ink


def test_checkpoint_round_trip(tmp_path):
    config = TrainConfig(epochs=1, batch_size=64, max_steps=1, val_size=64)
    model, record = train(synthetic_split(), config, log=lambda _: None)
    loaded, loaded_record = load_checkpoint(save_checkpoint(model, record, tmp_path / "m.pt"))
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded_record["config"]["epochs"] == 1
