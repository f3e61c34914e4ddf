"""Where the tests find the checkout, the committed model and the MNIST files.

NOTE: nothing heavy here (no service, no torch): the training suite imports this without the serve extra.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.servers import COMMITTED_REPOSITORY, REPO_ROOT

__all__ = [
    "COMMITTED_MODELS",
    "COMMITTED_REPOSITORY",
    "REPO_ROOT",
    "committed_repository",
    "mnist_data_dir",
    "mnist_test_files",
]

# The models the checkout commits, <name>: the folder of its one version.
COMMITTED_MODELS = {
    "mnist_cnn": COMMITTED_REPOSITORY / "mnist_cnn" / "1",
    "mnist_modern": COMMITTED_REPOSITORY / "mnist_modern" / "1",
}


def committed_repository() -> Path:
    """COMMITTED_REPOSITORY, with the calling test skipped unless every committed model and card is there."""
    missing = [
        str(folder / name)
        for folder in COMMITTED_MODELS.values()
        for name in ("model.onnx", "card.json")
        if not (folder / name).exists()
    ]
    if missing:
        pytest.skip(f"committed models are missing: {', '.join(missing)}")
    return COMMITTED_REPOSITORY


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
