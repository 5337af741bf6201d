"""The package stays readable and typed: modules of a readable size, and mypy clean on the installed layout.

mypy reads the package as it installs (``envs/`` and ``agents/`` inside ``metarl/``): the folders are copied
into that layout in a temporary directory, as ``pip`` lays out the wheel, and checked with the settings in
``pyproject.toml`` (``[tool.mypy]``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

#: the most lines a module of the package may hold; a longer one mixes concerns and is split into a room
MODULE_LINE_LIMIT = 400
PACKAGE_FOLDERS = ("metarl", "envs", "agents")


def _package_modules() -> list[Path]:
    return sorted(
        p for folder in PACKAGE_FOLDERS for p in (REPO / folder).rglob("*.py") if "__pycache__" not in p.parts
    )


def test_no_module_of_the_package_is_longer_than_the_limit() -> None:
    lengths = {p.relative_to(REPO): len(p.read_text().splitlines()) for p in _package_modules()}
    too_long = {str(p): n for p, n in lengths.items() if n > MODULE_LINE_LIMIT}
    assert not too_long, f"modules over {MODULE_LINE_LIMIT} lines: {too_long}"


def _installed_layout(root: Path) -> Path:
    """Copy metarl/, envs/ and agents/ into ``root/site`` as the wheel lays them out; returns that folder."""
    site = root / "site"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "metarl", site / "metarl", ignore=ignore)
    shutil.copytree(REPO / "envs", site / "metarl" / "envs", ignore=ignore)
    shutil.copytree(REPO / "agents", site / "metarl" / "agents", ignore=ignore)
    return site


@pytest.mark.slow  # over 20 s here; CI runs the slow tests after the default run
def test_type_checker_is_clean_on_the_installed_layout(tmp_path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    site = _installed_layout(tmp_path)
    command = [
        sys.executable, "-m", "mypy", "-p", "metarl",
        "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    env = {**os.environ, "MYPYPATH": str(site)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
