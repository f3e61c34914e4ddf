import subprocess
import sys

from tests.conftest import REPO_ROOT, mnist_data_dir


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


def test_summary_prints_table_with_total():
    result = run("summary")
    assert result.returncode == 0
    assert "conv3" in result.stdout and "104,202" in result.stdout


def test_dry_run_then_export_then_evaluate(tmp_path):
    data = str(mnist_data_dir())
    ckpt, model = tmp_path / "m.pt", tmp_path / "m.onnx"
    assert run("train", "--dry-run", "--output", str(ckpt), "--data-dir", data).returncode == 0
    exported = run("export", "--checkpoint", str(ckpt), "--output", str(model), "--data-dir", data)
    assert exported.returncode == 0, exported.stderr
    assert "parity" in exported.stdout and (tmp_path / "m.json").is_file()
    evaluated = run("evaluate", str(model), "--data-dir", data)
    assert evaluated.returncode == 0 and "confusion matrix" in evaluated.stdout


def test_evaluate_missing_model_is_one_clear_line(tmp_path):
    result = run("evaluate", str(tmp_path / "none.onnx"), "--data-dir", str(mnist_data_dir()))
    assert result.returncode != 0
    assert "error:" in result.stderr and "Traceback" not in result.stderr
