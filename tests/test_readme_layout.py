"""The README's layout table (section "Layout") names every module and package at the top of `alloop/`, and
every path it names exists: a module added or moved without its row, or a row left behind, fails here."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def layout_paths() -> list[str]:
    """The paths in the first column of the layout table, as written (`alloop/uq.py`, `alloop/state/`)."""
    section = (REPO / "README.md").read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.strip().strip("|").split("|")[0] for line in section.splitlines() if line.startswith("| `")]
    return [path for cell in first_cells for path in re.findall(r"`([^`]+)`", cell)]


def test_every_path_in_the_layout_table_exists():
    missing = [p for p in layout_paths() if not (REPO / p).exists()]
    assert missing == []


def test_every_top_level_module_and_package_has_a_row():
    named = {p.rstrip("/") for p in layout_paths()}
    top = {f"alloop/{p.name}" for p in (REPO / "alloop").iterdir()
           if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()}
    assert sorted(top - named) == []
