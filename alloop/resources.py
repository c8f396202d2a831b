"""The folders alloop reads beside its code: `db/` (schema migrations) and `templates/` (pacemaker
input, VASP INCAR, job scripts).

In the repository they sit at the top level, next to `alloop/`, and a clone (editable install or
PYTHONPATH) reads them there. A wheel can only install files inside its packages, so the build copies
both into the package as `alloop/_data/db` and `alloop/_data/templates` (setup.py); an installed alloop
finds them there. The installed copy is looked for first, so that a stray `templates/` folder beside
site-packages can never be taken for alloop's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alloop.errors import MissingFileError

PACKAGE_DIR = Path(__file__).resolve().parent
#: where the wheel build puts the copies (see setup.py)
INSTALLED_DATA = "_data"
ShippedFolder = Literal["db", "templates"]


def shipped_dir(name: ShippedFolder) -> Path:
    """alloop's `db/` or `templates/` folder: the installed copy, else the repository's."""
    for path in (PACKAGE_DIR / INSTALLED_DATA / name, PACKAGE_DIR.parent / name):
        if path.is_dir():
            return path
    raise MissingFileError(
        f"{PACKAGE_DIR / INSTALLED_DATA / name} or {PACKAGE_DIR.parent / name}", f"alloop's {name}/ folder",
        "reinstall alloop (`pip install .` or a wheel built from the repository carries it; a clone has it at "
        "the top level)")


def template_path(relative: str) -> Path:
    """A file under templates/, e.g. `template_path("vasp/INCAR")` (its existence is the caller's check,
    so that the error can name the setting that replaces it)."""
    return shipped_dir("templates") / relative
