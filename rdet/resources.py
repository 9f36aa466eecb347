"""Files that ship inside the package: the configs (``rdet.configs``) and the bundled samples (``rdet.samples``).

The repository keeps them at its top level (``configs/``, ``data/samples/``); ``pyproject.toml`` installs them
as sub-packages, so the same code finds them in a source checkout, an editable install and a wheel.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _package_dir(name: str) -> Path:
    return Path(str(resources.files(name)))


def configs_dir() -> Path:
    """The folder of the shipped configs (``configs/`` of the repository)."""
    return _package_dir("rdet.configs")


def samples_dir() -> Path:
    """The folder of the bundled sample data (``data/samples/`` of the repository)."""
    return _package_dir("rdet.samples")
