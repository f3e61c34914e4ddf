"""Where the tests find the checkout, the committed model and the MNIST files.

NOTE: nothing heavy here (no service, no torch): the training suite imports this without the serve extra.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.servers import COMMITTED_MODEL, REPO_ROOT

__all__ = ["COMMITTED_CARD", "COMMITTED_MODEL", "REPO_ROOT", "committed_model", "mnist_data_dir", "mnist_test_files"]

COMMITTED_CARD = COMMITTED_MODEL.with_suffix(".json")


def committed_model() -> tuple[Path, Path]:
    """(COMMITTED_MODEL, COMMITTED_CARD), with the calling test skipped unless both are in the checkout."""
    if not (COMMITTED_MODEL.exists() and COMMITTED_CARD.exists()):
        pytest.skip(f"the committed model is missing: {COMMITTED_MODEL} and its card {COMMITTED_CARD.name} are needed")
    return COMMITTED_MODEL, COMMITTED_CARD


def mnist_data_dir() -> Path:
    """Where the MNIST IDX files are: MNIST_DATA_DIR, else the shared copy beside the checkout, else the
    per-user cache (training.data downloads into it when the files are missing)."""
    if env := os.environ.get("MNIST_DATA_DIR"):
        return Path(env)
    shared = REPO_ROOT.parent / "shared" / "datasets" / "mnist"
    if shared.is_dir():
        return shared
    from training.data import default_data_dir

    return default_data_dir()


def mnist_test_files() -> Path:
    """mnist_data_dir(), with the calling test skipped unless the MNIST test images are in it."""
    directory = mnist_data_dir()
    if not (directory / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST test files are not in {directory} (set MNIST_DATA_DIR)")
    return directory
