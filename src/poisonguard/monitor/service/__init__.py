"""The monitoring service (``poisonguard serve``): FastAPI, SQLAlchemy storage, a dashboard. Needs the ``serve``
extra (fastapi, uvicorn, sqlalchemy); PostgreSQL also needs the ``postgres`` extra (pg8000)."""

from .app import create_app
from .storage import Storage

__all__ = ["Storage", "create_app"]
