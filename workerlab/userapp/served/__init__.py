"""Files run inside a user's app's venv (not imported by the lab): its gunicorn settings and dev server.

They import the standard library, gunicorn, gevent and werkzeug only: the venv holds the user's
requirements and the servers, nothing of the lab.
"""
