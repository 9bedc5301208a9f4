"""The WSGI entry point for gunicorn: ``gunicorn -c service/gunicorn_conf.py service.wsgi:app``.

Importing this module builds the app from the environment, so it is imported only in
the process that serves (each gunicorn worker after fork: the config does not preload).
"""

from __future__ import annotations

from service.app import create_app

app = create_app()
