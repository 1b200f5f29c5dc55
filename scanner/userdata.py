"""Where camscan keeps what it writes for itself (the service's SQLite database, its scan outputs).

Unlike scanner/_data.py (the read-only rules, packs and templates shipped with the package), this is the
user's own writable data: `override`, else $CAMSCAN_DATA_DIR, else $XDG_DATA_HOME/camscan, else
~/.local/share/camscan (the XDG Base Directory default), created on first use with owner-only access
because it holds scan reports and password hashes.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_data_dir(override: Path | None = None) -> Path:
    """The data directory, created (mode 0700) if it does not exist yet."""
    if override is not None:
        path = override
    elif os.environ.get("CAMSCAN_DATA_DIR"):
        path = Path(os.environ["CAMSCAN_DATA_DIR"])
    elif os.environ.get("XDG_DATA_HOME"):
        path = Path(os.environ["XDG_DATA_HOME"]) / "camscan"
    else:
        path = Path.home() / ".local" / "share" / "camscan"
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
