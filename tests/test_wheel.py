"""The package installs from a built wheel into a fresh venv, and its data comes with it.

The fresh venv gets only the wheel (pip --no-deps); the third-party dependencies are borrowed from the
test venv through a .pth path line, which adds that directory but does not run the editable-install hook
inside it, so `scanner` can only come from the wheel. The commands run from an empty directory, away from
the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next((tmp / "dist").glob("camscan-*.whl"))
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return env_dir


def run(env_dir: Path, cwd: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(env_dir / "bin" / "camscan"), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.slow
def test_wheel_ships_code_and_data(wheel_venv: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [
            str(wheel_venv / "bin" / "python"),
            "-c",
            "import scanner, scanner._data as d; print(scanner.__file__); print(d.data_dir('fingerprints'))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(str(wheel_venv) in p for p in where), where
    assert where[1].endswith("scanner/_data/fingerprints")


@pytest.mark.slow
def test_rules_verify_from_the_wheel(wheel_venv: Path, tmp_path: Path) -> None:
    proc = run(wheel_venv, tmp_path, "rules", "verify", "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1].split(" (")[0].endswith("all examples hold")


@pytest.mark.slow
def test_identify_from_the_wheel(wheel_venv: Path, tmp_path: Path) -> None:
    line = json.dumps({"id": "h1", "evidence": [{"key": "http.server", "value": "App-webs/"}]})
    proc = run(wheel_venv, tmp_path, "identify", "-", stdin=line + "\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["manufacturer"] == "Hikvision"


@pytest.mark.slow
def test_policy_packs_and_their_kev_data_ship_in_the_wheel(wheel_venv: Path, tmp_path: Path) -> None:
    """policies/kev/ (the camera-risk pack's KEV data) is data the wheel must carry, or every pack load fails."""
    proc = run(wheel_venv, tmp_path, "policy", "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = run(wheel_venv, tmp_path, "data", "status")
    assert status.returncode == 0, status.stderr
    assert "catalogVersion 2025.08.25" in status.stdout and "origin: shipped" in status.stdout


@pytest.mark.slow
def test_the_service_migrates_from_the_wheel(wheel_venv: Path, tmp_path: Path) -> None:
    """The Alembic migrations ship inside the package: an installed camscan creates its service database."""
    url = f"sqlite:///{tmp_path / 'service.db'}"
    proc = run(wheel_venv, tmp_path, "db", "upgrade", "--db", url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    added = run(wheel_venv, tmp_path, "sites", "add", "hq", "--name", "HQ", "--targets", "10.1.0.0/24", "--db", url)
    assert added.returncode == 0, added.stderr
    assert "hq\tHQ\t10.1.0.0/24" in run(wheel_venv, tmp_path, "sites", "list", "--db", url).stdout
