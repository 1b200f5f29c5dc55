"""Opaque cursors for keyset paging: `next` is the position after the last item of a page."""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import HTTPException

MAX_LIMIT = 500


def encode(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(cursor: str | None, shape: tuple[type, ...]) -> list[Any] | None:
    """The position a cursor stands for; 422 if it is not one this API made."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        position = None
    if (
        not isinstance(position, list)
        or len(position) != len(shape)
        or not all(isinstance(v, t) for v, t in zip(position, shape, strict=True))
    ):
        raise HTTPException(422, "cursor: not a cursor from this API (use the `next` value of a page)")
    return position
