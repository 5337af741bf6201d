"""The wheel installs one import name, ``metarl``; in that layout the import layers hold, with no circles.

The wheel is built from a copy of the repository's packaging files and installed with ``pip --target`` into a
folder outside the checkout; the checks then run in processes started there, where the checkout is not on the
import path.
"""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, tiny_settings, train_command

PACKAGE_FOLDERS = {"metarl": REPO / "metarl", "metarl/envs": REPO / "envs", "metarl/agents": REPO / "agents"}


def _python_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*.py") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("metarl", "envs", "agents"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, src],
        check=True, capture_output=True,
    )  # fmt: skip
    (built,) = out.glob("metarl-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, wheel],
        check=True, capture_output=True,
    )  # fmt: skip
    return target


def _run_outside(installed: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``args`` in ``cwd`` with only the installed folder (not the checkout) added to the import path."""
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)


def test_wheel_holds_one_top_level_name_metarl(wheel) -> None:
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"metarl"}


def test_wheel_holds_every_python_file_of_metarl_envs_and_agents(wheel) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for prefix, folder in PACKAGE_FOLDERS.items():
        missing = {f for f in _python_files(folder) if f"{prefix}/{f}" not in names}
        assert not missing, (
            f"{folder.name}/ files missing from the wheel: add their package to pyproject.toml"
        )


def test_wheel_declares_the_metarl_console_script(wheel) -> None:
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read(next(n for n in archive.namelist() if n.endswith("entry_points.txt")))
    parser = configparser.ConfigParser()
    parser.read_string(entry_points.decode())
    assert parser["console_scripts"]["metarl"] == "metarl.cli:entry_point"


def test_outside_the_checkout_envs_and_agents_do_not_import_and_metarl_envs_registers_the_ids(
    installed, tmp_path
) -> None:
    script = """
import importlib.util, sys
assert importlib.util.find_spec("envs") is None and importlib.util.find_spec("agents") is None
import gymnasium as gym
import metarl.envs, metarl.agents.maml_trpo, metarl.cli
for module in (metarl, metarl.envs, metarl.agents.maml_trpo, metarl.cli):
    assert module.__file__.startswith(sys.argv[1]), module.__file__
assert metarl.envs.registered_ids() and all(i in gym.registry for i in metarl.envs.registered_ids())
gym.make("metarl/HalfCheetahVel-v1").close()
gym.make_vec("metarl/AntDir-v1", 2, vectorization_mode="vector_entry_point").close()
"""
    result = _run_outside(installed, [sys.executable, "-c", script, str(installed)], tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("envs", "agents"):
        result = _run_outside(installed, [sys.executable, "-c", f"import {name}"], tmp_path)
        assert result.returncode == 1 and f"No module named '{name}'" in result.stderr


def test_import_linter_contracts_hold_in_the_installed_layout(installed, tmp_path) -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    result = _run_outside(installed, [str(lint), str(REPO / "setup.cfg")], tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_core_contract_lists_every_core_module() -> None:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    listed = set(parser["importlinter:contract:core-is-generic"]["source_modules"].split())
    above = ("cli", "app")  # the console script and the app (the composition root) may import envs/agents
    core = {f"metarl.{p.stem}" for p in (REPO / "metarl").glob("*.py") if p.stem not in ("__init__", *above)}
    core |= {f"metarl.{p.parent.name}" for p in (REPO / "metarl").glob("*/__init__.py")}
    core -= {f"metarl.{name}" for name in above}
    assert listed == core


def test_lint_passes_and_bans_top_level_envs_and_agents_imports(tmp_path) -> None:
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    folders = ["metarl", "envs", "agents", "tests", "experiments"]
    result = subprocess.run(
        [str(ruff), "check", "--no-cache", *folders], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    (tmp_path / "bad.py").write_text("from envs.tasks import GoalTask\nimport agents.policies\n")
    result = subprocess.run(
        [str(ruff), "check", "--no-cache", "--config", str(REPO / "pyproject.toml"), "bad.py"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert result.stdout.count("TID251") == 2


def _absolute_imports_of(tree: ast.AST, names: tuple[str, ...]) -> list[int]:
    """Lines of ``import NAME[.x]`` and ``from NAME[.x] import y`` (never relative imports) in ``tree``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        lines += [node.lineno for module in modules if module.split(".")[0] in names]
    return lines


def test_no_python_file_imports_a_top_level_envs_or_agents() -> None:
    offenders = []
    for folder in ("metarl", "envs", "agents", "tests", "experiments"):
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            offenders += [
                f"{path.relative_to(REPO)}:{line}" for line in _absolute_imports_of(tree, ("envs", "agents"))
            ]
    assert not offenders, "import metarl.envs / metarl.agents (relative inside them): " + ", ".join(offenders)


def test_the_import_scan_finds_absolute_but_not_relative_imports() -> None:
    tree = ast.parse(
        "import envs\nfrom agents.policies import x\nfrom .tasks import y\nfrom ..envs import z\n"
    )
    assert _absolute_imports_of(tree, ("envs", "agents")) == [1, 2]


def test_installed_metarl_trains_with_subprocess_workers_outside_the_checkout(installed, tmp_path) -> None:
    # the workers import the task distributions by module name: they must find them in the installed package
    config = tmp_path / "navigation2d-quick.yaml"
    shutil.copy(REPO / "experiments" / "navigation2d-quick.yaml", config)
    settings = tiny_settings("meta.iterations=1", "collector.backend=subprocess", "collector.workers=2")
    command = [sys.executable, "-m", "metarl.cli", *train_command(config, tmp_path / "run", settings)]
    result = _run_outside(installed, command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()
