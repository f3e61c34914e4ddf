import json
import os
import re
import subprocess
import sys

import pytest

from tests.paths import REPO_ROOT, mnist_data_dir


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )


def total_parameters(table: str) -> int:
    return int(re.search(r"^total\s+([\d,]+)$", table, re.MULTILINE).group(1).replace(",", ""))


def test_summary_prints_table_with_total():
    result = run("summary")
    assert result.returncode == 0
    assert "conv3" in result.stdout and total_parameters(result.stdout) == 104_202


def test_summary_modern_prints_its_layers_with_fewer_parameters():
    result = run("summary", "--arch", "modern")
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:-1]]
    assert names == ["stem", "block1", "block2", "block3", "gap", "logits", "probabilities"]
    assert "(N, 128, 7, 7)" in result.stdout and total_parameters(result.stdout) <= 104_202


@pytest.fixture(scope="module", params=["classic", "modern"])
def dry_run_checkpoint(request, tmp_path_factory):
    """A checkpoint from `train --dry-run` of each architecture."""
    checkpoint = tmp_path_factory.mktemp(request.param) / "m.pt"
    result = run(
        "train", "--arch", request.param, "--dry-run", "--output", str(checkpoint), "--data-dir", str(mnist_data_dir())
    )
    assert result.returncode == 0, result.stderr
    return request.param, checkpoint


def test_dry_run_then_export_to_repository_then_evaluate(dry_run_checkpoint, tmp_path):
    arch, checkpoint = dry_run_checkpoint
    data = str(mnist_data_dir())
    exported = run(
        "export", "--arch", arch, "--checkpoint", str(checkpoint), "--repository", str(tmp_path),
        "--name", f"dry_{arch}", "--version", "2", "--limit", "500", "--data-dir", data,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    version = tmp_path / f"dry_{arch}" / "2"
    assert sorted(p.name for p in version.iterdir()) == ["card.json", "model.onnx"]
    card = json.loads((version / "card.json").read_text())
    assert card["architecture"]["name"] == arch and card["metrics"]["parity"]["images"] == 500
    evaluated = run("evaluate", str(version / "model.onnx"), "--data-dir", data)
    assert evaluated.returncode == 0 and "confusion matrix" in evaluated.stdout


def test_export_with_output_writes_the_single_file_layout(dry_run_checkpoint, tmp_path):
    _, checkpoint = dry_run_checkpoint
    model = tmp_path / "m.onnx"
    args = (
        "--checkpoint",
        str(checkpoint),
        "--output",
        str(model),
        "--limit",
        "200",
        "--data-dir",
        str(mnist_data_dir()),
    )
    exported = run("export", *args)
    assert exported.returncode == 0, exported.stderr
    assert "parity" in exported.stdout and json.loads((tmp_path / "m.json").read_text())["file"] == "m.onnx"


def test_export_over_an_existing_version_is_one_clear_line(dry_run_checkpoint, tmp_path):
    _, checkpoint = dry_run_checkpoint
    (tmp_path / "m" / "1").mkdir(parents=True)
    args = ("--checkpoint", str(checkpoint), "--repository", str(tmp_path), "--name", "m", "--limit", "10")
    result = run("export", *args, "--data-dir", str(mnist_data_dir()))
    assert result.returncode != 0 and "already exists" in result.stderr and "--force" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_of_another_architecture_is_one_clear_line(dry_run_checkpoint, tmp_path):
    arch, checkpoint = dry_run_checkpoint
    other = "classic" if arch == "modern" else "modern"
    result = run("export", "--arch", other, "--checkpoint", str(checkpoint), "--repository", str(tmp_path))
    assert result.returncode != 0 and f"pass --arch {arch}" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_missing_model_is_one_clear_line(tmp_path):
    result = run("evaluate", str(tmp_path / "none.onnx"), "--data-dir", str(mnist_data_dir()))
    assert result.returncode != 0
    assert "error:" in result.stderr and "Traceback" not in result.stderr
