"""The package as users install it: every module and data file of ``agola/`` is in the wheel.

An editable install (what the other tests use) imports straight from the source tree, so it hides
a directory that the package list leaves out; these tests look at what a wheel really holds.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import setuptools

REPO_ROOT = Path(__file__).resolve().parent.parent


def tracked_files() -> list[str]:
    """The files a clean clone has (what CI and a user building from git get)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO_ROOT, capture_output=True, check=True, timeout=30).stdout
    return sorted(name for name in out.decode().split("\0")
                  if name and (REPO_ROOT / name).is_file())


def package_files(files: list[str]) -> list[str]:
    return [f for f in files if f.startswith("agola/") and "__pycache__" not in f]


def test_every_directory_with_python_files_is_a_listed_package() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO_ROOT / "setup.cfg")
    include = [p.strip() for p in cfg["options.packages.find"]["include"].split(",")]
    found = set(setuptools.find_packages(where=str(REPO_ROOT), include=include))
    dirs = {str(Path(f).parent).replace("/", ".") for f in package_files(tracked_files()) if f.endswith(".py")}
    missing = sorted(dirs - found)
    assert not missing, f"directories holding Python files left out of the package (no __init__.py?): {missing}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of the tracked files, so no stale build/ output leaks in."""
    src = tmp_path_factory.mktemp("src")
    for name in tracked_files():
        dest = src / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, dest)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=300)
    (path,) = out.glob("agola-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_every_module_and_data_file(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    missing = [f for f in package_files(tracked_files()) if f not in names]
    assert not missing, f"files of agola/ missing from the wheel: {missing}"
    assert "agola/services/gateway/role.py" in names


def test_the_wheel_declares_the_console_script(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "agola = agola.cli.main:main" in wheel.read(entry_points).decode()
