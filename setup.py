"""What goes into the ``onemap`` wheel; the project's metadata and dependencies are in pyproject.toml.

Besides the ``server`` package and its data files, the wheel carries the default catalog inputs:
the top-level ``collections/``, ``styles/`` and ``config/`` folders of the repository, installed as
``server/defaults/<folder>`` (``server.settings.packaged`` finds them there, or at the top of a
source checkout). pyproject.toml's ``[tool.setuptools]`` tables cannot add such mapped folders to
the packages they find, hence this file.
"""

from setuptools import find_namespace_packages, setup

# top-level folder -> the files of it that ship
DEFAULTS = {"collections": ["*.yaml"], "styles": ["*.json"], "config": ["*.yaml"]}
SERVER_DATA = ["sources/sql/*.sql", "policy/sql/*.sql", "html/templates/*.html", "html/static/**/*",
               "scene/*.html", "scene/*.js"]

setup(
    packages=[*find_namespace_packages(include=["server*"]), *(f"server.defaults.{name}" for name in DEFAULTS)],
    package_dir={f"server.defaults.{name}": name for name in DEFAULTS},
    package_data={"server": SERVER_DATA, **{f"server.defaults.{name}": globs for name, globs in DEFAULTS.items()}},
)
