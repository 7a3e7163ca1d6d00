"""WSGI entry point for gunicorn: ``labapp.wsgi:app``."""

from . import create_app

app = create_app()
