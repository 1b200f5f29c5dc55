"""Where camscan's data directories are.

fingerprints/, policies/ and reports/ live at the top of the source tree and are force-included into the
wheel as ``scanner/_data/<name>``. An installed package finds them there; a source checkout (editable
install or ``python -m scanner`` from the tree) finds them beside the package.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml


def data_dir(name: str) -> Path:
    """The directory of one data family: ``fingerprints``, ``policies`` or ``reports``."""
    packaged = Path(str(resources.files("scanner"))) / "_data" / name
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parent.parent / name
    if source.is_dir():
        return source
    raise FileNotFoundError(f"camscan data directory {name!r} not found (looked in {packaged} and {source})")


def load_yaml(data: bytes | str) -> Any:
    """Parse YAML safely (no tags that build Python objects), with libyaml when PyYAML has it: ten times faster
    than the pure-Python parser on the rule files, which every command loads at start. Raises yaml.YAMLError."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(data, Loader=loader)
