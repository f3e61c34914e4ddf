import numpy as np
import pytest
import torch

from training.architectures import ARCHITECTURES
from training.data import Split
from training.train import TrainConfig, default_config, load_checkpoint, save_checkpoint, train


def synthetic_split(n: int = 512) -> Split:
    """Digits as bright bars at a label-dependent row: learnable in a few steps."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 4 + 2 * label : 6 + 2 * label, 4:24] = 255
    return Split(images, labels.astype(np.int64))


def quiet(_: str) -> None:
    pass


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_train_lowers_the_loss(arch):
    config = TrainConfig(arch=arch, epochs=3, batch_size=64, lr=3e-3, max_steps=6, augment=False, val_size=64)
    _, record = train(synthetic_split(), config, log=quiet)
    losses = [h["loss"] for h in record["history"]]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_train_is_reproducible_with_a_seed(arch):
    config = TrainConfig(arch=arch, epochs=1, batch_size=64, max_steps=3, val_size=64, seed=7)
    a, _ = train(synthetic_split(), config, log=quiet)
    b, _ = train(synthetic_split(), config, log=quiet)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(pa, pb, msg=name)
    assert a.temperature == b.temperature


def test_train_fits_the_temperature_it_records():
    config = TrainConfig(epochs=2, batch_size=64, max_steps=4, val_size=64)
    model, record = train(synthetic_split(), config, log=quiet)
    assert model.temperature == record["calibration"]["temperature"] != 1.0
    assert record["calibration"]["validation_after"]["nll"] <= record["calibration"]["validation_before"]["nll"]


def test_train_without_calibration_keeps_temperature_1():
    config = TrainConfig(epochs=1, batch_size=64, max_steps=1, val_size=64, calibrate=False)
    model, record = train(synthetic_split(), config, log=quiet)
    assert model.temperature == 1.0 == record["calibration"]["temperature"]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_checkpoint_round_trip_keeps_weights_statistics_and_temperature(arch, tmp_path):
    config = TrainConfig(arch=arch, epochs=1, batch_size=64, max_steps=2, val_size=64)
    model, record = train(synthetic_split(), config, log=quiet)
    loaded, loaded_record = load_checkpoint(save_checkpoint(model, record, tmp_path / "m.pt"))
    assert loaded.arch == arch and loaded.temperature == model.temperature
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded.features(x)["probabilities"], model.eval().features(x)["probabilities"])
    assert loaded_record["config"]["epochs"] == 1 and loaded_record["arch"] == arch


def test_default_config_takes_the_architecture_recipe_and_overrides():
    recipe = ARCHITECTURES["modern"]
    config = default_config("modern", lr=None, batch_size=32)
    assert (config.arch, config.epochs, config.lr, config.batch_size) == ("modern", recipe.epochs, recipe.lr, 32)


def test_train_with_a_time_budget_stops_early_and_says_so():
    config = TrainConfig(epochs=50, batch_size=64, val_size=64, augment=False, time_budget_s=1.0)
    _, record = train(synthetic_split(), config, log=quiet)
    assert record["schedule"]["stopped_by"] == "time budget"
    assert record["schedule"]["steps"] < record["schedule"]["total_steps"] and len(record["history"]) < 50
