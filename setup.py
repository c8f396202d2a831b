"""Everything about the package is in pyproject.toml; this file only adds one build step.

`db/` (schema migrations) and `templates/` live at the top of the repository, beside `alloop/`, and stay
there. A wheel can only install files inside its packages, so the build copies both folders into the
built package as `alloop/_data/db` and `alloop/_data/templates`, where `alloop.resources` looks first.
An editable install needs no copy: it reads them in the repository.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("db", "templates")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for name in SHIPPED:
            source = Path(name)
            if not source.is_dir():
                raise FileNotFoundError(f"{source.resolve()} is missing: build from a full checkout (or its sdist)")
            shutil.copytree(source, Path(self.build_lib) / "alloop" / "_data" / name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithData})
