from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from scanner._data import data_dir

ROOT = Path(__file__).resolve().parent.parent

# camscan's own data directory (an installed MAC registry, the service's database) is never the developer's:
# every test, and every camscan process a test starts, sees an empty one of its own.
TEST_DATA_DIR = tempfile.mkdtemp(prefix="camscan-test-data-")
os.environ["CAMSCAN_DATA_DIR"] = TEST_DATA_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    """The test run's data directory goes with the run."""
    shutil.rmtree(TEST_DATA_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def shipped_engine():
    from scanner.fingerprint.engine import Engine
    from scanner.fingerprint.rules import load_ruleset

    return Engine(load_ruleset())


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A rule directory with the shipped maker list and OEM table and no rule files: tests add their own."""
    d = tmp_path / "fingerprints"
    d.mkdir()
    for name in ("makers.yaml", "oem.yaml"):
        shutil.copy(data_dir("fingerprints") / name, d / name)
    return d
