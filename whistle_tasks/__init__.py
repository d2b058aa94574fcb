"""Whistle's Celery app, whapps and shared libraries (``celery -A whistle_tasks worker``)."""

from whistle_tasks.app import app

__all__ = ["app"]
__version__ = "0.1.0"
