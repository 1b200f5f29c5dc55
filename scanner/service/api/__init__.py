"""The HTTP API of docs/service.md (`/api/v1`): app.py builds the app; sites.py, scans.py, devices.py route."""

from scanner.service.api.app import Service, asgi, create_app

__all__ = ["Service", "asgi", "create_app"]
