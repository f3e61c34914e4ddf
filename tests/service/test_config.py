"""Settings read MNIST_* environment variables, and every default is the one README's settings table gives."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.config import Settings
from tests.paths import REPO_ROOT

README = REPO_ROOT / "README.md"
SETTINGS_TABLE = "Settings (environment, prefix `MNIST_`"
PREFIX = Settings.model_config["env_prefix"]


def clear_mnist_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith(PREFIX)]:
        monkeypatch.delenv(name)


def documented_defaults() -> dict[str, str]:
    """README's settings table as {variable: its default as written}; a row may name several variables, and
    then gives their defaults in the same order, comma-separated."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(SETTINGS_TABLE))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:  # the first line after the table
            break
    documented = {}
    for row in rows[2:]:  # after the header and its | --- | line
        names_cell, default_cell = row.strip("|").split("|")[:2]
        names = re.findall(rf"`({PREFIX}\w+)`", names_cell)
        defaults = [part.strip() for part in default_cell.split(",")] if len(names) > 1 else [default_cell.strip()]
        assert names and len(names) == len(defaults), f"README settings row not understood: {row}"
        documented |= dict(zip(names, defaults, strict=True))
    return documented


def as_environment_value(documented: str) -> str:
    """What one would set the variable to for the documented default: `5242880` -> 5242880, 'empty (off)' -> ''."""
    value = re.sub(r"\(.*?\)", "", documented).replace("`", "").strip()
    return "" if value == "empty" else value


def test_settings_read_mnist_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_MODEL_REPOSITORY", "/srv/models")
    monkeypatch.setenv("MNIST_DEFAULT_MODEL", "mnist_modern")
    monkeypatch.setenv("MNIST_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("MNIST_MAX_BATCH_FILES", "8")
    monkeypatch.setenv("MNIST_CORS_ORIGINS", "http://a.example, http://b.example")
    settings = Settings()
    assert settings.model_repository == Path("/srv/models")
    assert settings.default_model == "mnist_modern"
    assert (settings.max_upload_bytes, settings.max_batch_files) == (1234, 8)
    assert settings.cors_origins == ["http://a.example", "http://b.example"]


def test_settings_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    documented = documented_defaults()
    variables = {PREFIX + name.upper(): name for name in Settings.model_fields}
    assert sorted(variables.keys() - documented.keys()) == [], "settings missing from README's settings table"
    assert sorted(documented.keys() - variables.keys()) == [], "README documents settings that do not exist"
    clear_mnist_environment(monkeypatch)
    defaults = Settings()
    wrong = {}
    for variable, name in variables.items():
        if getattr(defaults, name) is None:
            continue  # no value to compare: the table says in words what happens without one (card_path)
        monkeypatch.setenv(variable, as_environment_value(documented[variable]))
        try:
            read = getattr(Settings(), name)
        except ValidationError as err:
            read = f"unreadable: {err.errors()[0]['msg']}"
        if read != getattr(defaults, name):
            wrong[variable] = (documented[variable], getattr(defaults, name))
        monkeypatch.delenv(variable)
    assert wrong == {}, "README default != Settings default"
