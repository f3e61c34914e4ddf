import numpy as np
import pytest

from training.calibration import expected_calibration_error, fit_temperature, nll, softmax


def confident(n: int, confidence: float, correct: int) -> tuple[np.ndarray, np.ndarray]:
    """n predictions of class 0 with the given top probability, the first `correct` of them right."""
    probabilities = np.full((n, 10), (1 - confidence) / 9)
    probabilities[:, 0] = confidence
    labels = np.where(np.arange(n) < correct, 0, 1)
    return probabilities, labels


def test_ece_is_zero_when_confidence_matches_accuracy():
    assert expected_calibration_error(*confident(100, 0.8, 80)) == pytest.approx(0.0, abs=1e-9)


def test_ece_is_the_gap_for_overconfident_predictions():
    assert expected_calibration_error(*confident(100, 0.99, 50)) == pytest.approx(0.49)


def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_at():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20_000, 10))
    cumulative = softmax(logits, 2.0).cumsum(axis=1)
    labels = np.minimum((rng.random((20_000, 1)) > cumulative).sum(axis=1), 9)
    fit = fit_temperature(logits, labels)
    assert fit["temperature"] == pytest.approx(2.0, rel=0.05)
    assert fit["validation_after"]["nll"] <= fit["validation_before"]["nll"]


def test_nll_at_temperature_matches_softmax():
    logits = np.random.default_rng(1).normal(size=(5, 10))
    labels = np.arange(5)
    expected = -np.log(softmax(logits, 0.7)[np.arange(5), labels]).mean()
    assert nll(logits, labels, 0.7) == pytest.approx(expected)
