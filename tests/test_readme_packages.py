"""The README's package table (section "Packages") agrees with pyproject.toml: every package the design
brief names has a row, and each row's "installed by" is true — a dependency, an extra that lists it,
an environment of its own for a member family alloop knows, or "not installed" for one alloop does
not use and does not declare."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from alloop.ensemble.kinds import KINDS

REPO = Path(__file__).resolve().parents[1]
#: the packages the people this project is for listed, in their order
DESIGN_BRIEF = ["ase", "torch", "fairchem-core", "mace-torch", "orb-models", "sevenn", "pyace", "mlip", "dask",
                "dask-jobqueue", "sqlalchemy", "numpy", "pyyaml"]


def package_table() -> list[tuple[str, str, str]]:
    """(name as the brief spells it, PyPI distribution, "installed by" cell) per row."""
    section = (REPO / "README.md").read_text().split("\n## Packages\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.match(r"`([^`]+)`", cells[0]).group(1)
        pypi = re.search(r"PyPI `([^`]+)`", cells[0])
        rows.append((name, pypi.group(1) if pypi else name, cells[2]))
    return rows


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """Distribution names of the dependencies, and of each extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return _names(project["dependencies"]), {k: _names(v) for k, v in project["optional-dependencies"].items()}


def test_the_table_has_one_row_per_package_of_the_design_brief() -> None:
    assert [name for name, _, _ in package_table()] == DESIGN_BRIEF


def test_each_row_says_truly_what_installs_the_package() -> None:
    dependencies, extras = declared()
    everything = dependencies.union(*extras.values())
    for name, pypi, installed_by in package_table():
        dist = canonicalize_name(pypi)
        extra = re.fullmatch(r"extra `([\w-]+)`", installed_by)
        environment = re.fullmatch(r"own environment \(`alloop env create ([\w-]+)`\)", installed_by)
        if installed_by == "dependency":
            assert dist in dependencies, f"{name}: the README says dependency, pyproject.toml does not list {pypi}"
        elif extra:
            assert extra.group(1) in extras, f"{name}: no extra '{extra.group(1)}' in pyproject.toml"
            assert dist in extras[extra.group(1)], f"{name}: extra '{extra.group(1)}' does not list {pypi}"
        elif environment:
            assert environment.group(1) in KINDS, f"{name}: '{environment.group(1)}' is no member family of alloop"
        elif installed_by == "not installed":
            assert dist not in everything, f"{name}: the README says not installed, pyproject.toml lists it"
        else:
            raise AssertionError(f"{name}: unknown 'installed by' entry {installed_by!r}")


def test_the_mlip_row_points_to_how_max_volume_is_done() -> None:
    readme = (REPO / "README.md").read_text()
    assert "**MLIP-2 and max volume.**" in readme and "alloop/train/select.py" in readme
    assert (REPO / "alloop" / "train" / "select.py").is_file()
